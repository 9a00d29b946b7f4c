"""ligfit: fit a ligand into a cryo-EM map around a protein model, with the evidence that it is there.

``ligfit.refine`` is the refinement package; refining a model file is ``ligfit.api.refine``.
"""

from ligfit.api import build, build_templates, challenge, evaluate, fit, identify, screen, simulate, template_library
from ligfit.dock import DockingOptions, DockingResult
from ligfit.errors import BadLigandError, BadMapError, BadModelError, BadOptionError, LigfitError, NothingFitsError, OutputExistsError
from ligfit.ligand import Ligand, load_ligand
from ligfit.maps import DensityMap, read_map, write_map
from ligfit.pipeline import AUTO_COPIES, BuildOptions, BuildResult
from ligfit.records import Blob, Pose
from ligfit.refine import LigandParameterCache, RefinementOptions
from ligfit.templates import TemplateOptions

__version__ = "0.1.0"

__all__ = [
    "AUTO_COPIES",
    "BadLigandError",
    "BadMapError",
    "BadModelError",
    "BadOptionError",
    "Blob",
    "BuildOptions",
    "BuildResult",
    "DensityMap",
    "DockingOptions",
    "DockingResult",
    "Ligand",
    "LigandParameterCache",
    "LigfitError",
    "NothingFitsError",
    "OutputExistsError",
    "Pose",
    "RefinementOptions",
    "TemplateOptions",
    "build",
    "build_templates",
    "challenge",
    "evaluate",
    "fit",
    "identify",
    "load_ligand",
    "read_map",
    "screen",
    "simulate",
    "template_library",
    "write_map",
]
