"""Q-score: how well each atom is resolved in a map (Pintilie et al. 2020, Nat. Methods 17:328).

For every atom, map values are sampled at the atom centre and on spherical shells of radius
0.1 … 2.0 Å; each shell holds ``points_per_shell`` points of the MapQ spiral, more being
tried (N, N+2, N+4, … points) until that many lie closer to this atom than to any other:
a point is dropped when another atom lies within 0.9·R of it, as in MapQ's own code. The
Q-score is the Pearson correlation ("about the mean") between those values and a reference
Gaussian of σ 0.6 Å whose height and baseline come from the map's mean and standard deviation.
The centre value enters ``points_per_shell`` times, as in MapQ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ligfit.maps import DensityMap

#: Reference Gaussian width (Å), shell step and outer radius (Å), points per shell (MapQ defaults).
REFERENCE_SIGMA = 0.6
SHELL_STEP = 0.1
MAX_RADIUS = 2.0
POINTS_PER_SHELL = 8
#: A shell point is dropped when another atom lies within this fraction of R of it (MapQ: 0.9).
EXCLUSION_FACTOR = 0.9
#: MapQ gives up after this many tries (its loop breaks at i ≥ 95) and keeps the points it has.
MAX_TRIES = 96


@dataclass(frozen=True)
class ReferenceGaussian:
    """Height A and baseline B of the reference Gaussian, from the map's statistics (MapQ's MinMaxD)."""

    height: float
    baseline: float
    sigma: float = REFERENCE_SIGMA

    @classmethod
    def from_map(cls, density: DensityMap, sigma: float = REFERENCE_SIGMA) -> ReferenceGaussian:
        values = density.values
        mean, std = float(values.mean()), float(values.std())
        high = min(mean + 10 * std, float(values.max()))
        low = max(mean - std, float(values.min()))
        return cls(height=high - low, baseline=low, sigma=sigma)

    def __call__(self, radius: np.ndarray) -> np.ndarray:
        return self.height * np.exp(-0.5 * (np.asarray(radius) / self.sigma) ** 2) + self.baseline


def expected_q_score(resolution: float) -> float:
    """Average protein Q-score expected at a map resolution (Å): MapQ's fit over EMDB, Q = −0.178·d + 1.119."""
    return -0.1775 * resolution + 1.1192


def spiral_directions(count: int) -> np.ndarray:
    """``count`` unit vectors on the Saff–Kuijlaars spiral used by MapQ's SpherePts, shape (count, 3)."""
    if count == 1:
        return np.array([[0.0, 0.0, -1.0]])
    k = np.arange(1, count + 1)
    h = -1.0 + 2.0 * (k - 1) / (count - 1)
    phi = np.arccos(h)
    steps = np.zeros(count)
    inner = (k > 1) & (k < count)
    steps[inner] = 3.6 / np.sqrt(count * (1.0 - h[inner] ** 2))
    # MapQ accumulates the azimuth modulo 2π point by point; the sum is the same angle.
    theta = np.mod(np.cumsum(steps), 2 * np.pi)
    theta[-1] = 0.0
    return np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)], axis=1)


def shell_radii(step: float = SHELL_STEP, max_radius: float = MAX_RADIUS) -> np.ndarray:
    """Shell radii (Å) 0.1, 0.2, … max_radius."""
    return np.round(np.arange(1, int(round(max_radius / step)) + 1) * step, 6)


def q_scores(
    density: DensityMap,
    coordinates: np.ndarray,
    selection: np.ndarray | None = None,
    *,
    reference: ReferenceGaussian | None = None,
    points_per_shell: int = POINTS_PER_SHELL,
    step: float = SHELL_STEP,
    max_radius: float = MAX_RADIUS,
) -> np.ndarray:
    """Per-atom Q-scores of the atoms ``selection`` (indices or mask; default all) of ``coordinates`` (n, 3) Å.

    ``coordinates`` must hold every heavy atom of the model (waters and ligands included): the
    shell points of one atom are kept only where no other of these atoms is nearer. Atoms
    outside the map read NaN.
    """
    coordinates = np.asarray(coordinates, dtype=float)
    selected = np.arange(len(coordinates)) if selection is None else np.arange(len(coordinates))[selection]
    if len(selected) == 0:
        return np.zeros(0)
    reference = reference or ReferenceGaussian.from_map(density)
    radii = shell_radii(step, max_radius)
    points, atom_of_point, radius_of_point = shell_points(coordinates, selected, radii, points_per_shell)
    centre = coordinates[selected]
    # The centre value counts points_per_shell times (MapQ repeats it).
    all_points = np.concatenate([np.repeat(centre, points_per_shell, axis=0), points])
    owners = np.concatenate([np.repeat(np.arange(len(selected)), points_per_shell), atom_of_point])
    distances = np.concatenate([np.zeros(len(selected) * points_per_shell), radius_of_point])
    observed = density.interpolate(all_points, order=1).astype(float)
    expected = reference(distances)
    scores = grouped_correlation(observed, expected, owners, len(selected))
    inside = density.contains(centre, margin=0.0)
    scores[~inside] = np.nan
    return scores


def shell_points(
    coordinates: np.ndarray, selected: np.ndarray, radii: np.ndarray, points_per_shell: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shell points (m, 3) Å around the selected atoms, with the index into ``selected`` and the radius of each.

    A point p = a + R·u is kept when |p − b| ≥ 0.9·R for every other atom b; with d = a − b
    this is the linear test d·u ≥ ((0.9² − 1)·R² − |d|²) / (2R), so one dot product per
    neighbour and direction serves every shell radius.
    """
    tree = cKDTree(coordinates)
    reach = (1 + EXCLUSION_FACTOR) * radii.max()
    neighbour_lists = tree.query_ball_point(coordinates[selected], reach)
    width = max(1, max(len(n) for n in neighbour_lists))
    offsets = np.zeros((len(selected), width, 3))
    present = np.zeros((len(selected), width), dtype=bool)
    for row, (atom, neighbours) in enumerate(zip(selected, neighbour_lists)):
        others = [n for n in neighbours if n != atom]
        offsets[row, : len(others)] = coordinates[atom] - coordinates[others]
        present[row, : len(others)] = True
    squared = (offsets**2).sum(-1)
    # For each (atom, shell): the spiral size at which enough points survive (MapQ's retry loop).
    count_needed = np.zeros((len(selected), len(radii)), dtype=int)
    pending = np.ones_like(count_needed, dtype=bool)
    for attempt in range(MAX_TRIES):
        rows = np.flatnonzero(pending.any(axis=1))
        if len(rows) == 0:
            break
        count = points_per_shell + 2 * attempt
        kept = _kept_directions(offsets[rows], squared[rows], present[rows], radii, spiral_directions(count))
        settle = pending[rows] & ((kept.sum(-1) >= points_per_shell) | (attempt == MAX_TRIES - 1))
        row_index, shell_index = np.nonzero(settle)
        count_needed[rows[row_index], shell_index] = count
        pending[rows[row_index], shell_index] = False

    points, owners, radius_of_point = [], [], []
    for count in np.unique(count_needed):
        directions = spiral_directions(int(count))
        rows = np.flatnonzero((count_needed == count).any(axis=1))
        kept = _kept_directions(offsets[rows], squared[rows], present[rows], radii, directions)
        kept &= (count_needed[rows] == count)[:, :, None]
        row_index, shell_index, direction_index = np.nonzero(kept)
        owner = rows[row_index]
        radius = radii[shell_index]
        points.append(coordinates[selected[owner]] + radius[:, None] * directions[direction_index])
        owners.append(owner)
        radius_of_point.append(radius)
    return np.concatenate(points), np.concatenate(owners), np.concatenate(radius_of_point)


def _kept_directions(
    offsets: np.ndarray, squared: np.ndarray, present: np.ndarray, radii: np.ndarray, directions: np.ndarray
) -> np.ndarray:
    """Boolean (atoms, shells, directions): whether each spiral point survives the 0.9·R exclusion."""
    dots = offsets.astype(np.float32) @ directions.T.astype(np.float32)  # (atoms, neighbours, directions)
    limits = ((EXCLUSION_FACTOR**2 - 1) * radii**2 - squared[:, :, None]) / (2 * radii)
    limits = np.where(present[:, :, None], limits, -np.inf).astype(np.float32)  # (atoms, neighbours, shells)
    kept = np.ones((len(offsets), len(radii), len(directions)), dtype=bool)
    # One neighbour slot at a time keeps the temporaries at (atoms, shells, directions).
    for slot in np.flatnonzero(present.any(axis=0)):
        kept &= dots[:, slot, None, :] >= limits[:, slot, :, None]
    return kept


def grouped_correlation(x: np.ndarray, y: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Pearson correlation of x and y within each group 0 … count−1 (NaN where undefined)."""
    n = np.bincount(groups, minlength=count).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = np.bincount(groups, x, count) / n
        mean_y = np.bincount(groups, y, count) / n
        dx = x - mean_x[groups]
        dy = y - mean_y[groups]
        covariance = np.bincount(groups, dx * dy, count)
        spread = np.sqrt(np.bincount(groups, dx * dx, count) * np.bincount(groups, dy * dy, count))
        return np.where(spread > 0, covariance / spread, np.nan)


def residue_q_scores(per_atom: np.ndarray, residue_keys: np.ndarray) -> dict[str, float]:
    """Mean Q-score per residue key (e.g. "A:HEM 142"), ignoring atoms outside the map."""
    result = {}
    for key in dict.fromkeys(residue_keys.tolist()):
        values = per_atom[residue_keys == key]
        values = values[np.isfinite(values)]
        result[key] = float(values.mean()) if len(values) else float("nan")
    return result
