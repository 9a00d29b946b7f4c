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


@pytest.fixture(scope="session")
def screen_with_decoys(data):
    """A function screening a PoseBusters pocket simulated at ``resolution`` (benchmarks/cases.py, noise ``seed``) with its
    true ligand ("TRUE") and the named PoseBusters ligands as decoys ("decoy_CODE"), on one worker."""
    from benchmarks.cases import complex_entries, simulated_case
    from ligfit.screen import ScreenOptions, run_screen

    smiles = {row["ligand_ccd"]: row["lig_smiles"] for row in complex_entries(data)}

    def screen(entry: str, resolution: float, seed: int, decoys: tuple[str, ...], **options):
        case = simulated_case(data, entry, resolution, seed=seed)
        library = [("TRUE", case.smiles), *[(f"decoy_{code}", smiles[code]) for code in decoys]]
        return run_screen(case.density, case.model, library, ScreenOptions(resolution=resolution, seed=seed, **options), workers=1)

    return screen
