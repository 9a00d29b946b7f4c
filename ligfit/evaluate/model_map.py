"""The model map of phenix.map_model_cc: an Fcalc synthesis cut sharply at the map's resolution.

mmtbx (``mmtbx.maps.correlation.five_cc``) computes the structure factors of the model, each
atom with its own B-factor and occupancy and the electron scattering factors of International
Tables Vol. C Table 4.3.2.2 (the table gemmi calls C4322), for every reflection with
d ≥ d_min of the map's box taken as a P1 unit cell, and Fourier-transforms them back onto the
map's grid. The box is periodic: an atom near one face also contributes at the opposite one.

mmtbx asks for every reflection a box of the map's grid holds (indices up to (n − 1) // 2 per
axis) and computes them with cctbx's FFT algorithm: each atom is blurred by B_base − B_min (B_base
from the reflections' d_min, grid factor 1/3 and quality factor 100), its density is summed only
out to where its strongest Gaussian term falls below 10⁻³ of the atoms' mean peak density (the
"wing cut-off"), and the blur is removed in reciprocal space; then it keeps d > d_min. The cut-off
wings move CC_volume by up to 0.006 from the exact synthesis; ligfit mirrors them.

Here gemmi puts the atoms' density, blurred and cut off as cctbx's, on the map's grid (a finer
multiple of it where the blur is too small for that grid to sample without aliasing); numpy's FFT
takes it to reciprocal space, where the blur is removed and every reflection beyond d_min is
dropped, and back onto the map's grid. The grid may be non-orthogonal: a crystallographic map on
its own grid (:mod:`ligfit.evaluate.cell_grid`).
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
#: cctbx's structure-factor FFT: grid_resolution_factor, quality_factor and wing_cutoff defaults.
CCTBX_GRID_FACTOR = 1.0 / 3.0
CCTBX_QUALITY_FACTOR = 100.0
WING_CUTOFF = 1e-3
#: At most this many density points per map point (beyond it the atoms are blurred more than cctbx blurs them).
MAX_OVERSAMPLING = 8


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
    reciprocal = np.array(cell.frac.mat.tolist())  # rows: a*, b*, c* (1/Å)
    s_max = 1.0 / resolution
    b_min = float(np.min(b_factors)) if len(b_factors) else 0.0
    # cctbx's FFT structure factors: every atom blurred by B_base − B_min, its density cut where it falls below
    # WING_CUTOFF of the mean atomic peak, the blur removed again in reciprocal space.
    blur = max(0.0, cctbx_base_b(shape, reciprocal) - b_min)
    # Oversample the map's grid by an integer factor per axis until the first alias of the sphere |s| <= 1/d_min
    # (the sphere moved by a fine-grid reciprocal period) is attenuated by exp(-ALIAS_EXPONENT); past
    # MAX_OVERSAMPLING times the map's points, blur more instead (the wings then differ slightly from cctbx's).
    needed = s_max + np.sqrt(s_max**2 + 4.0 * ALIAS_EXPONENT / max(b_min + blur, 1e-3))
    factor = np.maximum(1, np.ceil(MIN_RATE * grid.step_lengths / resolution)).astype(int)
    while _alias_distance(shape * factor, reciprocal) < needed:
        finer = factor.copy()
        finer[np.argmin(factor / grid.step_lengths)] += 1
        if np.prod(finer) > MAX_OVERSAMPLING:
            break
        factor = finer
    s_alias = _alias_distance(shape * factor, reciprocal) - s_max
    if s_alias > s_max:
        blur = max(blur, 4.0 * ALIAS_EXPONENT / (s_alias**2 - s_max**2) - b_min)
    fine_shape = shape * factor

    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = resolution
    calculator.blur = blur
    calculator.grid.set_unit_cell(cell)
    calculator.grid.set_size(*(int(n) for n in fine_shape))
    calculator.grid.fill(0.0)
    cutoffs = _wing_cutoffs(elements, b_factors, occupancies, blur)
    for atom, cutoff in zip(_model(coordinates - grid.origin, elements, b_factors, occupancies)[0][0], cutoffs):
        calculator.cutoff = cutoff
        calculator.add_atom_density_to_grid(atom)
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


def cctbx_base_b(shape: np.ndarray, reciprocal: np.ndarray) -> float:
    """B_base (Å²) of cctbx's FFT structure factors of the reflections a box of this grid holds.

    mmtbx asks for every index up to (n − 1) // 2 per axis; their d_min sets cctbx's u_base
    (``cctbx.xray.calc_u_base``: log10(quality_factor) / (8π² σ(σ − 1) / d_min²), σ = 1 / (2 grid factor)).
    """
    top = (np.asarray(shape) - 1) // 2
    corners = np.array([(top[0], j * top[1], k * top[2]) for j in (-1, 1) for k in (-1, 1)], dtype=float)
    d_min = 1.0 / float(np.linalg.norm(corners @ reciprocal, axis=1).max())
    sigma = 1.0 / (2.0 * CCTBX_GRID_FACTOR)
    return float(np.log10(CCTBX_QUALITY_FACTOR) / (sigma * (sigma - 1.0) / d_min**2))


def _wing_cutoffs(elements: np.ndarray, b_factors: np.ndarray, occupancies: np.ndarray, blur: float) -> np.ndarray:
    """Per atom, the density at which gemmi stops its sum where cctbx stops it (``sampling_base.h``).

    cctbx's cut-off density is WING_CUTOFF × the atoms' mean peak density; an atom is sampled out
    to the largest radius at which one of its Gaussian terms alone reaches it. gemmi stops where
    the atom's whole density falls to its ``cutoff``: the density there (before occupancy, which gemmi applies after its radius).
    """
    terms, peaks = [], []
    for element, b_iso, occupancy in zip(elements, b_factors, occupancies):
        coefficients = np.array(gemmi.Element(str(element)).c4322.get_coefs())
        a, b = coefficients[:5], coefficients[5:] + float(b_iso) + blur
        amplitude = float(occupancy) * a * (4.0 * np.pi / b) ** 1.5  # real-space Gaussians A exp(-4π² r² / b)
        terms.append((amplitude, b, float(b_iso) + blur, str(element)))
        peaks.append(abs(amplitude.sum()))
    rho_cutoff = WING_CUTOFF * float(np.mean(peaks)) if peaks else 0.0
    cutoffs = np.empty(len(terms))
    for i, (amplitude, b, b_total, element) in enumerate(terms):
        strong = np.abs(amplitude) > rho_cutoff * 1e-3
        radius_sq = (
            max(0.0, float(np.max(np.log(rho_cutoff / np.abs(amplitude[strong])) / (-4.0 * np.pi**2 / b[strong])))) if strong.any() else 0.0
        )
        cutoffs[i] = gemmi.Element(element).c4322.calculate_density_iso(radius_sq, b_total)
    return cutoffs


def _alias_distance(fine_shape: np.ndarray, reciprocal: np.ndarray) -> float:
    """Distance (1/Å) from the origin to the nearest reciprocal period of a grid of this shape."""
    periods = np.asarray(fine_shape)[:, None] * reciprocal
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    return float(np.linalg.norm(shifts @ periods, axis=1).min())


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
