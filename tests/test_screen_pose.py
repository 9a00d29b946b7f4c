"""Which of a ligand's docked poses the screen ranks it by: the one that fits the blob best, not docking's own first."""

from __future__ import annotations

from rdkit import Chem

from ligfit.screen import ScreenOptions, run_screen
from ligfit.screen.ranking import call_hits, verdict


def test_the_ranked_pose_is_the_one_that_fits_the_blob_best(data):
    """7UEY's N0R at 3 Å (map and docking seed 4): docking scores another pose 0.07 higher than the one that fits the
    blob best, which lies 0.4 Å from the deposited pose (fit 0.68, a hit). (Seed 2 showed this with the torch search; with
    the compiled search of 2026-12-06 seeds 0, 3 and 4 do, and seed 2 no longer: the search's float rounding differs.)"""
    from benchmarks.cases import simulated_case
    from benchmarks.ligand_placement import ligand_rmsd

    case = simulated_case(data, "7UEY_N0R", 3.0, seed=4)
    result = run_screen(case.density, case.model, [("N0R", case.smiles)], ScreenOptions(resolution=3.0, seed=4), workers=1)
    row = result.rows[0]
    assert ligand_rmsd(Chem.MolFromMolBlock(row["pose"]["molblock"]), case.reference) < 2.0, result.table()
    assert row["fit_score"] >= 0.6 and row["hit"], result.table()
    assert "docking scores a different pose of it there" in result.verdict, result.verdict


def test_a_pose_docking_does_not_prefer_is_named_as_uncertain():
    rows = [
        {"name": "N0R", "status": "ok", "fit_score": 0.66, "blob": 1, "smiles": "c1ccccc1C(=O)N", "heavy_atoms": 27, "pose_gap": -0.051},
        {
            "name": "ATP",
            "status": "ok",
            "fit_score": 0.40,
            "blob": 1,
            "smiles": "Nc1ncnc2c1ncn2C1OC(COP(=O)(O)O)C(O)C1O",
            "heavy_atoms": 31,
        },
    ]
    line = verdict(call_hits(rows))
    assert line.startswith("N0R explains blob 1 best") and "docking scores a different pose of it there 0.051 higher" in line, line
    assert "ambiguous" not in line
