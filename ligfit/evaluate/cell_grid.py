"""The grid Phenix computes map–model CCs on: a map's own grid, orthogonal (EM) or not (crystallographic).

cctbx keeps a crystallographic map on the grid of its unit cell (a non-orthogonal one for a
hexagonal or monoclinic cell) and takes the stored part of it, or a box cut from it, as a
periodic P1 cell of its own: the cell's edges scaled to the box's grid, the angles kept. A
:class:`CellGrid` is such a box: values on a grid whose steps are three Cartesian vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from ligfit.maps import CellRegion, DensityMap


@dataclass(frozen=True)
class CellGrid:
    """Values on a grid: ``values[i, j, k]`` lies at ``origin + axes @ (i, j, k)`` (Å).

    ``axes[:, a]`` is the Cartesian step (Å) of one grid index along axis a.
    """

    values: np.ndarray
    axes: np.ndarray
    origin: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.values.shape)

    @property
    def step_lengths(self) -> np.ndarray:
        """Length (Å) of one grid step along each axis."""
        return np.linalg.norm(self.axes, axis=0)

    def cell(self) -> gemmi.UnitCell:
        """The box as a P1 unit cell (its orthogonalisation is ``axes`` times the shape, a along x)."""
        edges = self.axes * np.array(self.shape)
        lengths = np.linalg.norm(edges, axis=0)
        a, b, c = (edges[:, i] / lengths[i] for i in range(3))
        angles = np.degrees(np.arccos(np.clip([b @ c, a @ c, a @ b], -1.0, 1.0)))
        return gemmi.UnitCell(*lengths, *angles)

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional grid indices of points (Å)."""
        return np.linalg.solve(self.axes, (np.asarray(points, dtype=float).reshape(-1, 3) - self.origin).T).T

    def with_values(self, values: np.ndarray) -> CellGrid:
        return CellGrid(values, self.axes, self.origin)


def from_density_map(density: DensityMap) -> CellGrid:
    """An orthogonal map's grid."""
    return CellGrid(density.values, np.diag(density.voxel_size).astype(float), np.asarray(density.origin, dtype=float))


def from_cell_region(region: CellRegion) -> CellGrid:
    """The stored part of a crystallographic map on its own grid, as cctbx's map_manager holds it."""
    orthogonalisation = np.array(gemmi.UnitCell(*region.cell).orth.mat.tolist())
    axes = orthogonalisation / region.cell_grid[None, :]
    return CellGrid(region.values, axes, axes @ region.start.astype(float))


def as_cell_grid(grid: DensityMap | CellGrid) -> CellGrid:
    return grid if isinstance(grid, CellGrid) else from_density_map(grid)
