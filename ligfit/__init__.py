"""ligfit: fit a ligand into a cryo-EM map around a protein model, with the evidence that it is there."""

from ligfit.api import build, challenge, evaluate, simulate
from ligfit.dock import DockingOptions, DockingResult, Pose
from ligfit.errors import BadLigandError, BadMapError, BadModelError, LigfitError, NothingFitsError, OutputExistsError
from ligfit.ligand import Ligand, load_ligand
from ligfit.maps import DensityMap, read_map, write_map
from ligfit.pipeline import BuildOptions, BuildResult

__version__ = "0.1.0"

__all__ = [
    "BadLigandError",
    "BadMapError",
    "BadModelError",
    "BuildOptions",
    "BuildResult",
    "DensityMap",
    "DockingOptions",
    "DockingResult",
    "Ligand",
    "LigfitError",
    "NothingFitsError",
    "OutputExistsError",
    "Pose",
    "build",
    "challenge",
    "evaluate",
    "load_ligand",
    "read_map",
    "simulate",
    "write_map",
]
