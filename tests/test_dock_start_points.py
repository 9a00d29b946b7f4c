"""Where the conformer search starts in a blob (place._start_points): the centroid, and the ends of a blob longer
than the ligand (8ACL in the realistic maps: the ligand at one end of its blob, 6.1 Å from the centroid)."""

from __future__ import annotations

import numpy as np
from tyk2_example import SMILES

from ligfit.dock.place import END_STARTS_MARGIN, _half_length, _start_points
from ligfit.ligand import load_ligand
from ligfit.records import Blob


def _rod(length: float, axis: np.ndarray) -> Blob:
    """A rod of density ``length`` Å long along ``axis``, 1 Å voxels, centred at (5, 5, 5)."""
    steps = np.arange(-length / 2, length / 2 + 1e-9, 1.0)
    side = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=float) - 0.5
    axis = axis / np.linalg.norm(axis)
    frame = np.linalg.qr(np.column_stack([axis, [0.3, 1, 0], [0, 0.2, 1]]))[0].T
    frame[0] = axis
    points = np.array([5 + s * axis + offset @ frame for s in steps for offset in side])
    return Blob(
        rank=0,
        points=points,
        values=np.full(len(points), 4.0),
        volume=float(len(points)),
        centroid=points.mean(0),
        principal_axes=frame,
        extents=np.array([length / np.sqrt(12), 0.5, 0.5]),
        peak=4.0,
        mean=4.0,
        estimated_heavy_atoms=10.0,
        protein_contacts=0,
        protein_distance=np.inf,
        ligand_match=1.0,
    )


def test_the_half_length_is_half_the_ligands_longest_extent():
    ligand = load_ligand(SMILES)
    half = _half_length(ligand)
    heavy = ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]
    spans = [np.linalg.norm(c[:, None] - c[None], axis=-1).max() / 2 for c in heavy]
    assert 0.8 * np.median(spans) < half <= max(spans) + 1e-9  # along the longest axis, at most the largest distance


def test_a_blob_about_the_ligands_length_starts_at_its_centroid():
    blob = _rod(10.0, np.array([1.0, 1.0, 0.0]))
    starts = _start_points(blob, 10, 5.0 - END_STARTS_MARGIN / 2 + 0.5)
    assert starts.shape == (1, 3) and np.allclose(starts[0], blob.centroid)


def test_a_longer_blob_also_starts_where_the_ligand_fits_at_each_end():
    axis = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    blob = _rod(18.0, axis)
    starts = _start_points(blob, 10, half_length=4.0)
    assert starts.shape == (3, 3) and np.allclose(starts[0], blob.centroid)
    along = sorted((starts[1:] - blob.centroid) @ axis)
    assert np.allclose(along, [-5.0, 5.0], atol=0.6)  # a ligand 8 Å long flush with either end of the 18 Å rod


def test_without_the_ligands_length_only_the_centroid():
    blob = _rod(18.0, np.array([1.0, 0.0, 0.0]))
    assert _start_points(blob, 10, None).shape == (1, 3)
