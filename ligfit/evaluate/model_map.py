"""The model map of phenix.map_model_cc: an Fcalc synthesis cut sharply at the map's resolution.

mmtbx (``mmtbx.maps.correlation.five_cc``) computes the structure factors of the model, each
atom with its own B-factor and occupancy and the electron scattering factors of International
Tables Vol. C Table 4.3.2.2 (the table gemmi calls C4322), for every reflection with
d ≥ d_min of the map's box taken as a P1 unit cell, and Fourier-transforms them back onto the
map's grid. The box is periodic: an atom near one face also contributes at the opposite one.

Here gemmi puts the atoms' density, blurred by an extra B so that the grid samples it without
aliasing, on the map's grid (a finer multiple of it when the map is coarse for the resolution);
numpy's FFT takes it to reciprocal space, where the extra blur is removed and every reflection
beyond d_min is dropped, and back onto the map's grid.
"""

from __future__ import annotations

import gemmi
import numpy as np

from ligfit.evaluate.cell_grid import CellGrid, as_cell_grid
from ligfit.maps import DensityMap

#: Attenuation exponent of the first alias of the resolution sphere: exp(-12) ≈ 6e-6 of its amplitude.
ALIAS_EXPONENT = 12.0
#: The density grid samples the map at least this many times per d_min (oversampling the map's grid as needed).
MIN_RATE = 3.0


def fcalc_map(
    grid: DensityMap | CellGrid,
    coordinates: np.ndarray,
    elements: np.ndarray,
    b_factors: np.ndarray,
    occupancies: np.ndarray,
    resolution: float,
) -> np.ndarray:
    """Values on ``grid`` of the model's Fcalc synthesis with d ≥ ``resolution`` Å, the grid's box a periodic P1 cell.

    The grid may be non-orthogonal (a crystallographic map on its own grid). Atoms (Å, in the
    map's frame) outside the box wrap around, as in mmtbx. The map has zero mean (no F000); its
    scale is arbitrary (correlations ignore it).
    """
    grid = as_cell_grid(grid)
    coordinates = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    shape = np.array(grid.shape)
    cell = grid.cell()
    # Oversample the map's grid by an integer factor per axis so that it samples d_min at MIN_RATE or finer.
    factor = np.maximum(1, np.ceil(MIN_RATE * grid.step_lengths / resolution)).astype(int)
    fine_shape = shape * factor
    reciprocal = np.array(cell.frac.mat.tolist())  # rows: a*, b*, c* (1/Å)
    # Blur so that the first alias of the sphere |s| <= 1/d_min (the sphere moved by a fine-grid reciprocal period) is negligible.
    s_max = 1.0 / resolution
    periods = fine_shape[:, None] * reciprocal
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    s_alias = float(np.linalg.norm(shifts @ periods, axis=1).min()) - s_max
    b_min = float(np.min(b_factors)) if len(b_factors) else 0.0
    blur = max(0.0, 4.0 * ALIAS_EXPONENT / (s_alias**2 - s_max**2) - b_min)

    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = resolution
    calculator.blur = blur
    calculator.grid.set_unit_cell(cell)
    calculator.grid.set_size(*(int(n) for n in fine_shape))
    calculator.grid.fill(0.0)
    calculator.add_model_density_to_grid(_model(coordinates - grid.origin, elements, b_factors, occupancies))
    calculator.grid.symmetrize_sum()
    density = np.array(calculator.grid, copy=False)

    coefficients = np.fft.rfftn(density)
    # Miller indices of the coefficients; keep those that can lie in the sphere d >= d_min.
    index = [np.rint(np.fft.fftfreq(int(n)) * n).astype(int) for n in fine_shape[:2]]
    index.append(np.rint(np.fft.rfftfreq(int(fine_shape[2])) * fine_shape[2]).astype(int))
    lengths = np.array([cell.a, cell.b, cell.c])
    keep = [np.flatnonzero(np.abs(h) <= s_max * length + 1e-6) for h, length in zip(index, lengths)]
    sub = coefficients[np.ix_(*keep)]
    kept = [index[a][keep[a]] for a in range(3)]
    s_vectors = sum(kept[a].reshape([-1 if b == a else 1 for b in range(3)])[..., None] * reciprocal[a] for a in range(3))
    s_squared = np.einsum("...i,...i->...", s_vectors, s_vectors)
    sub *= np.where(s_squared <= s_max**2 * (1 + 1e-9), np.exp(blur * s_squared / 4.0), 0.0)
    sub[0, 0, 0] = 0.0  # no F000, as mmtbx

    # Place the kept coefficients into the map-sized half-spectrum and transform back.
    target = np.zeros((shape[0], shape[1], shape[2] // 2 + 1), dtype=complex)
    position = [kept[a] % shape[a] for a in range(3)]
    if np.any(kept[2] > shape[2] // 2) or any(np.abs(kept[a]).max() * 2 >= shape[a] for a in range(2)):
        # The map's own grid cannot hold d_min (voxel > d_min / 2): keep what fits.
        fits = [np.abs(kept[a]) * 2 < shape[a] for a in range(3)]
        sub = sub[np.ix_(*fits)]
        position = [p[f] for p, f in zip(position, fits)]
    target[np.ix_(*position)] = sub
    return np.fft.irfftn(target, s=tuple(int(n) for n in shape), axes=(0, 1, 2)).astype(np.float32)


def _model(coordinates: np.ndarray, elements: np.ndarray, b_factors: np.ndarray, occupancies: np.ndarray) -> gemmi.Model:
    """A gemmi model of bare atoms (positions relative to the box corner) for the density calculator."""
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    residue = gemmi.Residue()
    residue.name = "UNK"
    for xyz, element, b_iso, occupancy in zip(coordinates, elements, b_factors, occupancies):
        atom = gemmi.Atom()
        atom.element = gemmi.Element(str(element))
        atom.pos = gemmi.Position(*xyz)
        atom.b_iso = float(b_iso)
        atom.occ = float(occupancy)
        residue.add_atom(atom)
    chain.add_residue(residue)
    model.add_chain(chain)
    return model
