"""Errors of the backbone network and tracing (all under ``LigfitError``; messages say what to do)."""

from __future__ import annotations

from ligfit.errors import BadMapError, LigfitError


class BadWeightsError(LigfitError):
    """The network weights are missing, corrupted (checksum) or made for another contract."""


class NoProteinDensityError(BadMapError):
    """The map holds nothing the network recognises as a protein backbone."""


class SequenceMismatchError(LigfitError):
    """The given sequence does not match the traced chains better than a shuffled sequence does."""


class MapTooLargeError(BadMapError):
    """The map is too large to run the network over in reasonable time; box it first."""
