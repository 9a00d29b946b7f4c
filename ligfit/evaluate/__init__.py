"""Evaluation harness: the EMDataResource ligand-challenge metrics for one model or a whole challenge.

``evaluate_model`` scores one protein–ligand model against its map (and a reference model);
``run_challenge`` evaluates a submissions table in parallel, resumably, into ``scores.csv`` and
``report.html``. Every metric is a plain function in its own module.
"""

from ligfit.evaluate.challenge import ChallengeResult, Submission, read_submissions, run_challenge
from ligfit.evaluate.composite import WEIGHTS, composite_score, composite_terms
from ligfit.evaluate.errors import BadSubmissionsError
from ligfit.evaluate.metrics import Evaluation, evaluate_model

__all__ = [
    "WEIGHTS",
    "BadSubmissionsError",
    "ChallengeResult",
    "Evaluation",
    "Submission",
    "composite_score",
    "composite_terms",
    "evaluate_model",
    "read_submissions",
    "run_challenge",
]
