"""How well a placed model fits the map: CC in the model's mask, per-residue CC, overlap.

CC_mask is the Pearson correlation of the map with the model's density (atoms blurred to the
resolution) over the voxels near the atoms, as phenix.map_model_cc defines it. Coordinates are
in Å in the map's frame.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ligfit import maps
from ligfit.maps import DensityMap


def mask_radius(resolution: float) -> float:
    """Radius (Å) around each atom of the CC_mask mask."""
    return 1.5 + 0.3 * resolution


def model_density(coordinates: np.ndarray, weights: np.ndarray, grid: DensityMap, resolution: float) -> np.ndarray:
    """Atoms (Å) of the given weights splatted trilinearly onto ``grid`` and blurred to ``resolution`` Å."""
    index = grid.to_index(coordinates)
    base = np.floor(index).astype(int)
    frac = index - base
    values = np.zeros(grid.shape, dtype=np.float64)
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        at = base + offset
        keep = np.all((at >= 0) & (at < np.array(grid.shape)), axis=1)
        weight = np.prod(np.where(offset == 1, frac, 1 - frac), axis=1) * weights
        np.add.at(values, tuple(at[keep].T), weight[keep])
    return ndimage.gaussian_filter(values, 0.225 * resolution / grid.voxel_size, mode="constant")


def _grid_around(density: DensityMap, coordinates: np.ndarray, margin: float) -> DensityMap:
    low = coordinates.min(axis=0) - margin
    high = coordinates.max(axis=0) + margin
    return maps.box(density, (low + high) / 2, high - low)


def cc_mask(
    density: DensityMap,
    coordinates: np.ndarray,
    weights: np.ndarray,
    resolution: float,
    residue_of_atom: np.ndarray | None = None,
    residue_count: int = 0,
) -> tuple[float, np.ndarray]:
    """CC_mask of the model in ``density``, and per-residue CC (NaN where a residue has < 8 voxels) when residues are given.

    Each mask voxel belongs to the residue of its nearest atom.
    """
    radius = mask_radius(resolution)
    grid = _grid_around(density, coordinates, radius + 2 * resolution)
    calculated = model_density(coordinates, weights, grid, resolution).reshape(-1)
    points = grid.grid_points().reshape(-1, 3)
    distance, nearest = cKDTree(coordinates).query(points, distance_upper_bound=radius)
    inside = np.isfinite(distance)
    observed = grid.values.reshape(-1)[inside].astype(float)
    model = calculated[inside]
    total = _pearson(observed, model)
    per_residue = np.full(residue_count, np.nan)
    if residue_of_atom is not None and residue_count:
        groups = residue_of_atom[nearest[inside]]
        per_residue = grouped_pearson(observed, model, groups, residue_count)
    return total, per_residue


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def grouped_pearson(x: np.ndarray, y: np.ndarray, groups: np.ndarray, count: int, minimum: int = 8) -> np.ndarray:
    """Pearson correlation of x and y within each group 0..count-1 (NaN for groups with fewer than ``minimum`` points)."""
    n = np.bincount(groups, minlength=count).astype(float)
    sx, sy = np.bincount(groups, x, count), np.bincount(groups, y, count)
    sxx, syy, sxy = np.bincount(groups, x * x, count), np.bincount(groups, y * y, count), np.bincount(groups, x * y, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var = (sxx - sx * sx / n) * (syy - sy * sy / n)
        result = cov / np.sqrt(var)
    result[(n < minimum) | ~(var > 0)] = np.nan
    return result


def contour_level(density: DensityMap) -> float:
    """A contour (map units) for overlap: one standard deviation of the density above solvent, above the median."""
    median = float(np.median(density.values))
    above = density.values[density.values > median] - median
    return median + (float(above.std()) if len(above) else 0.0)


def overlap(density: DensityMap, coordinates: np.ndarray, level: float | None = None) -> float:
    """Fraction of the atoms (Å) inside the map where the density is above ``level`` (default :func:`contour_level`)."""
    if len(coordinates) == 0:
        return 0.0
    level = contour_level(density) if level is None else level
    inside = density.contains(coordinates)
    values = density.interpolate(coordinates)
    return float(np.mean(inside & (values >= level)))
