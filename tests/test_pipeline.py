"""ligfit.pipeline: run_build on the shipped example (no ../shared/data), its timings and inputs, and site parsing."""

from __future__ import annotations

import dataclasses
import time

import gemmi
import numpy as np
import pytest
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from benchmarks.cases import with_shifted_copy
from benchmarks.ligand_placement import ligand_rmsd
from ligfit import io, maps
from ligfit.errors import BadModelError, BadOptionError, LigfitError
from ligfit.ligand import heavy_atom_mol
from ligfit.pipeline import AUTO_COPIES, BuildOptions, BuildResult, run_build, site_center


@pytest.fixture(scope="module")
def example_build() -> tuple[BuildResult, float, list[tuple]]:
    """The example built once for this module: result, wall time (s), progress calls heard."""
    heard: list[tuple] = []
    start = time.perf_counter()
    result = run_build(
        str(EXAMPLE / "map.mrc"),
        SMILES,
        str(EXAMPLE / "protein.pdb"),
        FAST_BUILD,
        progress=lambda stage, done=None, total=None: heard.append((stage, done, total)),
    )
    return result, time.perf_counter() - start, heard


@pytest.fixture(scope="module")
def reference() -> Chem.Mol:
    return Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))


def test_example_places_the_ligand_within_2_angstrom(example_build, reference):
    result, _, _ = example_build
    assert result.found and result.best_pose is not None
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), reference) <= 2.0
    assert result.best_pose.cc > 0.6 and result.best_pose.fraction_in_density > 0.8
    assert result.best_pose.clashes == 0
    assert 0 < result.confidence <= 1
    assert result.message == result.docking.reason


def test_example_blob_and_difference_map(example_build, reference):
    result, _, _ = example_build
    assert result.difference.model_cc > 0.7
    assert result.blobs and np.linalg.norm(result.blobs[0].centroid - reference.GetConformer().GetPositions().mean(axis=0)) < 2.0
    assert result.best_pose.blob_rank == result.blobs[0].rank


def test_without_refinement_the_placements_are_the_docked_ones(example_build):
    result, _, _ = example_build
    assert result.refinements == [] and result.refined_model is None
    assert len(result.placements) == len(result.docked_placements) == 1
    np.testing.assert_array_equal(result.placements[0].coordinates, result.docked_placements[0].coordinates)
    assert not result.placements[0].source.endswith("refined")
    assert result.templates is None


def test_ligand_fit_reports_the_q_score(example_build):
    result, _, _ = example_build
    (fit,) = result.ligand_fit
    assert fit["blob"] == result.best_pose.blob_rank
    assert 0.3 < fit["q_score"] <= 1.0
    assert fit["q_score"] == fit["q_score_docked"]  # nothing refined
    assert fit["expected_q_score"] == pytest.approx(-0.1775 * 3.0 + 1.1192, abs=1e-3)


def test_complex_structure_holds_protein_and_ligand(example_build):
    result, _, _ = example_build
    structure = result.complex_structure()
    table = io.heavy_atoms(structure)
    ligand = table.residue_name == "LIG"
    assert ligand.sum() == 21 and len(table) == 2352 + 21
    np.testing.assert_allclose(table.coordinates[ligand], result.best_pose.coordinates[:21], atol=1e-3)
    assert io.heavy_atoms(result.model).residue_name.tolist().count("LIG") == 0  # the input model is not changed


def test_timings_hold_each_stage_that_ran(example_build):
    result, wall, _ = example_build
    assert set(result.timings) == {"inputs", "ligand", "segmentation", "docking"}  # no templates, no refinement
    assert all(value >= 0 for value in result.timings.values())
    assert result.timings["docking"] > 0.1
    assert sum(result.timings.values()) <= wall + 0.05


def test_progress_hears_the_stages_in_order(example_build):
    _, _, heard = example_build
    stages = list(dict.fromkeys(stage for stage, _, _ in heard))
    expected = ["reading inputs", "preparing the ligand", "computing the difference map"]
    assert stages[:3] == expected
    assert len(stages) > 3  # docking reports too
    assert "matching template complexes" not in stages and "refining placements" not in stages


def test_inputs_describe_map_model_and_ligand(example_build):
    result, _, _ = example_build
    inputs = result.inputs
    assert inputs["map"] == str(EXAMPLE / "map.mrc")
    assert inputs["map_grid"] == [62, 61, 76]
    assert inputs["voxel_size_A"] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(inputs["origin_A"], result.density_map.origin, atol=1e-3)
    assert inputs["resolution_A"] == 3.0
    assert inputs["model"] == str(EXAMPLE / "protein.pdb")
    assert inputs["model_heavy_atoms"] == 2352
    assert inputs["protein_model"] is None
    assert inputs["ligand"] == SMILES


# --------------------------------------------------------------------------- bad input and sites


@pytest.mark.parametrize("resolution", [0.0, -2.0])
def test_non_positive_resolution_is_refused_before_any_work(resolution):
    with pytest.raises(BadOptionError, match="resolution"):
        run_build(str(EXAMPLE / "absent.mrc"), SMILES, None, BuildOptions(resolution=resolution))


def test_a_residue_site_without_a_model_is_refused():
    with pytest.raises(BadModelError, match="no model was given"):
        site_center("A:123", None)
    options = BuildOptions(resolution=3.0, site="A:123", use_templates=False, refine=False, max_conformers=1)
    with pytest.raises(BadModelError, match="no model was given"):
        run_build(str(EXAMPLE / "map.mrc"), SMILES, None, options)


def test_site_center_parses_coordinates():
    np.testing.assert_array_equal(site_center("12.5,3.0,-7.2", None), [12.5, 3.0, -7.2])
    np.testing.assert_array_equal(site_center(" 1 , 2 , 3 ", None), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(site_center((1, 2.5, -3), None), [1.0, 2.5, -3.0])
    np.testing.assert_array_equal(site_center(np.array([4.0, 5.0, 6.0]), None), [4.0, 5.0, 6.0])


def test_site_center_of_a_residue_is_its_heavy_atom_centre():
    structure = io.read_structure(EXAMPLE / "protein.pdb")
    table = io.heavy_atoms(structure)
    number = int(table.residue_number[100])
    expected = table.coordinates[(table.chain == "A") & (table.residue_number == number)].mean(axis=0)
    np.testing.assert_allclose(site_center(f"A:{number}", structure), expected)
    np.testing.assert_allclose(site_center(f" A : {number} ", structure), expected)
    with pytest.raises(BadModelError, match="A:9999"):
        site_center("A:9999", structure)


@pytest.mark.parametrize("site", ["1,2", "1,2,3,4", "one,two,three", "", "A:", "A:twelve", (1.0, 2.0), "x"])
def test_bad_sites_are_refused_in_one_line(site):
    structure = io.read_structure(EXAMPLE / "protein.pdb")
    with pytest.raises(LigfitError) as caught:
        site_center(site, structure)
    message = str(caught.value)
    assert "\n" not in message and "site" in message


# --------------------------------------------------------------------------- copies="auto"


def _two_copies() -> tuple[maps.DensityMap, gemmi.Structure, list[Chem.Mol]]:
    """The example map twice, side by side along x, with the model and the reference ligand twice."""
    density = maps.read_map(EXAMPLE / "map.mrc")
    shift = density.shape[0] * float(density.voxel_size[0])
    doubled = maps.DensityMap(np.concatenate([density.values, density.values], axis=0), density.voxel_size, density.origin)
    structure = with_shifted_copy(io.read_structure(EXAMPLE / "protein.pdb"), shift)
    references = [Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf")) for _ in range(2)]
    conformer = references[1].GetConformer()
    for index in range(references[1].GetNumAtoms()):
        position = conformer.GetAtomPosition(index)
        conformer.SetAtomPosition(index, (position.x + shift, position.y, position.z))
    return doubled, structure, references


def test_copies_auto_places_the_ligand_in_each_copy_and_nowhere_else(example_build):
    density, structure, references = _two_copies()
    result = run_build(density, SMILES, structure, dataclasses.replace(FAST_BUILD, copies=AUTO_COPIES))
    assert len(result.placements) == 2
    for pose, reference in zip(sorted(result.placements, key=lambda p: p.coordinates[:, 0].mean()), references):
        assert ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference) <= 2.0
        assert pose.confidence >= 0.4
    single, _, _ = example_build  # the one-copy map: auto finds the one ligand the density holds
    auto = run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), dataclasses.replace(FAST_BUILD, copies=AUTO_COPIES))
    assert len(auto.placements) == 1 and auto.best_pose.blob_rank == single.best_pose.blob_rank


@pytest.mark.parametrize("copies", ["many", 0, 1.5])
def test_bad_copies_are_refused_in_one_line(copies):
    options = dataclasses.replace(FAST_BUILD, copies=copies)
    with pytest.raises(BadOptionError, match="copies") as caught:
        run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options)
    assert "\n" not in str(caught.value)


def test_a_map_with_a_different_voxel_size_along_each_axis_places_the_ligand(reference):
    """The example map resampled to 0.9 × 1.0 × 1.15 of its voxel along x, y, z (as some EMDB maps are): same placement."""
    density = maps.read_map(EXAMPLE / "map.mrc")
    anisotropic = maps.resample(density, density.voxel_size * np.array([0.9, 1.0, 1.15]))
    assert len(set(np.round(anisotropic.voxel_size, 3))) == 3
    result = run_build(anisotropic, SMILES, str(EXAMPLE / "protein.pdb"), FAST_BUILD)
    assert result.found and ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), reference) <= 1.0


def test_a_map_much_larger_than_the_model_is_worked_on_around_the_model(reference):
    """The example map padded with 60 voxels of zeros on every side (as a masked EMDB map): same placement, smaller region."""
    density = maps.read_map(EXAMPLE / "map.mrc")
    pad = 60
    padded = maps.DensityMap(np.pad(density.values, pad), density.voxel_size, density.origin - pad * density.voxel_size)
    result = run_build(padded, SMILES, str(EXAMPLE / "protein.pdb"), FAST_BUILD)
    region = result.inputs["map_region"]
    assert result.inputs["map_grid"] == list(padded.shape) and region is not None
    assert np.prod(region["grid"]) < 0.3 * np.prod(padded.shape)
    assert result.density_map.shape == tuple(region["grid"])
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), reference) <= 2.0


def test_a_macrocycle_is_announced_before_its_larger_ensemble_is_made():
    """Build says why a macrocycle takes longer (150 conformers), and only when no count was asked for."""

    class Heard(Exception):
        pass

    def listen(stage, done=None, total=None):
        if "macrocycle" in stage:
            raise Heard(stage)

    lactone = "O=C1CCCCCCCCCCCO1"  # a 13-atom ring
    with pytest.raises(Heard, match="150 conformers"):
        run_build(
            str(EXAMPLE / "map.mrc"),
            lactone,
            str(EXAMPLE / "protein.pdb"),
            dataclasses.replace(FAST_BUILD, max_conformers=None),
            progress=listen,
        )
    heard: list[str] = []
    options = dataclasses.replace(FAST_BUILD, max_conformers=4)
    run_build(str(EXAMPLE / "map.mrc"), lactone, str(EXAMPLE / "protein.pdb"), options, progress=lambda stage, *_: heard.append(stage))
    assert heard and not any("macrocycle" in stage for stage in heard)


@pytest.mark.parametrize("ion", ["[Cl-]", "[Zn+2]"])
def test_a_one_atom_ligand_gets_a_verdict_not_a_crash(ion):
    """An ion given as the ligand (one atom, no hydrogens: RDKit's minimiser fails on it) is docked like any ligand and
    turned away as a small ligand that fits chance density, with the ligand's own atom kept where docking put it."""
    from ligfit.ligand import load_ligand
    from ligfit.measures import relax_pose

    ligand = load_ligand(ion)
    relaxed, strain = relax_pose(ligand, np.array([[1.0, 2.0, 3.0]]), restraint_force=10.0)
    assert relaxed.tolist() == [[1.0, 2.0, 3.0]] and strain == 0.0
    result = run_build(str(EXAMPLE / "map.mrc"), ion, str(EXAMPLE / "protein.pdb"), FAST_BUILD)
    assert not result.found and result.docking.poses
    assert "small ligand (1 heavy atom)" in result.docking.reason
