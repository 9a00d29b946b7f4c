"""Docking ligand conformers into unexplained density (see ``place.py`` for the stages)."""

from ligfit.dock.options import DockingOptions
from ligfit.dock.place import DockingResult, dock, pose_gap, score_pose

__all__ = ["DockingOptions", "DockingResult", "dock", "pose_gap", "score_pose"]
