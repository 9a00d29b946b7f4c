"""The shipped Tyk2 example and a small docking search for the tests that build it (a few seconds on 2 cores)."""

from __future__ import annotations

from pathlib import Path

from ligfit.dock import DockingOptions
from ligfit.pipeline import BuildOptions

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"
SMILES = (EXAMPLE / "ligand.smi").read_text().strip()

#: A small docking search: enough for the example's clear density.
FAST_DOCKING = DockingOptions(
    random_orientations=4,
    smooth_steps=40,
    anchors=1,
    anchor_rotations=100,
    anchor_poses=4,
    beam_width=4,
    refine_poses=12,
    survivors_per_candidate=8,
    refine_steps=50,
    hops=1,
    hop_steps=30,
    scored_poses=4,
    final_poses=4,
)
#: The example built fast: no refinement, no templates, at most 8 conformers, the small search.
FAST_BUILD = BuildOptions(resolution=3.0, refine=False, use_templates=False, max_conformers=8, docking=FAST_DOCKING)
