"""The good lead a hit needs grows with the number of rivals docked into its blob (ranking.HitRule.lead_needed)."""

from __future__ import annotations

import csv
from pathlib import Path

from ligfit.screen.ranking import HIT_RULE, call_hits

LIBRARY = Path(__file__).resolve().parent.parent / "ligfit" / "screen" / "common_ligands.csv"


def _library() -> list[tuple[str, str]]:
    with open(LIBRARY) as handle:
        return [(row["code"], row["smiles"]) for row in csv.DictReader(handle)]


def _screened(entries: list[tuple[str, str]], lead: float, rival_atoms: int = 30) -> dict:
    """HEM fitting 0.80 and every other entry ``lead`` behind it or further, all in blob 1; HEM's row after call_hits."""
    rows = [{"name": "HEM", "smiles": dict(entries)["HEM"], "fit_score": 0.80, "blob": 1, "status": "ok", "heavy_atoms": 43}]
    others = [(code, smiles) for code, smiles in entries if code not in ("HEM", "HEC", "HEA")]  # hemes are one answer
    rows += [
        {
            "name": code,
            "smiles": smiles,
            "fit_score": round(0.80 - lead - 0.001 * i, 4),
            "blob": 1,
            "status": "ok",
            "heavy_atoms": rival_atoms,
        }
        for i, (code, smiles) in enumerate(others)
    ]
    return next(row for row in call_hits(rows) if row["name"] == "HEM")


def test_the_lead_needed_grows_from_few_rivals_to_many():
    assert HIT_RULE.lead_needed(0) == HIT_RULE.lead_needed(HIT_RULE.few_rivals) == HIT_RULE.good_margin
    assert HIT_RULE.lead_needed(HIT_RULE.many_rivals) == HIT_RULE.lead_needed(1000) == HIT_RULE.crowded_margin
    middle = [HIT_RULE.lead_needed(n) for n in range(HIT_RULE.few_rivals, HIT_RULE.many_rivals + 1)]
    assert all(a <= b for a, b in zip(middle, middle[1:])) and HIT_RULE.good_margin < middle[len(middle) // 2] < HIT_RULE.crowded_margin


def test_a_lead_that_calls_a_hit_among_a_few_rivals_does_not_among_many():
    entries = _library()
    few = _screened(entries[:12] + [e for e in entries if e[0] == "HEM"], lead=0.05)
    assert few["hit"] and few["confidence"] > 0.5, few
    many = _screened(entries, lead=0.05)  # the whole shipped library in one blob: dozens of other skeletons
    assert not many["hit"] and many["confidence"] < 0.5, many
    assert _screened(entries, lead=0.08)["hit"]
    # rivals of a very different size do not count: the same library, every other entry twice HEM's size
    assert _screened(entries, lead=0.05, rival_atoms=90)["hit"]
    # standing far out is judged as before, whatever the crowd: fit ≥ 0.45 and ≥ 0.17 ahead
    assert HIT_RULE.is_hit(0.50, 0.18, rivals=500) and not HIT_RULE.is_hit(0.50, 0.10, rivals=5)
