"""Errors of the template library (its own module, as ``ligfit.errors`` is shared by every stage)."""

from __future__ import annotations

from ligfit.errors import LigfitError


class TemplateLibraryError(LigfitError):
    """The template library is missing, empty, from another format version, or half-written."""


class TemplateSourceError(LigfitError):
    """A source of template complexes cannot be read (no such file, no ligand, no protein)."""
