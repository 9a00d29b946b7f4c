"""Errors of predicted-model fitting; each is a :class:`ligfit.errors.LigfitError`."""

from __future__ import annotations

from ligfit.errors import BadMapError, BadModelError, NothingFitsError


class ModelDoesNotFitError(NothingFitsError):
    """A chain of the model fits nowhere in the map (another protein, or the map lacks it)."""


class ModelTooLargeError(BadModelError):
    """The model (or one chain) is larger than the map's box."""


class ResolutionTooLowError(BadMapError):
    """The map's resolution is too low for a rotational search of a model."""


class BadConfidenceError(BadModelError):
    """The pLDDT or PAE given with the model cannot be used."""
