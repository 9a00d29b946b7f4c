"""ligfit evaluate's map–model CCs and Q-score against cctbx/mmtbx itself (phenix.map_model_cc's code).

Runs only where cctbx-base is installed (``pip install cctbx-base``) and ../shared/data is present.
cctbx must be imported before gemmi in a process, so mmtbx runs in its own interpreter
(``benchmarks/phenix_agreement.py --mmtbx``).
"""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks import phenix_agreement
from ligfit.evaluate import evaluate_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mmtbx") is None, reason="cctbx-base is not installed")

CCS = phenix_agreement.CCS


@pytest.fixture(scope="module")
def hemoglobin_scores(data):
    """EMD-3488 with 5ME2 (3.2 Å): mmtbx's and ligfit's scores for the whole model and each heme."""
    case = phenix_agreement.cases(data, quick=True)[0]
    reference = phenix_agreement.run_mmtbx([{**case, "q": True}])[0]
    evaluation = evaluate_model(case["model"], case["map"], case["resolution"], ligands={"HEM"}, add_hydrogens=False)
    return case, reference, evaluation


def test_whole_model_ccs_and_q_match_mmtbx(hemoglobin_scores):
    _, reference, evaluation = hemoglobin_scores
    for name in CCS:
        assert evaluation.model[name] == pytest.approx(reference["model"][name], abs=0.005), name
    assert evaluation.model["q_score"] == pytest.approx(reference["model"]["q_score"], abs=0.02)


def test_each_heme_ccs_and_q_match_mmtbx(hemoglobin_scores):
    case, reference, evaluation = hemoglobin_scores
    ours = {ligand["ligand"]: ligand for ligand in evaluation.ligands}
    assert set(ours) == set(case["ligands"]) and len(ours) == 4
    for label, theirs in reference["ligands"].items():
        for name in CCS:
            # phenix.map_model_cc as shipped (ligfit mirrors cctbx's FFT structure factors, wing cut-off included).
            assert ours[label][name] == pytest.approx(theirs[name], abs=0.005), (label, name)
        assert ours[label]["q_score"] == pytest.approx(theirs["q_score"], abs=0.02), label


@pytest.fixture(scope="module")
def crystal_scores(data):
    """3NZD's 1.8 Å 2mFo-DFc map (R3, γ = 120°) on its own grid: mmtbx's and ligfit's CCs per ligand (D2Q, NDP)."""
    case = phenix_agreement.cases(data, quick=False)[-1]
    assert case["name"].startswith("3NZD")
    reference = phenix_agreement.run_mmtbx([{**case, "whole": False, "q": False}])[0]
    evaluation = evaluate_model(
        case["model"], case["map"], case["resolution"], ligands={"D2Q", "NDP"}, whole_model=False, add_hydrogens=False
    )
    return reference, evaluation


def test_crystallographic_map_ccs_per_ligand_match_mmtbx(crystal_scores):
    reference, evaluation = crystal_scores
    ours = {ligand["residue_name"]: ligand for ligand in evaluation.ligands}
    assert set(ours) == {"D2Q", "NDP"}
    for label, theirs in reference["ligands"].items():
        for name in CCS:
            assert ours[label][name] == pytest.approx(theirs[name], abs=0.005), (label, name)
