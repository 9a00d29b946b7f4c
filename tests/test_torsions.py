"""The experimental torsion preferences (ETKDG's crystal-structure potentials) and the relaxation that uses them."""

from __future__ import annotations

from dataclasses import replace

import gemmi
import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Chem import rdMolTransforms as transforms

from ligfit import maps
from ligfit.dock import score_pose
from ligfit.dock.options import DockingOptions
from ligfit.dock.place import DockingResult, _with_usual_torsions
from ligfit.errors import BadOptionError
from ligfit.ligand import load_ligand
from ligfit.maps import DensityMap
from ligfit.measures.pose import relax_pose
from ligfit.measures.torsions import TorsionPreferences, dihedrals
from ligfit.records import Blob
from ligfit.refine.metrics import pose_metrics

#: An acetanilide with an ortho methyl ether: a secondary amide, an aryl amide and an aryl ether.
SMILES = "CC(=O)Nc1ccccc1OC"


@pytest.fixture(scope="module")
def ligand():
    return load_ligand(SMILES, max_conformers=5)


@pytest.fixture(scope="module")
def preferences(ligand):
    return TorsionPreferences.of(ligand.mol)


def twisted(ligand, preferences, degrees: float) -> np.ndarray:
    """The ligand's first conformer with every preferred torsion turned to ``degrees``."""
    mol = Chem.Mol(ligand.mol)
    conformer = mol.GetConformer(0)
    for quadruple in preferences.atoms:
        transforms.SetDihedralDeg(conformer, *(int(atom) for atom in quadruple), degrees)
    return conformer.GetPositions()


def test_dihedrals_agree_with_rdkit(ligand, preferences):
    conformer = ligand.mol.GetConformer(0)
    quadruples = preferences.atoms
    ours = dihedrals(conformer.GetPositions()[quadruples])
    theirs = [transforms.GetDihedralRad(conformer, *(int(atom) for atom in quadruple)) for quadruple in quadruples]
    assert np.allclose(ours, theirs, atol=1e-6)


def test_etkdg_conformers_sit_in_the_wells_and_free_embedding_does_not():
    mol = Chem.AddHs(Chem.MolFromSmiles(SMILES))
    preferences = TorsionPreferences.of(mol)
    assert len(preferences.atoms) >= 3  # the amide, the aryl amide and the aryl ether are all matched
    with_preferences, without = AllChem.ETKDGv3(), AllChem.KDG()
    with_preferences.randomSeed = without.randomSeed = 7
    energies = {}
    for name, parameters in (("etkdg", with_preferences), ("kdg", without)):
        embedded = Chem.Mol(mol)
        assert len(AllChem.EmbedMultipleConfs(embedded, 20, parameters)) == 20
        energies[name] = np.mean([preferences.total(c.GetPositions()) for c in embedded.GetConformers()])
    assert energies["etkdg"] < 1.0 < 10.0 < energies["kdg"]


def test_a_twisted_amide_is_far_up_its_well(ligand, preferences):
    energies = preferences.energies(twisted(ligand, preferences, 60.0)[: ligand.heavy_atom_count])
    assert energies.max() > 30.0
    assert preferences.energies(ligand.mol.GetConformer(0).GetPositions()).max() < 5.0


def test_relaxation_pulls_rare_torsions_into_their_wells_and_barely_moves_the_pose(ligand, preferences):
    pose = twisted(ligand, preferences, 60.0)
    heavy = ligand.heavy_atom_count
    plain, _ = relax_pose(ligand, pose, 100.0)
    pulled, strain = relax_pose(ligand, pose, 100.0, preferences, 0.05)
    before = preferences.total(plain[:heavy])
    after = preferences.total(pulled[:heavy])
    assert after < 0.3 * before
    assert np.linalg.norm(pulled[:heavy] - pose[:heavy], axis=1).max() < 1.0
    assert strain is not None


def test_windows_are_around_the_bottom_of_the_well_the_torsion_sits_in(ligand, preferences):
    pose = twisted(ligand, preferences, 60.0)[: ligand.heavy_atom_count]
    windows = preferences.windows(pose, above=5.0, tolerance=15.0)
    assert windows
    for *quadruple, low, high in windows:
        middle = np.deg2rad((low + high) / 2)
        index = next(i for i, atoms in enumerate(preferences.atoms) if list(atoms) == quadruple)
        # The potential at the window's middle is a local minimum: lower than 5° to either side.
        curve = [
            preferences.offsets[index] + (np.cos(angle * np.arange(1, 7)) * preferences.coefficients[index]).sum()
            for angle in (middle - np.deg2rad(5), middle, middle + np.deg2rad(5))
        ]
        assert curve[1] <= min(curve[0], curve[2]) + 1e-9


def _density_of(coordinates: np.ndarray, elements: list[str]) -> tuple[DensityMap, Blob]:
    """A 3 Å map of these atoms alone, in σ units, and the blob of everything above 1 σ."""
    structure, model, chain, residue = gemmi.Structure(), gemmi.Model("1"), gemmi.Chain("A"), gemmi.Residue()
    residue.name, residue.seqid = "LIG", gemmi.SeqId(1, " ")
    for index, (xyz, element) in enumerate(zip(coordinates, elements)):
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos, atom.occ, atom.b_iso = (
            f"{element}{index}",
            gemmi.Element(element),
            gemmi.Position(*xyz),
            1.0,
            20.0,
        )
        residue.add_atom(atom)
    chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    simulated = maps.simulate(structure, 3.0, voxel_size=0.7, margin=6.0)
    density = simulated.with_values((simulated.values - simulated.values.mean()) / simulated.values.std())
    inside = density.values > 1.0
    points, values = density.grid_points()[inside], density.values[inside]
    blob = Blob(
        rank=0, points=points, values=values, volume=float(inside.sum() * 0.343), centroid=points.mean(0),
        principal_axes=np.eye(3), extents=points.std(0), peak=float(values.max()), mean=float(values.mean()),
        estimated_heavy_atoms=float(len(coordinates)), protein_contacts=0, protein_distance=np.inf, ligand_match=1.0,
    )  # fmt: skip
    return density, blob


def test_docking_pulls_rare_torsions_only_where_the_density_does_not_hold_them(ligand, preferences):
    heavy = ligand.heavy_atom_count
    elements = list(ligand.elements[:heavy])
    pose = twisted(ligand, preferences, 60.0)
    in_wells, _ = relax_pose(ligand, pose, 100.0, preferences, 0.05)
    options = DockingOptions(torsion_pull="scored", torsion_preference_force=0.05)
    worst = {}
    for name, density_from in (("twisted map", pose), ("map in the wells", in_wells)):
        density, blob = _density_of(density_from[:heavy], elements)
        scored = score_pose(ligand, pose, density, blob, 3.0, None, options)
        worst[name] = preferences.energies(scored.coordinates[:heavy]).max()
    assert worst["twisted map"] > 100.0  # the density holds the twisted amide: it stays
    assert worst["map in the wells"] < 10.0  # it does not: pulled into the wells (150 up its potential before)


def test_pose_metrics_count_rare_torsions(ligand, preferences):
    heavy = ligand.heavy_atom_count
    as_embedded = ligand.mol.GetConformer(0).GetPositions()
    density, _ = _density_of(as_embedded[:heavy], list(ligand.elements[:heavy]))
    usual = pose_metrics(ligand, as_embedded, density, 3.0, None)
    rare = pose_metrics(ligand, twisted(ligand, preferences, 60.0), density, 3.0, None)
    assert usual.rare_torsions == 0 and usual.worst_torsion_energy < 5.0
    assert rare.rare_torsions >= 2 and rare.worst_torsion_energy > 100.0  # the amide and the aryl ether at 60°
    assert {"rare_torsions", "worst_torsion_energy"} <= set(rare.as_dict())


def test_placements_get_usual_torsions_where_the_density_lets_them(ligand, preferences):
    heavy = ligand.heavy_atom_count
    elements = list(ligand.elements[:heavy])
    pose = twisted(ligand, preferences, 60.0)
    in_wells, _ = relax_pose(ligand, pose, DockingOptions().torsion_pull_restraint, preferences, 0.05)
    worst, moved = {}, {}
    pulled = DockingOptions(torsion_pull="placements")
    for name, density_from in (("twisted map", pose), ("map in the wells", in_wells)):
        density, blob = _density_of(density_from[:heavy], elements)
        placed = replace(score_pose(ligand, pose, density, blob, 3.0, None, DockingOptions(torsion_pull="off")), confidence=0.8)
        result = _with_usual_torsions(DockingResult([placed], [placed], "supported"), ligand, density, [blob], 3.0, None, pulled)
        after = result.placements[0]
        assert (after.confidence, result.poses[0]) == (placed.confidence, placed)  # the choice as judged
        worst[name] = preferences.energies(after.coordinates[:heavy]).max()
        moved[name] = after.cc - placed.cc
    assert worst["twisted map"] > 100.0 and moved["twisted map"] == 0.0  # the density holds the twist: untouched
    assert worst["map in the wells"] < 10.0 and moved["map in the wells"] > 0.0  # pulled, and it fits better


def test_a_torsion_pull_that_does_not_exist_is_refused():
    with pytest.raises(BadOptionError, match="torsion_pull"):
        DockingOptions(torsion_pull="everywhere")


def test_the_refinement_torsion_force_is_the_crystal_structure_potential(ligand, preferences):
    """OpenMM's energy of the added force, between two conformations, is the preferences' own (kcal/mol → kJ/mol)."""
    import openmm as mm

    from ligfit.refine.system import KJ_PER_KCAL, torsion_preference_force

    count = ligand.mol.GetNumAtoms()
    system = mm.System()
    for _ in range(count):
        system.addParticle(1.0)
    system.addForce(torsion_preference_force(ligand, np.arange(count), 0.5))
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))

    def energy(coordinates: np.ndarray) -> float:
        context.setPositions(coordinates * 0.1)
        return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)

    usual, rare = ligand.mol.GetConformer(0).GetPositions(), twisted(ligand, preferences, 60.0)
    heavy = ligand.heavy_atom_count
    expected = 0.5 * KJ_PER_KCAL * (preferences.energies(rare[:heavy]).sum() - preferences.energies(usual[:heavy]).sum())
    assert expected > 100.0
    assert energy(rare) - energy(usual) == pytest.approx(expected, rel=1e-3, abs=0.5)


def test_refinement_settles_rare_torsions_the_density_does_not_hold(ligand, preferences):
    """Refined alone, from a pose with its amide and ether turned to 90° (100 up their potentials), in a 3 Å map of the
    ligand in its wells: with GAFF2 alone the refined pose fits no better and the docked one is kept, torsions and all;
    with the crystal-structure potentials added both come down into their wells, and the fit stays."""
    from ligfit.refine import RefinementOptions, refine

    heavy = ligand.heavy_atom_count
    pose = twisted(ligand, preferences, 90.0)
    in_wells, _ = relax_pose(ligand, pose, 100.0, preferences, 0.05)
    density, _ = _density_of(in_wells[:heavy], list(ligand.elements[:heavy]))
    results = {weight: refine(None, ligand, [pose], density, 3.0, options=RefinementOptions(torsion_preference_weight=weight))
               for weight in (0.0, 1.0)}  # fmt: skip
    worst = {weight: preferences.energies(result.coordinates[:heavy]).max() for weight, result in results.items()}
    assert worst[0.0] > 50.0 and worst[1.0] < 5.0
    assert results[1.0].refined and results[1.0].after.ligand_cc > 0.9


def test_a_negative_torsion_preference_weight_is_refused():
    from ligfit.refine import RefinementOptions

    with pytest.raises(BadOptionError, match="torsion_preference_weight"):
        RefinementOptions(torsion_preference_weight=-1.0)
