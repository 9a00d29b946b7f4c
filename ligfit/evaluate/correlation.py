"""Map–model correlation coefficients as defined by Phenix (Afonine et al. 2018, Acta Cryst. D74:814).

All four are Pearson correlations between the map and the model's calculated map over a set of
grid points:

- CC_box: every point of the box;
- CC_mask: points inside the molecular mask (the bulk-solvent mask of Jiang & Brünger 1994:
  within the van der Waals radius + 1.1 Å of an atom, then shrunk by 0.9 Å at the solvent edge);
- CC_volume: the N highest points of the model map, N the number of points in the mask;
- CC_peaks: the union of the N highest points of the model map and of the map.

Phenix's model map is a resolution-truncated Fcalc synthesis; ligfit's is gemmi's electron
scattering factors with a Gaussian blur to the resolution (see :func:`ligfit.maps.simulate`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ligfit.maps import DensityMap

#: Probe and shrink radii of the molecular mask (Å), as in mmtbx.masks.
SOLVENT_RADIUS = 1.1
SHRINK_RADIUS = 0.9
#: van der Waals radii (Å) used for the mask; Bondi (1964), 1.7 Å for anything not listed.
VDW_RADII = {"H": 1.20, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47, "P": 1.80, "S": 1.80, "CL": 1.75, "BR": 1.85, "I": 1.98, "SE": 1.90}
DEFAULT_VDW_RADIUS = 1.70


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length arrays (NaN when either is constant or empty)."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    spread = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / spread) if spread > 0 else float("nan")


def vdw_radii(elements: np.ndarray) -> np.ndarray:
    """Van der Waals radius (Å) of each element symbol."""
    return np.array([VDW_RADII.get(str(e).upper(), DEFAULT_VDW_RADIUS) for e in elements], dtype=float)


def molecular_mask(grid: DensityMap, coordinates: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean mask on ``grid``: inside the atoms' vdW + 1.1 Å spheres, shrunk by 0.9 Å at the solvent edge."""
    expanded = atom_spheres(grid, coordinates, radii + SOLVENT_RADIUS)
    if not expanded.any():
        return expanded
    if expanded.all():
        return expanded
    # Shrink: drop points within 0.9 Å of a solvent point, i.e. erode by a ball of that radius (the map's edge is not solvent).
    half = np.floor(SHRINK_RADIUS / grid.voxel_size).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1)
    ball = np.linalg.norm(offsets * grid.voxel_size, axis=-1) <= SHRINK_RADIUS
    return ndimage.binary_erosion(expanded, structure=ball, border_value=1)


def atom_spheres(grid: DensityMap, coordinates: np.ndarray, radii: np.ndarray | float) -> np.ndarray:
    """Boolean mask of the grid points within ``radii`` (Å, one per atom or one for all) of any atom."""
    coordinates = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    radii = np.broadcast_to(np.asarray(radii, dtype=float), (len(coordinates),))
    mask = np.zeros(grid.shape, dtype=bool)
    flat = mask.reshape(-1)
    shape = np.array(grid.shape)
    for radius in np.unique(radii):
        group = coordinates[radii == radius]
        half = np.ceil(radius / grid.voxel_size).astype(int) + 1
        offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1).reshape(-1, 3)
        # Only offsets that can reach within the radius from somewhere in the base voxel.
        offsets = offsets[np.linalg.norm(offsets * grid.voxel_size, axis=1) <= radius + np.linalg.norm(grid.voxel_size)]
        offsets_a = (offsets * grid.voxel_size).astype(np.float32)
        for chunk in np.array_split(group, max(1, len(group) * len(offsets) // 4_000_000 + 1)):
            base = np.floor(grid.to_index(chunk)).astype(int)
            inside_base = (chunk - grid.to_points(base)).astype(np.float32)  # atom position relative to its base voxel
            distance_sq = ((offsets_a[None] - inside_base[:, None]) ** 2).sum(-1)
            atom, offset = np.nonzero(distance_sq <= radius**2)
            indices = base[atom] + offsets[offset]
            valid = np.all((indices >= 0) & (indices < shape), axis=1)
            flat[np.ravel_multi_index(indices[valid].T, grid.shape)] = True
    return mask


def top_points(values: np.ndarray, count: int, within: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the points at or above the (count+1)-th highest value, as Phenix selects them."""
    flat = values.ravel() if within is None else values[within]
    mask = np.zeros(values.shape, dtype=bool)
    if count <= 0 or flat.size == 0:
        return mask
    rank = min(count + 1, flat.size)
    cutoff = np.partition(flat, flat.size - rank)[flat.size - rank]
    chosen = values >= cutoff
    return chosen if within is None else chosen & within


def five_cc(observed: np.ndarray, calculated: np.ndarray, mask: np.ndarray, within: np.ndarray | None = None) -> dict[str, float]:
    """CC_box, CC_mask, CC_volume and CC_peaks of two maps on one grid, given the molecular mask.

    ``within`` restricts every CC to a region (a box around a ligand): CC_box is then the CC over
    that region and the top-N selections are made inside it.
    """
    if within is not None:
        mask = mask & within
    count = int(mask.sum())
    volume = top_points(calculated, count, within)
    peaks = volume | top_points(observed, count, within)
    return {
        "cc_box": pearson(observed, calculated) if within is None else pearson(observed[within], calculated[within]),
        "cc_mask": pearson(observed[mask], calculated[mask]),
        "cc_volume": pearson(observed[volume], calculated[volume]),
        "cc_peaks": pearson(observed[peaks], calculated[peaks]),
    }
