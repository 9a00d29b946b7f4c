"""The screening benchmark's confidence-against-outcomes table (benchmarks/screening.py, ``reliability``): every
library's answer is a claim, right only when it names the true ligand; a decoy-only library's hit is always wrong."""

from __future__ import annotations

from benchmarks.screening import best_hit, judge, reliability


def _row(name: str, fit: float, smiles: str, heavy_atoms: int = 20) -> dict:
    return {"name": name, "fit_score": fit, "smiles": smiles, "blob": 1, "status": "ok", "heavy_atoms": heavy_atoms}


def test_answers_are_counted_by_confidence_and_decoy_hits_are_wrong():
    cases = [
        {"claim_confidence": 0.95, "claim_right": True, "decoy_claim_confidence": None},
        {"claim_confidence": 0.92, "claim_right": False, "decoy_claim_confidence": 0.55},
        {"claim_confidence": None, "claim_right": False, "decoy_claim_confidence": 1.0},
        {"claim_confidence": 0.65, "claim_right": True, "decoy_claim_confidence": None},
    ]
    table = {row["bin"]: row for row in reliability(cases)}
    assert set(table) == {"0.5–0.6", "0.6–0.7", "0.9–1.0"}
    assert (table["0.9–1.0"]["claims"], table["0.9–1.0"]["right"]) == (3, 1)  # 1.0 falls in the top bin
    assert (table["0.5–0.6"]["claims"], table["0.5–0.6"]["right"]) == (1, 0)
    assert abs(table["0.9–1.0"]["mean_confidence"] - (0.95 + 0.92 + 1.0) / 3) < 1e-9


def test_judge_names_each_library_answer():
    # the true ligand (a long chain) far ahead of two ring decoys of other skeletons: the library's answer is TRUE;
    # the decoys alone neither fit well (0.60 < 0.65) nor stand far out (+0.01 < 0.17): "none fits", no claim
    rows = [_row("TRUE", 0.85, "CCCCCCCCCCCC(=O)O"), _row("decoy_A", 0.60, "c1ccc2ccccc2c1"), _row("decoy_B", 0.59, "C1CCNCC1")]
    judged = judge(rows)
    assert judged["claim"] == "TRUE" and judged["claim_right"] and judged["claim_confidence"] > 0.9
    assert judged["decoy_claim"] is None and judged["decoys_only_none_fits"]
    assert best_hit([dict(row, hit=False) for row in rows]) is None


def test_confidence_meaning_names_the_benchmark_bin_of_the_confidence():
    """What a best hit's confidence has meant (ranking.SCREEN_CONFIDENCE_RECORD): each bin its own counts, none below 0.5."""
    from ligfit.screen.ranking import SCREEN_CONFIDENCE_RECORD, confidence_meaning

    for lowest, right, called in SCREEN_CONFIDENCE_RECORD:
        meaning = confidence_meaning(lowest + 0.05)
        assert f"{right} of {called} best hits called at confidence {lowest:.1f}–{lowest + 0.1:.1f}" in meaning
    assert confidence_meaning(1.0) == confidence_meaning(0.95)
    assert confidence_meaning(0.49) is None and confidence_meaning(None) is None
    # the bins were measured as the benchmark's own table groups them: the higher, the more often right
    rates = [right / called for _, right, called in SCREEN_CONFIDENCE_RECORD]
    assert rates[0] > rates[-1]


def test_a_true_ligand_that_was_not_docked_has_no_rank():
    # 7ZTL's BCN at 3.5 Å, split 36: no blob above the threshold, nothing docked; the screen lists the library in its own
    # order, the true ligand first, which must not count as ranked first
    undocked = {"status": "no_blob", "fit_score": None, "note": "no unexplained density above 3.0 σ near the model"}
    nothing_docked = [dict(_row("TRUE", 0.0, "CCO"), **undocked), dict(_row("decoy_A", 0.0, "CCN"), **undocked)]
    assert judge(nothing_docked)["true_rank"] is None
    # filtered (too big for its blob) behind docked decoys: not ranked either, and a docked ligand's rank counts docked ones
    filtered = dict(_row("TRUE", 0.0, "CCCCCCCCCCCC(=O)O"), status="filtered", fit_score=None)
    assert judge([_row("decoy_A", 0.60, "c1ccc2ccccc2c1"), filtered])["true_rank"] is None
    docked = [_row("decoy_A", 0.60, "c1ccc2ccccc2c1"), _row("TRUE", 0.55, "CCCCCCCCCCCC(=O)O"), filtered | {"name": "decoy_B"}]
    assert judge(docked)["true_rank"] == 2
