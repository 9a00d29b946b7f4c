"""Shared fixtures: the real structural data in ../shared/data (skipped cleanly where absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for benchmarks.cases

from benchmarks.cases import data_root  # noqa: E402


@pytest.fixture(scope="session")
def data() -> Path:
    """The unpacked ../shared/data, or skip the test."""
    root = data_root()
    if root is None:
        pytest.skip("../shared/data is not available")
    return root


@pytest.fixture(scope="session")
def hemoglobin(data):
    from ligfit import io, maps

    folder = data / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"
    return maps.read_map(folder / "emd_3488.mrc"), io.read_structure(folder / "5me2.pdb")
