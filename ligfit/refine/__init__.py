"""Joint protein–ligand refinement against the map in OpenMM (Amber14 + GAFF2/AM1-BCC or MMFF94).

``refine(model, ligand, poses, density, resolution)`` refines the top docked poses with their
pocket and returns a :class:`RefinementResult` with before/after measures;
``refine_model`` refines the ligands already in a model; ``refine_whole_model`` refines a whole protein
flexibly against the map (a fitted predicted model). See ``system.py`` (what is built),
``parameters.py`` (ligand force fields), ``density.py`` (the map term), ``protocol.py`` (what is run).
"""

from ligfit.refine.errors import RefinementError, UnsupportedLigandError
from ligfit.refine.metrics import PoseMetrics, pose_metrics
from ligfit.refine.model import ModelRefinement, refine_model
from ligfit.refine.options import RefinementOptions
from ligfit.refine.parameters import GAFF2, MMFF94, LigandParameterCache, LigandParameters, ambertools_available
from ligfit.refine.posing import pose_from_atoms, pose_from_residue
from ligfit.refine.protocol import RefinementResult, StartOutcome, refine
from ligfit.refine.system import Pocket, find_pocket
from ligfit.refine.whole_model import ModelGeometry, WholeModelOptions, WholeModelRefinement, model_map_cc, refine_whole_model

__all__ = [
    "GAFF2",
    "MMFF94",
    "LigandParameterCache",
    "LigandParameters",
    "ModelGeometry",
    "ModelRefinement",
    "Pocket",
    "PoseMetrics",
    "RefinementError",
    "RefinementOptions",
    "RefinementResult",
    "StartOutcome",
    "UnsupportedLigandError",
    "WholeModelOptions",
    "WholeModelRefinement",
    "ambertools_available",
    "find_pocket",
    "model_map_cc",
    "pose_from_atoms",
    "pose_from_residue",
    "pose_metrics",
    "refine",
    "refine_model",
    "refine_whole_model",
]
