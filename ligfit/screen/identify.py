"""What is this blob? Rank the shipped library of common ligands (common_ligands.csv) against it."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from ligfit.runtime import Progress, no_progress
from ligfit.screen.library import COMMON_LIGANDS_FILE, Library, LibraryEntry, read_library
from ligfit.screen.run import ScreenOptions, ScreenResult, run_screen

COMMON_LIGANDS = Path(__file__).with_name(COMMON_LIGANDS_FILE)
#: conformers per flexible candidate (> FLEXIBLE_ROTORS rotatable bonds: lipids, detergents) in identification
IDENTIFY_FLEXIBLE_CONFORMERS = 3


def common_library(categories: tuple[str, ...] | None = None) -> Library:
    """The shipped library (nucleotides, cofactors, heme, buffer and cryo components, detergents, lipids, sugars, ions)."""
    with open(COMMON_LIGANDS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    entries = [
        LibraryEntry(row["code"], row["smiles"], "", int(row["heavy_atoms"]), f"{COMMON_LIGANDS.name}:{row['category']}", row["code"])
        for row in rows
        if categories is None or row["category"] in categories
    ]
    return read_library(entries)


def run_identify(
    density_map,
    model,
    options: ScreenOptions,
    *,
    top: int = 10,
    workers: int | None = None,
    scheduler: str | object | None = None,
    out: str | os.PathLike | None = None,
    library: Library | None = None,
    progress: Progress = no_progress,
) -> ScreenResult:
    """Screen the common-ligand library against one blob (``options.blob``) or a site.

    Lipids, detergents and other molecules with many rotatable bonds are docked with
    :data:`IDENTIFY_FLEXIBLE_CONFORMERS` conformers unless ``options.flexible_conformers`` says otherwise
    (their growth from anchors explores the torsions anyway; a full conformer set made them the slow tail).
    """
    if options.flexible_conformers is None:
        options = dataclasses.replace(options, flexible_conformers=IDENTIFY_FLEXIBLE_CONFORMERS)
    return run_screen(
        density_map, model, library or common_library(), options, top=top, workers=workers, scheduler=scheduler, out=out, progress=progress
    )
