"""How far a pose stands ahead of the best different pose in its blob (``ligfit.dock.pose_gap``), and the screen's column."""

from __future__ import annotations

import numpy as np
from test_screen import DECOYS, EXAMPLE, TEST_DOCKING, TRUE_LIGAND

from ligfit.dock import pose_gap
from ligfit.ligand import load_ligand
from ligfit.measures import ligand_symmetry
from ligfit.records import Pose
from ligfit.screen import ScreenOptions, run_screen


def _pose(coordinates: np.ndarray, score: float, blob: int = 0, shift: float = 0.0) -> Pose:
    return Pose(coordinates, blob, score, 0.8, 2.0, 1.0, 0, 0, None, "test", tie_break_shift=shift)


def test_symmetric_copies_and_other_blobs_are_no_rival_a_moved_pose_is():
    ligand = load_ligand("c1ccccc1C(=O)O", max_conformers=1)  # benzoic acid: ring flips and the carboxylate's oxygens
    heavy = ligand.conformer_coordinates()[0][: ligand.heavy_atom_count]
    matches = ligand_symmetry(ligand)
    chosen = _pose(heavy, 0.80)
    flipped = _pose(heavy[matches[-1]], 0.79)  # the same pose with its symmetric atoms swapped
    assert not np.allclose(flipped.coordinates, heavy)
    elsewhere = _pose(heavy + [6.0, 0.0, 0.0], 0.75, blob=1)
    assert pose_gap(chosen, [chosen, flipped, elsewhere], matches) is None

    moved = _pose(heavy + [3.0, 0.0, 0.0], 0.70)
    assert abs(pose_gap(chosen, [chosen, flipped, moved, elsewhere], matches) - 0.10) < 1e-9
    # a rival that a near-tie break alone brought close: the scores before the breaks tell them apart
    lifted = _pose(heavy + [3.0, 0.0, 0.0], 0.79, shift=0.09)
    assert abs(pose_gap(chosen, [chosen, lifted], matches) - 0.10) < 1e-9


def test_screen_rows_carry_the_pose_gap_and_the_true_ligand_stands_out(tmp_path):
    """The shipped Tyk2 map: each decoy's pose has a different pose close to it (gaps within ±0.08; negative where docking
    scores the other one higher and the ranked pose fits the blob better); the true ligand none as close."""
    library = [("tyk2", TRUE_LIGAND), *DECOYS]
    options = ScreenOptions(resolution=3.0, max_conformers=3, docking=TEST_DOCKING)
    result = run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", library, options, workers=1, out=tmp_path)
    gaps = {row["name"]: row["pose_gap"] for row in result.rows}
    decoy_gaps = [gaps[name] for name, _ in DECOYS]
    assert all(gap is not None and abs(gap) < 0.15 for gap in decoy_gaps), gaps
    assert gaps["tyk2"] is None or gaps["tyk2"] > max(abs(gap) for gap in decoy_gaps), gaps
    header = (tmp_path / "ranking.csv").read_text().splitlines()[0].split(",")
    assert "pose_gap" in header
    assert "pose gap" in (tmp_path / "ranking.html").read_text()
