"""Difference maps and blobs on simulated PoseBusters complexes and the real haemoglobin map."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.cases import hemoglobin_hemes, simulated_case
from ligfit import io, segment
from ligfit.ligand import load_ligand
from ligfit.records import LigandShape


def _shape(smiles: str) -> LigandShape:
    ligand = load_ligand(smiles, max_conformers=10)
    return LigandShape.from_conformers(ligand.conformer_coordinates()[:, : ligand.heavy_atom_count])


@pytest.mark.parametrize(("entry", "resolution"), [("7KRU_ATP", 3.0), ("6XHT_V2V", 4.0)])
def test_top_blob_is_the_ligand_and_its_size_is_estimated(data, entry, resolution):
    case = simulated_case(data, entry, resolution)
    difference = segment.difference_map(case.density, case.model, resolution)
    blobs = segment.find_blobs(difference, _shape(case.smiles), io.heavy_atoms(case.model).coordinates)
    truth = case.reference.GetConformer().GetPositions()
    assert np.linalg.norm(truth - blobs[0].centroid, axis=1).min() < 1.5  # the top blob sits on the ligand
    # Weak ligand density can break into pieces; together they hold 60–100% of the atoms
    # (occupancy is drawn from 0.6–1.0).
    on_ligand = [b for b in blobs if np.linalg.norm(truth - b.centroid, axis=1).min() < 1.5]
    assert 0.5 * len(truth) < sum(b.estimated_heavy_atoms for b in on_ligand) < 1.25 * len(truth)


def test_pocket_without_ligand_has_no_ligand_sized_blob(data):
    case = simulated_case(data, "7KRU_ATP", 3.0, with_ligand=False)
    difference = segment.difference_map(case.density, case.model, 3.0)
    blobs = segment.find_blobs(difference, _shape(case.smiles), io.heavy_atoms(case.model).coordinates)
    assert all(b.estimated_heavy_atoms < 0.3 * 31 for b in blobs)


def test_real_map_hemes_are_the_largest_unexplained_blobs(data):
    density, model, hemes = hemoglobin_hemes(data)
    difference = segment.difference_map(density, model, 3.2)
    blobs = segment.find_blobs(difference, _shape("ccd:HEM"), io.heavy_atoms(model).coordinates)
    heme_centres = [h.GetConformer().GetPositions().mean(0) for h in hemes["5NI1"]]
    nearest = [min(np.linalg.norm(b.centroid - c) for b in blobs[:4]) for c in heme_centres]
    assert max(nearest) < 4.0  # each heme is among the four best-ranked blobs
    assert difference.model_cc > 0.6
