"""Screening a ligand library against one map, and identifying what a blob holds.

``read_library`` reads SMILES/SDF/CSV libraries; ``run_screen`` docks every ligand into the
map's unexplained density (locally on all cores, or on a Dask cluster) and ranks them with
size-neutral scores (``ranking``); ``run_identify`` does the same with the shipped library of
ligands common in cryo-EM and crystal maps.
"""

from ligfit.screen.identify import common_library, run_identify
from ligfit.screen.library import BadLibraryError, EmptyLibraryError, Library, LibraryEntry, read_library
from ligfit.screen.ranking import HIT_SCORE
from ligfit.screen.run import QUICK_SCREEN_DOCKING, SCREEN_DOCKING, ScreenOptions, ScreenResult, run_screen, screen_ligand

__all__ = [
    "HIT_SCORE",
    "QUICK_SCREEN_DOCKING",
    "SCREEN_DOCKING",
    "BadLibraryError",
    "EmptyLibraryError",
    "Library",
    "LibraryEntry",
    "ScreenOptions",
    "ScreenResult",
    "common_library",
    "read_library",
    "run_identify",
    "run_screen",
    "screen_ligand",
]
