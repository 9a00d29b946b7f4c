"""Docking ligand conformers into unexplained density (see ``place.py`` for the stages)."""

from ligfit.dock.options import DockingOptions
from ligfit.dock.place import DockingResult, Pose, SeedPose, dock
from ligfit.dock.score import count_clashes, ligand_cc, relax_pose, symmetric_rmsd, symmetry_matches

__all__ = [
    "DockingOptions",
    "DockingResult",
    "Pose",
    "SeedPose",
    "count_clashes",
    "dock",
    "ligand_cc",
    "relax_pose",
    "symmetric_rmsd",
    "symmetry_matches",
]
