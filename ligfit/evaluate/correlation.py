"""Map–model correlation coefficients as defined by Phenix (Afonine et al. 2018, Acta Cryst. D74:814).

All four are Pearson correlations between the map and the model's calculated map over a set of
grid points:

- CC_box: every point of the box;
- CC_mask: points inside the molecular mask (the bulk-solvent mask of Jiang & Brünger 1994:
  within the van der Waals radius + 1.1 Å of an atom, then shrunk by 0.9 Å at the solvent edge);
- CC_volume: the N highest points of the model map, N the number of points in the mask;
- CC_peaks: the union of the N highest points of the model map and of the map.

The model map is Phenix's: the Fcalc synthesis cut at the map's resolution
(:func:`ligfit.evaluate.model_map.fcalc_map`); masks, boxes and point selections are mmtbx's
(``mmtbx.maps.correlation.five_cc``, ``phenix.map_box``), the map's box taken as a periodic unit
cell as mmtbx does. Checked against mmtbx itself in ``benchmarks/phenix_agreement.py``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ligfit.evaluate.cell_grid import CellGrid, as_cell_grid
from ligfit.maps import DensityMap

#: Probe and shrink radii of the molecular mask (Å), as in mmtbx.masks.
SOLVENT_RADIUS = 1.1
SHRINK_RADIUS = 0.9
#: van der Waals radii (Å) of the mask: cctbx.eltbx.van_der_waals_radii, the table mmtbx.masks uses.
VDW_RADII = {
    "H": 1.20, "D": 1.20, "HE": 1.40, "LI": 1.82, "BE": 0.63, "B": 1.75, "C": 1.775, "N": 1.50, "O": 1.45, "F": 1.47,
    "NE": 1.54, "NA": 2.27, "MG": 1.73, "AL": 1.50, "SI": 2.10, "P": 1.90, "S": 1.80, "CL": 1.75, "AR": 1.88, "K": 2.75,
    "CA": 1.95, "SC": 1.32, "TI": 1.95, "V": 1.06, "CR": 1.13, "MN": 1.19, "FE": 1.26, "CO": 1.13, "NI": 1.63, "CU": 1.40,
    "ZN": 1.39, "GA": 1.87, "GE": 1.48, "AS": 0.83, "SE": 1.90, "BR": 1.85, "KR": 2.02, "RB": 2.65, "SR": 2.02, "Y": 1.61,
    "ZR": 1.42, "NB": 1.33, "MO": 1.75, "TC": 2.00, "RU": 1.20, "RH": 1.22, "PD": 1.63, "AG": 1.72, "CD": 1.58, "IN": 1.93,
    "SN": 2.17, "SB": 1.12, "TE": 1.26, "I": 1.98, "XE": 2.16, "CS": 3.01, "BA": 2.41, "LA": 1.83, "CE": 1.86, "PR": 1.62,
    "ND": 1.79, "PM": 1.76, "SM": 1.74, "EU": 1.96, "GD": 1.69, "TB": 1.66, "DY": 1.63, "HO": 1.61, "ER": 1.59, "TM": 1.57,
    "YB": 1.54, "LU": 1.53, "HF": 1.40, "TA": 1.22, "W": 1.26, "RE": 1.30, "OS": 1.58, "IR": 1.22, "PT": 1.72, "AU": 1.66,
    "HG": 1.55, "TL": 1.96, "PB": 2.02, "BI": 1.73, "PO": 1.21, "AT": 1.12, "RN": 2.30, "FR": 3.24, "RA": 2.57, "AC": 2.12,
    "TH": 1.84, "PA": 1.60, "U": 1.75, "NP": 1.71, "PU": 1.67, "AM": 1.66, "CM": 1.65, "BK": 1.64, "CF": 1.63, "ES": 1.62,
    "FM": 1.61, "MD": 1.60, "NO": 1.59, "LR": 1.58,
}  # fmt: skip
DEFAULT_VDW_RADIUS = 1.775


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


def molecular_mask(grid: DensityMap | CellGrid, coordinates: np.ndarray, radii: np.ndarray, *, periodic: bool = False) -> np.ndarray:
    """Boolean mask on ``grid``: inside the atoms' vdW + 1.1 Å spheres, shrunk by 0.9 Å at the solvent edge.

    With ``periodic`` the grid's box is a unit cell, as mmtbx takes it: spheres and the shrink wrap
    around its faces. Otherwise the map's edge is not solvent. The grid may be non-orthogonal.
    """
    grid = as_cell_grid(grid)
    expanded = atom_spheres(grid, coordinates, radii + SOLVENT_RADIUS, periodic=periodic)
    if not expanded.any() or expanded.all():
        return expanded
    # Shrink: drop points within 0.9 Å of a solvent point, i.e. erode by a ball of that radius.
    half = np.floor(SHRINK_RADIUS * np.linalg.norm(np.linalg.inv(grid.axes), axis=1) + 1e-9).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1)
    ball = np.linalg.norm(offsets @ grid.axes.T, axis=-1) <= SHRINK_RADIUS
    if not periodic:
        return ndimage.binary_erosion(expanded, structure=ball, border_value=1)
    padded = np.pad(expanded, [(h, h) for h in half], mode="wrap")
    eroded = ndimage.binary_erosion(padded, structure=ball, border_value=1)
    return eroded[tuple(slice(h, h + n) for h, n in zip(half, expanded.shape))]


def atom_spheres(grid: DensityMap | CellGrid, coordinates: np.ndarray, radii: np.ndarray | float, *, periodic: bool = False) -> np.ndarray:
    """Boolean mask of the grid points within ``radii`` (Å, one per atom or one for all) of any atom.

    With ``periodic`` the grid's box is a unit cell and spheres wrap around its faces.
    """
    grid = as_cell_grid(grid)
    coordinates = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    radii = np.broadcast_to(np.asarray(radii, dtype=float), (len(coordinates),))
    mask = np.zeros(grid.shape, dtype=bool)
    flat = mask.reshape(-1)
    shape = np.array(grid.shape)
    reach = np.linalg.norm(np.linalg.inv(grid.axes), axis=1)  # grid steps per Å along each axis (at most)
    corners = np.array([(i, j, k) for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    diagonal = float(np.linalg.norm(corners @ grid.axes.T, axis=1).max())
    for radius in np.unique(radii):
        group = coordinates[radii == radius]
        half = np.ceil(radius * reach).astype(int) + 1
        offsets = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), -1).reshape(-1, 3)
        # Only offsets that can reach within the radius from somewhere in the base voxel.
        offsets = offsets[np.linalg.norm(offsets @ grid.axes.T, axis=1) <= radius + diagonal]
        offsets_a = (offsets @ grid.axes.T).astype(np.float32)
        for chunk in np.array_split(group, max(1, len(group) * len(offsets) // 4_000_000 + 1)):
            fractional = grid.to_index(chunk)
            base = np.floor(fractional).astype(int)
            inside_base = ((fractional - base) @ grid.axes.T).astype(np.float32)  # atom position relative to its base voxel
            distance_sq = ((offsets_a[None] - inside_base[:, None]) ** 2).sum(-1)
            atom, offset = np.nonzero(distance_sq <= radius**2)
            indices = base[atom] + offsets[offset]
            if periodic:
                indices %= shape
            else:
                indices = indices[np.all((indices >= 0) & (indices < shape), axis=1)]
            flat[np.ravel_multi_index(indices.T, grid.shape)] = True
    return mask


def map_box(density: DensityMap | CellGrid, coordinates: np.ndarray, cushion: float) -> DensityMap | CellGrid:
    """The box phenix.map_box cuts around atoms (Å): grid points from floor(min − cushion) to ceil(max + cushion).

    In grid units, as cctbx's ``get_bounds_around_model``: the atoms' fractional grid indices and
    the cushion as the Cartesian vector (c, c, c) in grid units (c Å per axis on an orthogonal grid).
    Every point of the box is kept; points outside the map are 0, as in cctbx's boxing. Returns
    the type it is given.
    """
    grid = as_cell_grid(density)
    indices = grid.to_index(coordinates)
    cushion_steps = np.linalg.solve(grid.axes, np.full(3, float(cushion)))
    lower = np.floor(indices.min(axis=0) - cushion_steps).astype(int)
    upper = np.ceil(indices.max(axis=0) + cushion_steps).astype(int)
    values = np.zeros(upper - lower + 1, dtype=np.float32)
    source_lo = np.maximum(lower, 0)
    source_hi = np.minimum(upper + 1, grid.shape)
    if np.all(source_hi > source_lo):
        target = tuple(slice(a - s, b - s) for a, b, s in zip(source_lo, source_hi, lower))
        values[target] = grid.values[tuple(slice(a, b) for a, b in zip(source_lo, source_hi))]
    origin = grid.origin + grid.axes @ lower
    if isinstance(density, DensityMap):
        return DensityMap(values, density.voxel_size, origin)
    return CellGrid(values, grid.axes, origin)


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
