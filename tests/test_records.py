"""ligfit.records: the ligand's shape, principal spreads, and the plain-data summaries of blobs and poses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ligfit.ligand import load_ligand
from ligfit.records import Blob, LigandShape, Pose, principal_spread

TYK2_SMILES = "CC(=O)Nc1cc(NC(=O)c2c(Cl)cccc2Cl)ccn1"


def _axis_points(a: float, b: float, c: float) -> np.ndarray:
    """Six points at ±a on x, ±b on y, ±c on z (centre 0)."""
    return np.array([[a, 0, 0], [-a, 0, 0], [0, b, 0], [0, -b, 0], [0, 0, c], [0, 0, -c]], dtype=float)


# --------------------------------------------------------------------------- principal_spread


def test_principal_spread_of_axis_points_by_hand():
    axes, spreads = principal_spread(_axis_points(3.0, 2.0, 1.0))
    # Sample covariance (n − 1 = 5): variance along x is 2·3²/5, along y 2·2²/5, along z 2·1²/5.
    np.testing.assert_allclose(spreads, np.sqrt(2 * np.array([9.0, 4.0, 1.0]) / 5), atol=1e-12)
    np.testing.assert_allclose(np.abs(axes), np.eye(3), atol=1e-12)  # rows, longest first


def test_principal_spread_follows_a_rotation_and_ignores_a_shift():
    rotation = Rotation.from_euler("zyx", [30, 50, -20], degrees=True).as_matrix()
    points = _axis_points(4.0, 2.5, 0.5) @ rotation.T + np.array([10.0, -3.0, 7.0])
    axes, spreads = principal_spread(points)
    np.testing.assert_allclose(spreads, np.sqrt(2 * np.array([16.0, 6.25, 0.25]) / 5), atol=1e-10)
    # Row i is the rotated i-th coordinate axis (up to sign).
    np.testing.assert_allclose(np.abs(np.sum(axes * rotation.T, axis=1)), 1.0, atol=1e-10)
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-10)


def test_principal_spread_with_weights():
    points = _axis_points(3.0, 2.0, 1.0)
    uniform_axes, uniform = principal_spread(points, np.full(6, 7.0))
    np.testing.assert_allclose(uniform, principal_spread(points)[1], atol=1e-12)
    # Weight only the two points on x: all spread lies along x, with aweights' unbiased correction
    # (Σw − Σw²/Σw = 2 − 1 = 1): variance = (1·9 + 1·9)/1 = 18.
    axes, spreads = principal_spread(points, np.array([1.0, 1.0, 0, 0, 0, 0]))
    np.testing.assert_allclose(spreads, [math.sqrt(18.0), 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.abs(axes[0]), [1.0, 0.0, 0.0], atol=1e-12)


def test_principal_spread_of_one_point_is_zero():
    axes, spreads = principal_spread(np.array([[1.0, 2.0, 3.0]]))
    assert axes.shape == (3, 3)
    np.testing.assert_array_equal(spreads, np.zeros(3))


# --------------------------------------------------------------------------- LigandShape


def test_ligand_shape_of_benzene_is_a_flat_disc():
    benzene = load_ligand("c1ccccc1", max_conformers=3, seed=0)
    heavy = benzene.conformer_coordinates()[:, : benzene.heavy_atom_count]
    shape = LigandShape.from_conformers(heavy)
    assert shape.heavy_atoms == 6
    # Six atoms on a circle of radius r (= C–C bond, ~1.39 Å): in-plane variance 6/5 · r²/2, none out of plane.
    radius = float(np.mean(np.linalg.norm(heavy[0] - heavy[0].mean(axis=0), axis=1)))
    assert 1.36 < radius < 1.42
    np.testing.assert_allclose(shape.extents[:2], radius * math.sqrt(0.6), atol=0.01)
    assert shape.extents[2] < 0.02


def test_ligand_shape_from_real_conformers_is_sorted_and_the_median():
    ligand = load_ligand(TYK2_SMILES, max_conformers=6, seed=0)
    heavy = ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]
    assert heavy.shape[0] >= 3
    shape = LigandShape.from_conformers(heavy)
    assert shape.heavy_atoms == 21 == ligand.heavy_atom_count
    assert shape.extents.shape == (3,)
    assert np.all(np.diff(shape.extents) <= 0)  # longest first
    per_conformer = np.array([principal_spread(c)[1] for c in heavy])
    np.testing.assert_allclose(shape.extents, np.median(per_conformer, axis=0))
    assert 2.0 < shape.extents[0] < 5.0 and shape.extents[2] < shape.extents[0] / 2  # an elongated molecule


# --------------------------------------------------------------------------- summaries


def _blob(**changes) -> Blob:
    fields = dict(
        rank=0,
        points=np.zeros((17, 3)),
        values=np.full(17, 4.0),
        volume=17.123456,
        centroid=np.array([1.23456, -2.34567, 3.45678]),
        principal_axes=np.eye(3),
        extents=np.array([2.34567, 1.23456, 0.98765]),
        peak=8.87654,
        mean=4.44444,
        estimated_heavy_atoms=12.3456,
        protein_contacts=42,
        protein_distance=2.34567,
        ligand_match=0.876543,
    )
    fields.update(changes)
    return Blob(**fields)


def _pose(**changes) -> Pose:
    fields = dict(
        coordinates=np.zeros((5, 3)),
        blob_rank=1,
        score=0.8765432,
        cc=0.7654321,
        mean_sigma=5.4321,
        fraction_in_density=0.87654,
        clashes=2,
        polar_contacts=3,
        strain=12.3456,
        source="conformer search",
        confidence=0.98765,
        packing=2.3456,
        interaction=-0.43219,
    )
    fields.update(changes)
    return Pose(**fields)


def test_blob_summary_is_rounded_plain_data():
    summary = _blob().summary()
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary == {
        "rank": 0,
        "voxels": 17,
        "volume_A3": 17.1,
        "centroid": [1.23, -2.35, 3.46],
        "extents_A": [2.35, 1.23, 0.99],
        "peak_sigma": 8.88,
        "mean_sigma": 4.44,
        "estimated_heavy_atoms": 12.3,
        "protein_contacts": 42,
        "protein_distance_A": 2.35,
        "ligand_match": 0.877,
        "explanation": "",
        "carved": False,
    }


def test_blob_summary_without_a_model_or_a_size():
    summary = _blob(protein_distance=float("inf"), estimated_heavy_atoms=None, protein_contacts=0).summary()
    json.dumps(summary, allow_nan=False)  # inf must not reach JSON
    assert summary["protein_distance_A"] is None and summary["estimated_heavy_atoms"] is None


def test_blob_summary_of_numpy_scalars_is_still_json():
    summary = _blob(volume=np.float64(3.14159), peak=np.float64(6.789), ligand_match=np.float64(0.5)).summary()
    assert json.loads(json.dumps(summary, allow_nan=False))["volume_A3"] == 3.1


def test_pose_summary_is_rounded_plain_data():
    summary = _pose().summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary == {
        "blob": 1,
        "score": 0.8765,
        "cc": 0.7654,
        "mean_sigma": 5.43,
        "fraction_in_density": 0.877,
        "clashes": 2,
        "polar_contacts": 3,
        "strain_kcal_mol": 12.3,
        "packing": 2.35,
        "interaction": -0.432,
        "found_by": "conformer search",
        "confidence": 0.988,
    }


@pytest.mark.parametrize("strain", [None, 0.0])
def test_pose_summary_strain(strain):
    summary = _pose(strain=strain).summary()
    json.dumps(summary, allow_nan=False)
    assert summary["strain_kcal_mol"] == strain


def test_records_are_frozen():
    with pytest.raises(AttributeError):
        _pose().score = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _blob().rank = 3  # type: ignore[misc]
