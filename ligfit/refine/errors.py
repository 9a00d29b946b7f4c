"""Errors raised while setting up or running a refinement."""

from __future__ import annotations

from ligfit.errors import BadLigandError, LigfitError


class RefinementError(LigfitError):
    """The complex cannot be refined (e.g. nothing of the pocket is inside the map)."""


class UnsupportedLigandError(BadLigandError):
    """No available force field has parameters for this ligand (metals, boron, unusual valences)."""
