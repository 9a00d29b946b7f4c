"""Whole-model flexible refinement: a Tyk2 fragment bent out of its map goes back in, its geometry kept."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from ligfit import io, maps
from ligfit.errors import BadOptionError
from ligfit.refine import WholeModelOptions, refine_whole_model

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2" / "protein.pdb"
RESIDUES = 70
#: A shorter protocol than the default, to keep the test to seconds.
FAST = WholeModelOptions(minimise_iterations=250, anneal_steps=400)


def _fragment() -> gemmi.Structure:
    """The first RESIDUES residues of the Tyk2 example's kinase, without hydrogens."""
    structure = io.read_structure(EXAMPLE)
    structure.remove_hydrogens()
    chain = structure[0][0]
    for index in range(len(chain) - 1, RESIDUES - 1, -1):
        del chain[index]
    return structure


def _bent(structure: gemmi.Structure, amplitude: float, seed: int) -> gemmi.Structure:
    """Every atom displaced by a smooth random field (wavelength 30 Å): a conformational change, not a rigid move."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(3, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * np.pi, 3)
    bent = structure.clone()
    for residue in bent[0][0]:
        for atom in residue:
            position = np.array(atom.pos.tolist())
            atom.pos = gemmi.Position(*(position + amplitude * np.sin(directions @ position * 2 * np.pi / 30.0 + phases)))
    return bent


def _ca(structure: gemmi.Structure) -> np.ndarray:
    return np.array([residue["CA"][0].pos.tolist() for residue in structure[0][0] if residue.find_atom("CA", "*")])


@pytest.fixture(scope="module")
def case() -> tuple[gemmi.Structure, gemmi.Structure, maps.DensityMap]:
    truth = _fragment()
    density = maps.simulate(truth, 3.5, voxel_size=1.0, margin=8.0, noise=0.1, seed=0)
    return truth, _bent(truth, 1.2, seed=1), density


def test_bent_fragment_refines_back_into_its_map(case):
    truth, bent, density = case
    result = refine_whole_model(bent, density, 3.5, options=FAST)
    start_rmsd = float(np.sqrt(((_ca(bent) - _ca(truth)) ** 2).sum(1).mean()))
    final_rmsd = float(np.sqrt(((_ca(result.structure) - _ca(truth)) ** 2).sum(1).mean()))
    assert result.refined, result.message
    assert result.cc_mask_after > result.cc_mask_before + 0.1
    assert result.residue_cc_gain > 0.05
    assert final_rmsd < 0.5 * start_rmsd
    assert final_rmsd < 0.6
    # geometry kept: near Amber14's equilibrium, better than the bent start, no new clashes
    assert result.geometry_after.bond_rmsd < 0.02
    assert result.geometry_after.angle_rmsd < 4.0
    assert result.geometry_after.angle_rmsd < result.geometry_before.angle_rmsd
    assert result.geometry_after.clashes <= max(result.geometry_before.clashes, 3)
    summary = result.summary()
    assert summary["residues"] == RESIDUES - 1  # the ACE cap stays fixed
    assert len(summary["residue_cc_after"]) == RESIDUES


def test_model_in_place_stays_in_place(case):
    truth, _, density = case
    result = refine_whole_model(truth, density, 3.5, options=FAST)
    moved = float(np.sqrt(((_ca(result.structure) - _ca(truth)) ** 2).sum(1).mean()))
    assert moved < 0.3
    assert result.cc_mask_after > result.cc_mask_before - 0.005


def test_confidence_must_match_the_residues(case):
    truth, _, density = case
    with pytest.raises(BadOptionError, match="confidence"):
        refine_whole_model(truth, density, 3.5, confidence=np.full(5, 90.0), options=FAST)
    with pytest.raises(BadOptionError):
        WholeModelOptions(free_below=95.0, confident=90.0)
