"""ligfit.dock.score_pose: a given pose scored as docking scores its own (the shipped Tyk2 example; no ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from benchmarks.ligand_placement import ligand_rmsd
from benchmarks.realistic_maps import reference_pose
from ligfit import io, segment
from ligfit.dock import score_pose
from ligfit.ligand import heavy_atom_mol
from ligfit.pipeline import BuildResult, run_build


@pytest.fixture(scope="module")
def example() -> tuple[BuildResult, Chem.Mol]:
    result = run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), FAST_BUILD)
    return result, Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))


def _score(result: BuildResult, coordinates: np.ndarray) -> float:
    blob = next(b for b in result.blobs if b.rank == result.best_pose.blob_rank)
    difference = segment.without_explained(result.difference.difference, result.blobs)
    pose = score_pose(result.ligand, coordinates, difference, blob, 3.0, io.heavy_atoms(result.model), result.options.docking)
    return pose.score


def test_a_docked_pose_scores_again_as_docking_scored_it(example):
    result, _ = example
    best = result.best_pose
    assert _score(result, best.coordinates) == pytest.approx(best.score_before_tie_breaks, abs=0.02)


def test_the_deposited_pose_scores_as_well_as_the_answer_and_a_shifted_one_much_worse(example):
    result, reference = example
    deposited = reference_pose(result.ligand, reference)
    assert ligand_rmsd(heavy_atom_mol(result.ligand, deposited), reference) < 1e-6  # heavy atoms exactly where deposited
    best = result.best_pose.score_before_tie_breaks
    at_deposited = _score(result, deposited)
    assert at_deposited > best - 0.05  # the small search's answer (0.81) is no better than the deposited pose (0.90)
    assert _score(result, deposited + np.array([2.5, 0.0, 0.0])) < at_deposited - 0.15
