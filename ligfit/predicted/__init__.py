"""Predicted models (AlphaFold, homologues) fitted into a map they were not placed in.

``fit_model(structure, density, resolution)`` trims low-confidence residues, places every chain
by a global rotational + FFT translational search (``search.py``), refines the placements rigidly
and by domains (``domains.py``), and returns a :class:`FitResult`; ``needs_fitting`` says whether a
model still needs it. docs/benchmarks.md ("Fitting predicted models") has the method and its benchmark.
"""

from ligfit.predicted.domains import PLDDT_CUTOFF, plddt, read_pae, split_domains, trim_low_confidence
from ligfit.predicted.errors import BadConfidenceError, ModelDoesNotFitError, ModelTooLargeError, ResolutionTooLowError
from ligfit.predicted.fitting import ChainPlacement, FitResult, fit_model, needs_fitting
from ligfit.predicted.score import cc_mask, overlap
from ligfit.predicted.search import RigidPlacement, global_search, uniform_rotations

__all__ = [
    "PLDDT_CUTOFF",
    "BadConfidenceError",
    "ChainPlacement",
    "FitResult",
    "ModelDoesNotFitError",
    "ModelTooLargeError",
    "ResolutionTooLowError",
    "RigidPlacement",
    "cc_mask",
    "fit_model",
    "global_search",
    "needs_fitting",
    "overlap",
    "plddt",
    "read_pae",
    "split_domains",
    "trim_low_confidence",
    "uniform_rotations",
]
