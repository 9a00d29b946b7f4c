"""The composite score that ranks ligand models: one weighted mean of terms in [0, 1], weights here only.

The 2019 and 2021 EMDataResource challenges found that no single score suffices, so the composite
combines fit to the map, agreement with the reference, and chemistry:

=========  ======  ==================================================================
term       weight  value in [0, 1]
=========  ======  ==================================================================
q_score    0.20    ligand mean Q-score / expected Q at the map's resolution, capped at 1
cc_mask    0.15    ligand CC_mask, clipped at 0
lddt_pli   0.20    LDDT-PLI against the reference ligand
rmsd       0.15    1 − RMSD / 4 Å, clipped at 0 (symmetry-corrected, no superposition)
geometry   0.15    1 / (1 + excess bond RMSZ + excess angle RMSZ + chirality errors + bent planes),
                   an RMSZ counting as excess above 1
clashes    0.15    1 / (1 + serious clashes involving the ligand)
=========  ======  ==================================================================

Without a reference (or when its ligand has other chemistry) lddt_pli and rmsd are left out and
the remaining weights are rescaled to sum to 1; a term that cannot be computed (NaN) is left out
the same way. The terms used are reported with the score.
"""

from __future__ import annotations

import math

WEIGHTS: dict[str, float] = {"q_score": 0.20, "cc_mask": 0.15, "lddt_pli": 0.20, "rmsd": 0.15, "geometry": 0.15, "clashes": 0.15}
RMSD_SCALE = 4.0  # Å at which the RMSD term reaches 0


def composite_terms(ligand: dict, expected_q: float) -> dict[str, float]:
    """Each term of the composite in [0, 1] (NaN when it cannot be computed) from one ligand's metrics."""
    geometry = ligand.get("geometry") or {}
    excess = (
        max(0.0, _number(geometry.get("bond_rmsz")) - 1.0)
        + max(0.0, _number(geometry.get("angle_rmsz")) - 1.0)
        + _number(geometry.get("chirality_errors"))
        + _number(geometry.get("nonplanar_planes"))
    )
    reference = ligand.get("reference") or {}
    return {
        "q_score": _clip(_number(ligand.get("q_score")) / expected_q) if expected_q > 0 else math.nan,
        "cc_mask": _clip(_number(ligand.get("cc_mask"))),
        "lddt_pli": _clip(_number(reference.get("lddt_pli"))),
        "rmsd": _clip(1.0 - _number(reference.get("rmsd")) / RMSD_SCALE),
        "geometry": 1.0 / (1.0 + excess) if geometry and math.isfinite(excess) else math.nan,
        "clashes": 1.0 / (1.0 + _number(ligand.get("clash_count"))),
    }


def composite_score(terms: dict[str, float]) -> tuple[float, list[str]]:
    """Weighted mean of the finite terms, weights rescaled over them; and the names of the terms used."""
    used = [name for name, value in terms.items() if name in WEIGHTS and math.isfinite(value)]
    total = sum(WEIGHTS[name] for name in used)
    if total == 0:
        return math.nan, []
    return sum(WEIGHTS[name] * terms[name] for name in used) / total, used


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else math.nan
