"""Errors of the evaluation harness (all ``LigfitError``: the CLI prints them as one line)."""

from __future__ import annotations

from ligfit.errors import LigfitError


class BadSubmissionsError(LigfitError):
    """The submissions table or one of its rows cannot be used (missing column, file or number)."""
