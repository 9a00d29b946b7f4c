"""Global rigid placement of a model in a map: rotations × FFT translations, then local refinement.

The method is powerfit's (van Zundert & Bonvin, AIMS Biophys. 2015): for every rotation of a
uniform grid the model's density, normalised inside its own mask, is cross-correlated with the
map by FFT, and the map's variance under the same mask comes from two more FFTs, so every
translation gets the local correlation (LCC) in the model's mask. LCC does not reward a large
model for sitting in the middle of density. The best peaks are then refined rigidly (6 degrees
of freedom) against the full-resolution map. Coordinates are in Å in the map's frame; a
placement maps ``x`` to ``rotation @ x + translation``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage, optimize
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ligfit.maps import DensityMap

log = logging.getLogger(__name__)

#: Resolution (Å) the map and model are blurred to for the global search.
SEARCH_RESOLUTION = 8.0
#: Angular spacing (degrees) of the global rotation grid.
ANGULAR_SPACING = 25.0
#: Peaks of the search refined locally.
CANDIDATES = 20
#: Rotations per FFT batch.
BATCH = 8


@dataclass(frozen=True)
class RigidPlacement:
    """A rigid move ``x -> rotation @ x + translation`` (Å, map frame) and its search score (LCC)."""

    rotation: np.ndarray
    translation: np.ndarray
    score: float

    def apply(self, coordinates: np.ndarray) -> np.ndarray:
        return np.asarray(coordinates, dtype=float) @ self.rotation.T + self.translation

    def then(self, rotation: np.ndarray, translation: np.ndarray, score: float) -> RigidPlacement:
        """This placement followed by another rigid move."""
        return RigidPlacement(rotation @ self.rotation, rotation @ self.translation + translation, score)


def uniform_rotations(count: int) -> np.ndarray:
    """``count`` rotation matrices (count, 3, 3) spread uniformly over SO(3) (super-Fibonacci spirals, Alexa 2022)."""
    s = np.arange(count) + 0.5
    r = np.sqrt(s / count)
    big_r = np.sqrt(1.0 - s / count)
    alpha = 2 * np.pi * s / math.sqrt(2)
    beta = 2 * np.pi * s / 1.533751168755204288118041
    quaternions = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)], axis=1)
    return Rotation.from_quat(quaternions).as_matrix()


def rotation_count(spacing_degrees: float) -> int:
    """Rotations needed for a grid of about this angular spacing (SO(3) volume 8π² over a cell of side θ)."""
    theta = math.radians(spacing_degrees)
    return max(24, int(round(8 * math.pi**2 / theta**3)))


def search_voxel(search_resolution: float) -> float:
    """Voxel size (Å) of the coarse search grid: a third of the search resolution, 2–4 Å."""
    return float(np.clip(search_resolution / 3.0, 2.0, 4.0))


def positive_density(density: DensityMap) -> np.ndarray:
    """The map above its solvent level (the median), negatives set to 0."""
    values = density.values - np.median(density.values)
    return np.maximum(values, 0.0)


@dataclass(frozen=True)
class SearchMap:
    """The map prepared for the FFT search: blurred, on a coarse grid, padded, and its transforms."""

    density: DensityMap
    fourier: np.ndarray
    fourier_squared: np.ndarray
    variance_floor: float


def search_map(density: DensityMap, search_resolution: float, *, pad: float = 12.0, exclude: np.ndarray | None = None) -> SearchMap:
    """Blur ``density`` to ``search_resolution`` Å, resample it to the coarse grid and pad it with zeros (``pad`` Å).

    ``exclude``: coordinates (Å) of models already placed; the map within 3 Å of them is zeroed.
    """
    voxel = search_voxel(search_resolution)
    values = positive_density(density)
    sigma = np.sqrt(max((0.225 * search_resolution) ** 2 - (voxel / 2) ** 2, 0.25)) / density.voxel_size
    blurred = ndimage.gaussian_filter(values, sigma, mode="constant")
    zoom = density.voxel_size / voxel
    coarse = ndimage.zoom(blurred, zoom, order=1, mode="nearest", grid_mode=False)
    pad_voxels = int(math.ceil(pad / voxel))
    shape = [fft.next_fast_len(n + 2 * pad_voxels, real=True) for n in coarse.shape]
    padded = np.zeros(shape, dtype=np.float32)
    padded[tuple(slice(pad_voxels, pad_voxels + n) for n in coarse.shape)] = coarse
    origin = density.origin - pad_voxels * voxel
    coarse_map = DensityMap(padded, voxel, origin)
    if exclude is not None and len(exclude):
        points = coarse_map.grid_points().reshape(-1, 3)
        near = cKDTree(exclude).query(points, distance_upper_bound=3.0)[0] < np.inf
        padded = padded.copy().reshape(-1)
        padded[near] = 0.0
        coarse_map = coarse_map.with_values(padded.reshape(shape))
    v = coarse_map.values
    inside = v[v > 0]
    floor = 0.05 * float(np.var(inside)) if len(inside) else 1e-12
    return SearchMap(coarse_map, fft.rfftn(v, workers=2), fft.rfftn(v * v, workers=2), max(floor, 1e-12))


def _templates(
    centred: np.ndarray, weights: np.ndarray, rotations: np.ndarray, voxel: float, sigma: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Model density and mask for each rotation on a small cube (rotations, size, size, size); centroid at size // 2."""
    count = len(rotations)
    points = np.einsum("rij,nj->rni", rotations, centred) / voxel + size // 2
    base = np.floor(points).astype(int)
    frac = points - base
    values = np.zeros(count * size**3, dtype=np.float64)
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        index = base + offset
        weight = np.prod(np.where(offset == 1, frac, 1 - frac), axis=-1) * weights
        flat = np.ravel_multi_index(np.moveaxis(np.clip(index, 0, size - 1), -1, 0), (size, size, size))
        flat = flat + (np.arange(count) * size**3)[:, None]
        values += np.bincount(flat.ravel(), weight.ravel(), minlength=count * size**3)
    cube = values.reshape(count, size, size, size).astype(np.float32)
    template = ndimage.gaussian_filter(cube, (0, sigma, sigma, sigma), mode="constant")
    peak = template.reshape(count, -1).max(axis=1)[:, None, None, None]
    mask = template > 0.05 * peak
    return template, mask


def global_search(
    coordinates: np.ndarray,
    weights: np.ndarray,
    search: SearchMap,
    search_resolution: float,
    *,
    angular_spacing: float = ANGULAR_SPACING,
    candidates: int = CANDIDATES,
    variance_mask: str = "sphere",
) -> list[RigidPlacement]:
    """The ``candidates`` best rigid placements of the model (atoms ``coordinates`` Å, ``weights``) in the search map, by LCC.

    Every rotation of a uniform grid is tried; for each translation the best rotation is kept,
    and the distinct translation peaks (at least 6 Å apart) are returned, best first. The model's
    density is always normalised inside its own mask (zero mean, so density it merely sits in
    scores nothing); the map's variance is taken under that mask (``variance_mask="model"``, as
    powerfit: 5 FFTs per rotation) or under a sphere of the model's radius of gyration
    (``"sphere"``: computed once, 2 FFTs per rotation, 2.5× faster, same ranking in our tests).
    """
    if variance_mask not in ("sphere", "model"):
        raise ValueError(f"variance_mask must be 'sphere' or 'model', got {variance_mask!r}")
    density = search.density
    voxel = float(density.voxel_size[0])
    centre = coordinates.mean(axis=0)
    centred = coordinates - centre
    sigma = 0.225 * search_resolution / voxel
    radius = float(np.linalg.norm(centred, axis=1).max())
    size = int(2 * math.ceil(radius / voxel + 3 * sigma + 2) + 1)
    shape = density.shape
    if any(size > n for n in shape):
        size = min(shape) - (1 - min(shape) % 2)
    rotations = uniform_rotations(rotation_count(angular_spacing))
    best = np.full(shape, -np.inf, dtype=np.float32)
    best_rotation = np.zeros(shape, dtype=np.int32)
    sphere_variance = None
    if variance_mask == "sphere":
        gyration = math.sqrt(float(np.mean(np.sum(centred**2, axis=1))))
        sphere_variance = _sphere_variance(search, shape, size, math.sqrt(5 / 3) * gyration / voxel + sigma)
    for start in range(0, len(rotations), BATCH):
        batch = rotations[start : start + BATCH]
        template, mask = _templates(centred, weights, batch, voxel, sigma, size)
        lcc = _local_correlation(template, mask, search, shape, sphere_variance)
        which = np.argmax(lcc, axis=0)
        top = np.take_along_axis(lcc, which[None], axis=0)[0]
        improved = top > best
        best = np.where(improved, top, best)
        best_rotation = np.where(improved, which + start, best_rotation)
    peaks = _peaks(best, max(1, int(round(6.0 / voxel))), candidates)
    placements = []
    for index in peaks:
        rotation = rotations[best_rotation[tuple(index)]]
        position = density.origin + (index + size // 2) % np.array(shape) * voxel
        placements.append(RigidPlacement(rotation, position - rotation @ centre, float(best[tuple(index)])))
    return placements


def _sphere_variance(search: SearchMap, shape: tuple[int, ...], size: int, radius: float) -> np.ndarray:
    """Variance of the map under a sphere of ``radius`` voxels centred in a cube of ``size`` whose corner is at each voxel."""
    axis = np.arange(size) - size // 2
    sphere = (axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2) <= radius**2
    full = np.zeros(shape, dtype=np.float32)
    full[:size, :size, :size] = sphere
    sphere_hat = np.conj(fft.rfftn(full, workers=2))
    total = fft.irfftn(sphere_hat * search.fourier, s=shape, workers=2)
    total_squared = fft.irfftn(sphere_hat * search.fourier_squared, s=shape, workers=2)
    n = float(sphere.sum())
    return np.maximum(total_squared / n - (total / n) ** 2, search.variance_floor).astype(np.float32)


def _local_correlation(
    template: np.ndarray, mask: np.ndarray, search: SearchMap, shape: tuple[int, ...], sphere_variance: np.ndarray | None
) -> np.ndarray:
    """LCC of each rotated template at every translation (corner of the cube at that voxel)."""
    count, size = template.shape[0], template.shape[1]
    n_mask = mask.reshape(count, -1).sum(axis=1).astype(np.float64)
    inside = np.where(mask, template, 0.0)
    mean = inside.reshape(count, -1).sum(axis=1) / n_mask
    centred = np.where(mask, template - mean[:, None, None, None], 0.0)
    norm = np.sqrt((centred.reshape(count, -1) ** 2).sum(axis=1))
    centred /= norm[:, None, None, None]
    full_template = np.zeros((count, *shape), dtype=np.float32)
    full_template[:, :size, :size, :size] = centred
    axes = (1, 2, 3)
    template_hat = np.conj(fft.rfftn(full_template, axes=axes, workers=2))
    n = n_mask[:, None, None, None]
    if sphere_variance is not None:
        template_hat *= search.fourier
        correlation = fft.irfftn(template_hat, s=shape, axes=axes, workers=2)
        correlation /= np.sqrt(n * sphere_variance[None]).astype(np.float32)
        return correlation
    full_mask = np.zeros((count, *shape), dtype=np.float32)
    full_mask[:, :size, :size, :size] = mask
    mask_hat = np.conj(fft.rfftn(full_mask, axes=axes, workers=2))
    products = np.concatenate([template_hat * search.fourier, mask_hat * search.fourier, mask_hat * search.fourier_squared])
    back = fft.irfftn(products, s=shape, axes=axes, workers=2)
    correlation, total, total_squared = back[:count], back[count : 2 * count], back[2 * count :]
    variance = np.maximum(total_squared / n - (total / n) ** 2, search.variance_floor)
    return (correlation / np.sqrt(n * variance)).astype(np.float32)


def _peaks(values: np.ndarray, radius: int, count: int) -> np.ndarray:
    """Indices (k, 3) of the ``count`` highest local maxima (periodic neighbourhood of ``radius`` voxels)."""
    local = ndimage.maximum_filter(values, size=2 * radius + 1, mode="wrap")
    candidates = np.argwhere((values == local) & np.isfinite(values))
    order = np.argsort(values[tuple(candidates.T)])[::-1]
    return candidates[order[:count]]


# --------------------------------------------------------------------------- local refinement


@dataclass(frozen=True)
class RefinementMap:
    """A map blurred for local rigid refinement and its gradient (Å⁻¹), all on the map's grid."""

    density: DensityMap
    gradient: np.ndarray  # (3, nx, ny, nz)


def refinement_map(density: DensityMap, resolution: float) -> RefinementMap:
    """``density`` above solvent, blurred to ``resolution`` Å, scaled to unit standard deviation."""
    sigma = 0.225 * resolution / density.voxel_size
    values = ndimage.gaussian_filter(positive_density(density), sigma, mode="constant")
    values /= max(float(values.std()), 1e-12)
    gradient = np.stack(np.gradient(values, *density.voxel_size))
    return RefinementMap(density.with_values(values), gradient.astype(np.float32))


def _rigid_move(parameters: np.ndarray, centred: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(parameters[:3]).apply(centred) + centre + parameters[3:]


def refine_rigid(
    coordinates: np.ndarray,
    weights: np.ndarray,
    target: RefinementMap,
    *,
    max_shift: float = 10.0,
    max_angle: float = 30.0,
    iterations: int = 200,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Rigid move (rotation, translation) maximising the weighted mean map value at the atoms, and that value.

    The move is about the atoms' centroid; it is bounded to ``max_shift`` Å and ``max_angle`` degrees.
    The gradient is analytic: the force on each atom is the map gradient, the torque its moment.
    """
    centre = coordinates.mean(axis=0)
    centred = coordinates - centre
    scale = weights / weights.sum()
    density = target.density
    indices_of = density.to_index

    def objective(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        rotated = Rotation.from_rotvec(parameters[:3]).apply(centred)
        moved = rotated + centre + parameters[3:]
        index = indices_of(moved).T
        value = ndimage.map_coordinates(density.values, index, order=1, mode="constant")
        grad = np.stack([ndimage.map_coordinates(g, index, order=1, mode="constant") for g in target.gradient], axis=1)
        force = grad * scale[:, None]
        torque = np.cross(rotated, force).sum(axis=0)
        # d/dω for a small rotation applied after the current one; close to d/d(rotvec) for small angles.
        return -float(value @ scale), -np.concatenate([torque, force.sum(axis=0)])

    angle = math.radians(max_angle)
    bounds = [(-angle, angle)] * 3 + [(-max_shift, max_shift)] * 3
    result = optimize.minimize(objective, np.zeros(6), jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": iterations})
    rotation = Rotation.from_rotvec(result.x[:3]).as_matrix()
    translation = centre + result.x[3:] - rotation @ centre
    return rotation, translation, -float(result.fun)
