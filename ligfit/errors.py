"""Errors that ligfit raises for bad input or for results it cannot stand behind.

Every message names the problem, the file or value involved, and what to do about it.
The CLI prints a ``LigfitError`` as one line and exits non-zero; any other exception is a bug.
"""

from __future__ import annotations


class LigfitError(Exception):
    """Base class for every error caused by input or data rather than by a bug."""


class BadMapError(LigfitError):
    """The density map cannot be read or used (truncated, no voxel size, empty, ...)."""


class BadModelError(LigfitError):
    """The protein model cannot be read or does not match the map."""


class BadLigandError(LigfitError):
    """The ligand cannot be parsed, sanitised or embedded in 3D."""


class NothingFitsError(LigfitError):
    """The density supports no placement of what was given (a model chain that fits nowhere in the map)."""


class BadOptionError(LigfitError):
    """An option has an impossible value (a negative resolution, an unknown method name, ...)."""


class SchedulerError(LigfitError):
    """The Dask scheduler named with --scheduler does not answer."""


class OutputExistsError(LigfitError):
    """The output folder exists and overwriting was not asked for."""
