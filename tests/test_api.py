"""ligfit.api: in-memory inputs give what paths give, nothing is written, no global state (shipped example only)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gemmi
import numpy as np
import pytest
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, FAST_DOCKING, SMILES

import ligfit
from ligfit import api, io, maps
from ligfit.errors import BadOptionError

FAST = dict(resolution=FAST_BUILD.resolution, refine=False, use_templates=False, max_conformers=8, docking=FAST_DOCKING)


def _listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _files(folder: Path) -> list[str]:
    """Files under ``folder`` (torch makes an empty cache folder, torchinductor_<user>, in the temporary folder)."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Two builds of the example in one process: from paths, then from objects in memory.

    Both run from an empty working folder with an empty temporary folder, so any file the API
    writes shows up.
    """
    workdir = tmp_path_factory.mktemp("cwd")
    scratch = tmp_path_factory.mktemp("tmp")
    example_before = _listing(EXAMPLE)
    density = maps.read_map(EXAMPLE / "map.mrc")
    structure = gemmi.read_structure(str(EXAMPLE / "protein.pdb"))
    values_before = density.values.copy()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        patch.setattr(tempfile, "tempdir", str(scratch))
        from_paths = api.build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), **FAST)
        from_memory = api.build(density, Chem.MolFromSmiles(SMILES), structure, **FAST)
    return {
        "paths": from_paths,
        "memory": from_memory,
        "written": _listing(workdir) + _files(scratch),
        "example_changed": _listing(EXAMPLE) != example_before,
        "density": density,
        "values_before": values_before,
        "structure": structure,
    }


def test_in_memory_inputs_give_the_same_placement_as_paths(builds):
    first, second = builds["paths"], builds["memory"]
    assert first.found and second.found
    assert first.best_pose.blob_rank == second.best_pose.blob_rank
    np.testing.assert_allclose(first.best_pose.coordinates, second.best_pose.coordinates, atol=1e-6)
    assert first.best_pose.score == pytest.approx(second.best_pose.score, abs=1e-9)


def test_two_builds_in_one_process_rank_identical_poses(builds):
    first, second = builds["paths"], builds["memory"]
    assert len(first.poses) == len(second.poses) > 0
    for a, b in zip(first.poses, second.poses):
        np.testing.assert_allclose(a.coordinates, b.coordinates, atol=1e-6)
        assert a.source == b.source


def test_the_placement_lies_on_the_reference(builds):
    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf")).GetConformer().GetPositions()
    placed = builds["memory"].best_pose.coordinates[: len(reference)]
    assert np.linalg.norm(placed.mean(axis=0) - reference.mean(axis=0)) < 1.5


def test_the_api_writes_no_files(builds):
    assert builds["written"] == []
    assert not builds["example_changed"]


def test_the_api_leaves_in_memory_inputs_unchanged(builds):
    np.testing.assert_array_equal(builds["density"].values, builds["values_before"])
    assert builds["structure"][0].count_atom_sites() == 2352
    assert all(residue.name != "LIG" for chain in builds["structure"][0] for residue in chain)


def test_inputs_say_what_was_given(builds):
    assert builds["paths"].inputs["map"] == str(EXAMPLE / "map.mrc")
    assert builds["memory"].inputs["map"] == "DensityMap in memory"
    assert builds["memory"].inputs["model"]  # the structure's name or "gemmi.Structure in memory"
    assert builds["memory"].inputs["ligand"] == Chem.MolToSmiles(Chem.MolFromSmiles(SMILES))


def test_the_package_exports_the_api():
    assert ligfit.build is api.build and ligfit.simulate is api.simulate


def test_build_options_match_the_api_defaults():
    import inspect

    parameters = inspect.signature(api.build).parameters
    for name in ("ligand_name", "threshold", "max_blobs", "copies", "protonation", "seed", "use_templates", "refine"):
        assert parameters[name].default == getattr(api.BuildOptions, name)


# --------------------------------------------------------------------------- simulate and bad options


@pytest.mark.parametrize("resolution", [0.0, -1.5])
def test_simulate_refuses_a_non_positive_resolution(resolution):
    with pytest.raises(BadOptionError, match="resolution"):
        api.simulate(EXAMPLE / "protein.pdb", resolution)


def test_refine_refuses_a_non_positive_resolution():
    with pytest.raises(BadOptionError, match="resolution"):
        api.refine(EXAMPLE / "protein.pdb", EXAMPLE / "map.mrc", SMILES, resolution=0.0)


def test_build_refuses_a_non_positive_resolution():
    with pytest.raises(BadOptionError, match="resolution"):
        api.build(EXAMPLE / "map.mrc", SMILES, EXAMPLE / "protein.pdb", resolution=-3.0)


def test_simulate_on_a_given_grid_and_on_its_own():
    structure = io.read_structure(EXAMPLE / "protein.pdb")
    atoms = io.heavy_atoms(structure).coordinates
    like = maps.read_map(EXAMPLE / "map.mrc")
    on_grid = api.simulate(structure, 4.0, like=like)
    assert on_grid.shape == like.shape
    np.testing.assert_allclose(on_grid.origin, like.origin)
    assert on_grid.interpolate(atoms).mean() > 5 * on_grid.values.mean()
    # The same map from a path and from the same structure in memory, and a map of its own otherwise.
    np.testing.assert_array_equal(api.simulate(EXAMPLE / "protein.pdb", 4.0, like=like).values, on_grid.values)
    own = api.simulate(structure, 4.0)
    assert maps.fraction_inside(own, atoms) == 1.0
    assert np.all(own.voxel_size == pytest.approx(1.0))  # min(1 Å, resolution/3)
    # Noise is seeded: the same seed gives the same map.
    noisy = [api.simulate(structure, 4.0, like=like, noise=0.2, seed=s).values for s in (3, 3, 4)]
    np.testing.assert_array_equal(noisy[0], noisy[1])
    assert not np.array_equal(noisy[0], noisy[2])
