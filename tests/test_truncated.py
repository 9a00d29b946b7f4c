"""Truncated side chains completed into the density (ligfit.trace.truncated), on the shipped Tyk2 example (no shared data needed)."""

from __future__ import annotations

import dataclasses

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from ligfit import io, maps, segment
from ligfit.backbone.geometry import full_atoms
from ligfit.pipeline import run_build
from ligfit.trace.truncated import complete_side_chains

KEPT = {"N", "CA", "C", "O", "OXT", "CB"}


@pytest.fixture(scope="module")
def example():
    density = maps.read_map(EXAMPLE / "map.mrc")
    protein = io.read_structure(EXAMPLE / "protein.pdb")
    return density, protein


def _pocket_residues(protein: gemmi.Structure, count: int = 12) -> list[int]:
    """The ``count`` residues with ≥ 3 side-chain atoms beyond Cβ whose Cβ lie nearest the ligand (the ligand's blob's neighbours)."""
    from rdkit import Chem

    ligand = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf")).GetConformer().GetPositions()
    tree = cKDTree(ligand)
    scored = []
    for residue in protein[0]["A"]:
        beta = residue.find_atom("CB", "*")
        if beta is not None and sum(a.name not in KEPT for a in residue) >= 3:
            scored.append((tree.query(np.array(beta.pos.tolist()))[0], residue.seqid.num))
    return [number for _, number in sorted(scored)[:count]]


def _truncated(protein: gemmi.Structure, numbers: list[int]) -> gemmi.Structure:
    cut = protein.clone()
    for residue in cut[0]["A"]:
        if residue.seqid.num in numbers:
            for k in reversed(range(len(residue))):
                if residue[k].name not in KEPT:
                    del residue[k]
    return cut


def _side_chain(structure: gemmi.Structure, number: int) -> dict[str, np.ndarray]:
    residue = next(r for r in structure[0]["A"] if r.seqid.num == number)
    return {a.name: np.array(a.pos.tolist()) for a in residue if a.name not in KEPT}


def test_truncated_side_chains_are_completed_near_the_deposited_ones(example):
    density, protein = example
    numbers = _pocket_residues(protein)
    model = _truncated(protein, numbers)
    result = complete_side_chains(model, density)
    assert len(result.completed) == len(numbers)
    fitted, ideal = [], []
    for number in numbers:
        truth, built = _side_chain(protein, number), _side_chain(result.structure, number)
        assert set(built) == set(truth)
        fitted.append(np.sqrt(np.mean([np.sum((built[a] - truth[a]) ** 2) for a in truth])))
        # the CCD's own rotamer on the same backbone, not turned into the map: what the fit has to beat
        residue = next(r for r in protein[0]["A"] if r.seqid.num == number)
        xyz = {a.name: np.array(a.pos.tolist()) for a in residue}
        atoms = full_atoms(*(xyz[n][None] for n in ("N", "CA", "C", "O")), [residue.name])[0]
        placed = {name: position for name, _, position in atoms if name not in KEPT}
        ideal.append(np.sqrt(np.mean([np.sum((placed[a] - truth[a]) ** 2) for a in truth])))
    assert np.median(fitted) < 1.0, fitted
    assert np.mean(fitted) < 0.6 * np.mean(ideal), (fitted, ideal)
    # the user's structure is not touched
    assert all(not _side_chain(model, number) for number in numbers)


def test_completed_side_chains_explain_their_density(example):
    density, protein = example
    numbers = _pocket_residues(protein)
    model = _truncated(protein, numbers)
    truth = np.array([p for number in numbers for p in _side_chain(protein, number).values()])
    left = segment.difference_map(density, model, 3.0).difference.interpolate(truth)
    completed = complete_side_chains(model, density).structure
    explained = segment.difference_map(density, completed, 3.0).difference.interpolate(truth)
    assert np.mean(left) > 2.0, left
    assert np.mean(explained) < 0.5 * np.mean(left), (left, explained)


def test_a_complete_model_is_left_as_it_is(example):
    density, protein = example
    result = complete_side_chains(protein, density)
    assert result.completed == [] and result.structure is protein


def test_build_explains_truncated_side_chains_without_writing_them(example, tmp_path):
    density, protein = example
    numbers = _pocket_residues(protein, 6)
    model = _truncated(protein, numbers)
    result = run_build(density, SMILES, model, FAST_BUILD)
    assert result.inputs["truncated_side_chains"]["completed"] == len(numbers)
    assert result.model is not None and all(not _side_chain(result.model, number) for number in numbers)
    folder = result.write(tmp_path / "out")
    assert all(f"A{number} " in (folder / "report.html").read_text() for number in numbers)
    written = io.read_structure(folder / "model.cif")
    assert all(not _side_chain(written, number) for number in numbers)
    off = run_build(density, SMILES, model, dataclasses.replace(FAST_BUILD, complete_side_chains=False))
    assert "truncated_side_chains" not in off.inputs


def test_the_screen_explains_truncated_side_chains_as_build_does(example):
    from ligfit.screen import ScreenOptions, read_library
    from ligfit.screen.run import prepare_context

    density, protein = example
    numbers = _pocket_residues(protein)
    model = _truncated(protein, numbers)
    truth = np.array([p for number in numbers for p in _side_chain(protein, number).values()])
    library = read_library([("tyk2", SMILES)])
    left, explained = (
        prepare_context(density, model, ScreenOptions(resolution=3.0, complete_side_chains=on), library, lambda line: None)
        .difference.interpolate(truth)
        .mean()
        for on in (False, True)
    )
    assert left > 2.0 and explained < 0.5 * left, (left, explained)
