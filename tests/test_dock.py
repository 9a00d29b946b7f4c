"""Docking: pose geometry, symmetry-aware RMSD, placement accuracy and the support verdict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from benchmarks.cases import em_ligand_boxes, simulated_case
from benchmarks.ligand_placement import ligand_rmsd
from ligfit import api, io
from ligfit.dock.search import TorsionTree, apply_torsions
from ligfit.ligand import heavy_atom_mol, load_ligand
from ligfit.measures import count_clashes, ligand_symmetry, symmetric_rmsd


def test_torsions_keep_bond_lengths_and_a_full_turn_is_identity():
    ligand = load_ligand("CCCCc1ccc(NS(=O)(=O)c2ccc(O)c(C(=O)O)c2)cc1", max_conformers=3)
    tree = TorsionTree.from_ligand(ligand)
    coordinates = torch.as_tensor(ligand.conformer_coordinates()[:1], dtype=torch.float32)
    turned = apply_torsions(coordinates, torch.full((1, len(tree.axes)), 0.7), tree)
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ligand.mol.GetBonds()])
    before = np.linalg.norm(coordinates[0, bonds[:, 0]] - coordinates[0, bonds[:, 1]], axis=1)
    after = np.linalg.norm(turned[0, bonds[:, 0]] - turned[0, bonds[:, 1]], axis=1)
    np.testing.assert_allclose(after, before, atol=1e-4)
    assert float((turned - coordinates).abs().max()) > 1.0  # it did move
    full_turn = apply_torsions(coordinates, torch.full((1, len(tree.axes)), 2 * np.pi), tree)
    np.testing.assert_allclose(full_turn.numpy(), coordinates.numpy(), atol=1e-3)


def test_symmetric_rmsd_agrees_with_spyrmsd():
    ligand = load_ligand("OC(=O)c1ccc(cc1)C(F)(F)F", max_conformers=4)
    coordinates = ligand.conformer_coordinates()
    matches = ligand_symmetry(ligand)
    first, second = coordinates[0], coordinates[-1] + np.array([0.3, -0.2, 0.1])
    ours = symmetric_rmsd(first, second, matches)
    theirs = ligand_rmsd(heavy_atom_mol(ligand, second), heavy_atom_mol(ligand, first))
    assert ours == pytest.approx(theirs, abs=1e-6)
    # A ring flip costs nothing: swapping symmetric atoms keeps the RMSD at 0.
    assert symmetric_rmsd(first, first[matches[-1].tolist() + list(range(ligand.heavy_atom_count, len(first)))], matches) < 1e-6


@pytest.mark.parametrize("entry", ["5SAK_ZRY", "7KRU_ATP", "7RNI_60I"])
def test_simulated_complexes_are_placed_within_2_angstrom(data, entry):
    case = simulated_case(data, entry, 3.0)
    result = api.build(case.density, case.smiles, case.model, resolution=3.0, refine=False)
    assert result.found
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), case.reference) <= 2.0
    protein = io.heavy_atoms(case.model)
    deposited = count_clashes(
        case.reference.GetConformer().GetPositions(),
        [a.GetSymbol() for a in case.reference.GetAtoms()],
        protein,
    )
    assert result.best_pose.clashes <= deposited  # no more protein clashes than the deposited pose has


@pytest.mark.parametrize("name", ["8HFL 1XR", "7ZH6 C0R"])
def test_real_em_ligand_density_is_fitted_within_2_angstrom(data, name):
    case = next(c for c in em_ligand_boxes(data) if c.name == name)
    result = api.build(case.density, case.smiles, None, resolution=case.resolution, refine=False)
    assert result.found
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), case.reference) <= 2.0


def test_forcing_a_site_with_no_ligand_density_is_not_reported_as_found(data):
    case = simulated_case(data, "7RNI_60I", 3.0, with_ligand=False)
    site = tuple(case.reference.GetConformer().GetPositions().mean(0))
    result = api.build(case.density, case.smiles, case.model, resolution=3.0, site=site, refine=False)
    assert result.poses  # it did dock …
    assert not result.found  # … and said the density does not support it
    assert result.best_pose is None and "no convincing density" in result.message
    assert Chem.MolFromSmiles(case.smiles) is not None
