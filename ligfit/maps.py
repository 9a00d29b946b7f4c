"""Density maps: reading, writing, resampling, boxing and simulating.

Inside ligfit a map is a :class:`DensityMap`: a float32 array in (x, y, z) axis order,
the voxel size in Å along x, y, z, and the position in Å of voxel (0, 0, 0). Every
conversion from the MRC/CCP4 file conventions (ORIGIN vs NSTART, MAPC/MAPR/MAPS axis
order, (z, y, x) storage) happens in this module and nowhere else.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
from scipy import ndimage

from ligfit.errors import BadMapError, BadModelError
from ligfit.io import atomic_path

log = logging.getLogger(__name__)

#: Space groups of EM-style maps: 0 (image stack) and 1 (P1, one box), 401 (volume stack).
_EM_SPACE_GROUPS = {0, 1, 401}


@dataclass(frozen=True)
class DensityMap:
    """Density on an orthogonal grid; ``values[i, j, k]`` lies at ``origin + (i, j, k) * voxel_size``.

    Coordinates are in Å in the frame of the map file (the frame atomic models use);
    ``values`` has axis order (x, y, z).
    """

    values: np.ndarray
    voxel_size: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", np.ascontiguousarray(self.values, dtype=np.float32))
        object.__setattr__(self, "voxel_size", _as_vector(self.voxel_size, "voxel_size"))
        object.__setattr__(self, "origin", _as_vector(self.origin, "origin"))
        if self.values.ndim != 3:
            raise BadMapError(f"a density map needs a 3D array, got shape {self.values.shape}")
        if np.any(self.voxel_size <= 0):
            raise BadMapError(f"voxel size must be positive, got {self.voxel_size.tolist()} Å")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def extent(self) -> np.ndarray:
        """Edge lengths of the box spanned by the voxel centres, in Å."""
        return (np.array(self.shape) - 1) * self.voxel_size

    @property
    def upper(self) -> np.ndarray:
        """Position of the last voxel, in Å."""
        return self.origin + self.extent

    def with_values(self, values: np.ndarray) -> DensityMap:
        """A map on the same grid holding other values."""
        if values.shape != self.values.shape:
            raise ValueError(f"shape {values.shape} does not match the grid {self.values.shape}")
        return DensityMap(values, self.voxel_size, self.origin)

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (n, 3) of points (n, 3) in Å."""
        return (np.asarray(points, dtype=float) - self.origin) / self.voxel_size

    def to_points(self, indices: np.ndarray) -> np.ndarray:
        """Positions in Å of voxel indices (n, 3)."""
        return np.asarray(indices, dtype=float) * self.voxel_size + self.origin

    def grid_points(self) -> np.ndarray:
        """Positions in Å of every voxel, shape (nx, ny, nz, 3)."""
        axes = [self.origin[a] + np.arange(self.shape[a]) * self.voxel_size[a] for a in range(3)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether each point lies inside the box (shrunk by ``margin`` Å)."""
        points = np.asarray(points, dtype=float)
        return np.all((points >= self.origin + margin) & (points <= self.upper - margin), axis=-1)

    def interpolate(self, points: np.ndarray, order: int = 1) -> np.ndarray:
        """Map values at points (n, 3) in Å; points outside the box read 0."""
        indices = self.to_index(np.atleast_2d(points)).T
        return ndimage.map_coordinates(self.values, indices, order=order, mode="constant", cval=0.0)

    def statistics(self) -> dict[str, float]:
        v = self.values
        return {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "std": float(v.std())}


def _as_vector(value: object, name: str) -> np.ndarray:
    vector = np.asarray(value, dtype=float)
    if vector.ndim == 0:
        vector = np.repeat(vector, 3)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise BadMapError(f"{name} must be three finite numbers in Å, got {value!r}")
    return vector


# --------------------------------------------------------------------------- reading


def read_map(path: str | os.PathLike, *, around: np.ndarray | None = None, margin: float = 12.0) -> DensityMap:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`DensityMap`.

    EM maps are read as they are. Crystallographic maps (a space group other than P1, or a
    non-orthogonal cell) are expanded by symmetry and cut into an orthogonal box around the
    coordinates ``around`` (Å) plus ``margin``; without ``around`` they cannot be used.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise BadMapError(f"the map must be an MRC/CCP4 path, a DensityMap or (values, voxel size, origin), got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise BadMapError(f"{path}: no such map file; check the path")
    header = _read_header(path)
    angles = (float(header.cellb.alpha), float(header.cellb.beta), float(header.cellb.gamma))
    space_group = int(header.ispg)
    orthogonal = all(abs(a - 90.0) < 1e-3 or a == 0.0 for a in angles)
    if space_group not in _EM_SPACE_GROUPS or not orthogonal:
        return _read_crystallographic_map(path, around, margin, space_group, angles)
    return _read_em_map(path)


def _read_header(path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                header = mrc.header
                if header is None:
                    raise ValueError("no header")
                header = header.copy()
    except (ValueError, OSError, EOFError) as error:
        raise BadMapError(f"{path}: not a readable MRC/CCP4 map ({error}); check the file") from None
    labelled = bytes(header.map).startswith(b"MAP")
    sizes = [int(header.nx), int(header.ny), int(header.nz)]
    plausible = int(header.mode) in (0, 1, 2, 3, 4, 6, 12, 101) and 0 <= int(header.ispg) <= 630 and min(sizes) > 0
    if not labelled and not plausible:
        raise BadMapError(
            f"{path}: not an MRC/CCP4 map (no 'MAP' label, and mode {int(header.mode)}, space group {int(header.ispg)}, "
            f"size {sizes} make no sense); check that this is the map file"
        )
    return header


def _read_em_map(path: Path) -> DensityMap:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.open(path, permissive=True) as mrc:
                header = mrc.header.copy()
                data = None if mrc.data is None else np.array(mrc.data, dtype=np.float32)
    except (ValueError, OSError, EOFError) as error:
        raise BadMapError(f"{path}: not a readable MRC/CCP4 map ({error}); check the file") from None
    if data is None or any("smaller than" in str(w.message) or "truncated" in str(w.message) for w in caught):
        raise BadMapError(f"{path}: the map data is truncated or missing; re-download or re-export the map")
    if data.ndim != 3:
        raise BadMapError(f"{path}: expected a 3D volume, got data of shape {data.shape}")

    axis_of_data = _axis_order(header, path)
    values = np.transpose(data, axis_of_data)
    voxel_size = _voxel_size(header, path)
    origin = _origin(header, voxel_size, path)
    check_values(values, path)
    density_map = DensityMap(values, voxel_size, origin)
    log.info(
        "map %s: grid %s (x,y,z), voxel %s Å, origin %s Å, axis order MAPC/MAPR/MAPS=%d/%d/%d",
        path.name,
        "x".join(map(str, density_map.shape)),
        np.round(voxel_size, 4).tolist(),
        np.round(origin, 3).tolist(),
        int(header.mapc),
        int(header.mapr),
        int(header.maps),
    )
    return density_map


def _axis_order(header, path: Path) -> list[int]:
    """Permutation taking mrcfile's (section, row, column) array to (x, y, z)."""
    mapc, mapr, maps = int(header.mapc), int(header.mapr), int(header.maps)
    if sorted((mapc, mapr, maps)) != [1, 2, 3]:
        raise BadMapError(
            f"{path}: axis order MAPC/MAPR/MAPS = {mapc}/{mapr}/{maps} is not a permutation of 1/2/3; "
            "fix the header (e.g. with mrcfile or ChimeraX 'save') before fitting"
        )
    data_axis = [0, 0, 0]
    data_axis[mapc - 1] = 2  # columns vary fastest: last axis of the (z, y, x)-style array
    data_axis[mapr - 1] = 1
    data_axis[maps - 1] = 0
    return data_axis


def _voxel_size(header, path: Path) -> np.ndarray:
    cell = np.array([header.cella.x, header.cella.y, header.cella.z], dtype=float)
    sampling = np.array([header.mx, header.my, header.mz], dtype=float)
    if np.any(sampling <= 0) or np.any(cell <= 0) or not np.all(np.isfinite(cell)):
        raise BadMapError(
            f"{path}: the header has no voxel size (cell {cell.tolist()} Å, sampling {sampling.tolist()}); "
            "set it (ChimeraX: `volume #1 voxelSize 1.06` then save; Python: mrcfile's `voxel_size`) and retry"
        )
    return cell / sampling


def _origin(header, voxel_size: np.ndarray, path: Path) -> np.ndarray:
    """Position of voxel (0,0,0): the ORIGIN record when set, else NSTART x voxel size."""
    origin = np.array([header.origin.x, header.origin.y, header.origin.z], dtype=float)
    start_crs = np.array([header.nxstart, header.nystart, header.nzstart], dtype=float)
    start = np.zeros(3)
    for crs_index, axis in enumerate((int(header.mapc), int(header.mapr), int(header.maps))):
        start[axis - 1] = start_crs[crs_index]
    start_origin = start * voxel_size
    if not np.all(np.isfinite(origin)):
        origin = np.zeros(3)
    if np.any(origin != 0):
        if np.any(start != 0) and not np.allclose(origin, start_origin, atol=1e-3):
            log.warning(
                "%s: both ORIGIN %s Å and NSTART %s (= %s Å) are set and disagree; using ORIGIN as "
                "ChimeraX does. If the model does not sit in the density, the map was written with "
                "the other convention.",
                path.name,
                np.round(origin, 3).tolist(),
                start.astype(int).tolist(),
                np.round(start_origin, 3).tolist(),
            )
        return origin
    return start_origin


def check_values(values: np.ndarray, path: Path | str) -> None:
    """Refuse maps with non-finite values or no variation at all, naming ``path``."""
    if not np.all(np.isfinite(values)):
        raise BadMapError(f"{path}: the map holds NaN or infinite values; mask or re-export it")
    if float(values.max()) == float(values.min()):
        raise BadMapError(f"{path}: the map is empty (every voxel is {float(values.max()):g}); check the file")


def _read_crystallographic_map(
    path: Path, around: np.ndarray | None, margin: float, space_group: int, angles: tuple[float, ...]
) -> DensityMap:
    if around is None or len(around) == 0:
        raise BadMapError(
            f"{path}: a crystallographic map (space group {space_group}, cell angles {angles}); "
            "give the model too (--model) so ligfit can cut an orthogonal box around it"
        )
    try:
        ccp4 = gemmi.read_ccp4_map(str(path))
    except (RuntimeError, ValueError) as error:
        raise BadMapError(f"{path}: not a readable CCP4 map ({error}); check the file") from None
    ccp4.setup(float("nan"))
    grid = ccp4.grid
    if np.isnan(np.array(grid, copy=False)).any():
        raise BadMapError(f"{path}: the map does not cover its asymmetric unit; re-export the whole cell")
    spacing = min(grid.spacing)
    lower = np.min(around, axis=0) - margin
    upper = np.max(around, axis=0) + margin
    shape = np.ceil((upper - lower) / spacing).astype(int) + 1
    values = np.zeros(shape, dtype=np.float32)
    transform = gemmi.Transform(gemmi.Mat33([[spacing, 0, 0], [0, spacing, 0], [0, 0, spacing]]), gemmi.Vec3(*lower))
    grid.interpolate_values(values, transform)
    check_values(values, path)
    log.info(
        "map %s: crystallographic (space group %s), cut an orthogonal box %s at %.3f Å around the model",
        path.name,
        grid.spacegroup.hm if grid.spacegroup else space_group,
        "x".join(map(str, shape)),
        spacing,
    )
    return DensityMap(values, np.full(3, spacing), lower)


# --------------------------------------------------------------------------- writing


def write_map(density_map: DensityMap, path: str | os.PathLike) -> None:
    """Write an MRC map (gzipped if the name ends in .gz) with ORIGIN set and NSTART 0."""
    path = Path(path)
    with atomic_path(path) as temporary:
        with mrcfile.new(temporary, overwrite=True, compression="gzip" if path.suffix == ".gz" else None) as mrc:
            mrc.set_data(np.ascontiguousarray(density_map.values.transpose(2, 1, 0)))
            mrc.voxel_size = tuple(float(v) for v in density_map.voxel_size)
            mrc.header.origin = tuple(float(v) for v in density_map.origin)
            mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
            mrc.update_header_stats()


# --------------------------------------------------------------------------- grid operations


def resample(density_map: DensityMap, voxel_size: float | np.ndarray) -> DensityMap:
    """Resample onto a grid with the given voxel size (Å), same origin, cubic interpolation."""
    new_voxel = _as_vector(voxel_size, "voxel_size")
    shape = np.floor(density_map.extent / new_voxel + 1e-6).astype(int) + 1
    axes = [np.arange(shape[a]) * new_voxel[a] / density_map.voxel_size[a] for a in range(3)]
    indices = np.meshgrid(*axes, indexing="ij")
    values = ndimage.map_coordinates(density_map.values, indices, order=3, mode="nearest")
    return DensityMap(values, new_voxel, density_map.origin)


def normalise(density_map: DensityMap, mask: np.ndarray | None = None) -> DensityMap:
    """Shift and scale to mean 0 and standard deviation 1 (over ``mask`` when given)."""
    sample = density_map.values if mask is None else density_map.values[mask]
    std = float(sample.std())
    if std == 0:
        raise BadMapError("cannot normalise a map whose values are all equal")
    return density_map.with_values((density_map.values - sample.mean()) / std)


def box(density_map: DensityMap, center: np.ndarray, size: float | np.ndarray) -> DensityMap:
    """The cube (or cuboid) of edge ``size`` Å around ``center``, on the map's own voxels.

    Parts of the box outside the map are filled with 0.
    """
    size_vector = _as_vector(size, "size")
    start = np.floor(density_map.to_index(np.asarray(center) - size_vector / 2)).astype(int)
    count = np.ceil(size_vector / density_map.voxel_size).astype(int) + 1
    values = np.zeros(count, dtype=np.float32)
    source_lo = np.maximum(start, 0)
    source_hi = np.minimum(start + count, density_map.shape)
    if np.all(source_hi > source_lo):
        target_lo = source_lo - start
        target_hi = source_hi - start
        values[tuple(slice(a, b) for a, b in zip(target_lo, target_hi))] = density_map.values[
            tuple(slice(a, b) for a, b in zip(source_lo, source_hi))
        ]
    return DensityMap(values, density_map.voxel_size, density_map.to_points(start[None])[0])


def grid_around(coordinates: np.ndarray, voxel_size: float | np.ndarray, margin: float) -> DensityMap:
    """An empty grid covering the coordinates (Å) plus ``margin`` Å on every side."""
    voxel = _as_vector(voxel_size, "voxel_size")
    lower = np.min(coordinates, axis=0) - margin
    upper = np.max(coordinates, axis=0) + margin
    shape = np.ceil((upper - lower) / voxel).astype(int) + 1
    return DensityMap(np.zeros(shape, dtype=np.float32), voxel, lower)


def fraction_inside(density_map: DensityMap, coordinates: np.ndarray, origin: np.ndarray | None = None) -> float:
    """Fraction of the points (Å) inside the map's box (placed at ``origin`` instead, if given)."""
    if len(coordinates) == 0:
        return 0.0
    lower = density_map.origin if origin is None else np.asarray(origin, dtype=float)
    inside = np.all((coordinates >= lower) & (coordinates <= lower + density_map.extent), axis=-1)
    return float(np.mean(inside))


def check_overlap(
    density_map: DensityMap, coordinates: np.ndarray, model_label: str, minimum_fraction: float = 0.5, minimum_atoms: int | None = None
) -> float:
    """The fraction of the model's atoms (Å) inside the map box; refuse a model that mostly lies outside it.

    Enough overlap is ``minimum_fraction`` of the atoms, or at least ``minimum_atoms`` of them when given (a
    whole model with a map boxed around one site). The error says which origin would make them overlap (an
    ORIGIN/NSTART convention mix-up), when one would.
    """
    inside = fraction_inside(density_map, coordinates)
    if inside >= minimum_fraction or (minimum_atoms is not None and inside * len(coordinates) >= minimum_atoms):
        return inside
    hints = []
    for label, origin in (("0,0,0", np.zeros(3)), ("the box centred on 0", -density_map.extent / 2)):
        if not np.allclose(origin, density_map.origin) and fraction_inside(density_map, coordinates, origin=origin) >= minimum_fraction:
            hints.append(f"it would if the map origin were {label} (an ORIGIN/NSTART convention mix-up?)")
    hint = "; " + hints[0] if hints else "; check that model and map belong together"
    lower, upper = np.round(density_map.origin, 1).tolist(), np.round(density_map.upper, 1).tolist()
    centre = np.round(np.mean(coordinates, axis=0), 1).tolist() if len(coordinates) else None
    raise BadModelError(
        f"model {model_label} does not overlap the map: only {inside:.0%} of its atoms lie in the map box {lower}–{upper} Å "
        f"(model centre {centre} Å){hint}"
    )


MapSource = str | os.PathLike | DensityMap | tuple


def load_map(source: MapSource, around: np.ndarray | None = None) -> DensityMap:
    """A DensityMap from a path, a DensityMap, or (values in x,y,z order, voxel size Å, origin Å), its values checked.

    ``around``: model coordinates (Å) that pick the part of a crystallographic map to expand (see :func:`read_map`).
    """
    if isinstance(source, DensityMap):
        check_values(source.values, "the map given in memory")
        return source
    if isinstance(source, tuple):
        if len(source) != 3:
            raise BadMapError("an in-memory map is (values in x,y,z order, voxel size in Å, origin in Å)")
        values, voxel_size, origin = source
        density = DensityMap(np.asarray(values), voxel_size, origin)
        check_values(density.values, "the map given in memory")
        return density
    return read_map(source, around=around)


# --------------------------------------------------------------------------- simulation


def blur_for_resolution(resolution: float) -> float:
    """Gaussian blur B (Å²) giving density like ChimeraX molmap at this resolution (σ = 0.225 d)."""
    return 8 * math.pi**2 * (0.225 * resolution) ** 2


def scattering_weights(elements: list[str], resolution: float) -> np.ndarray:
    """Peak density of each atom at ``resolution`` Å (electron scattering factors, ITC 4.3.2.2), relative to carbon; H → 0.

    What a cryo-EM map shows of each element (O 0.93, S 2.0 at 3 Å), where atomic numbers (O 1.33, S 2.7) are X-ray's.
    """
    table = {symbol: _relative_peak(symbol, round(float(resolution), 3)) for symbol in set(elements) if symbol != "H"}
    return np.array([table.get(symbol, 0.0) for symbol in elements])


@functools.lru_cache(maxsize=4096)
def _relative_peak(symbol: str, resolution: float) -> float:
    blur = blur_for_resolution(resolution)

    def peak(name: str) -> float:
        coefficients = gemmi.Element(name).c4322.get_coefs()
        a, b = np.array(coefficients[:5]), np.array(coefficients[5:])
        return float(np.sum(a * (4 * math.pi / (b + blur)) ** 1.5))

    return peak(symbol) / peak("C")


#: Box margin (Å) around a model whose map is simulated on a grid of its own: density does not wrap round the periodic cell.
SIMULATION_MARGIN = 6.0


def simulate(
    structure: gemmi.Structure,
    resolution: float,
    like: DensityMap | None = None,
    *,
    voxel_size: float | None = None,
    margin: float = SIMULATION_MARGIN,
    use_b_factors: bool = False,
    noise: float = 0.0,
    seed: int = 0,
) -> DensityMap:
    """Simulate the density of a model at ``resolution`` Å with electron scattering factors.

    The grid is ``like``'s when given, else a box around the model (``margin`` Å, voxel
    ``voxel_size`` or resolution/3). With ``use_b_factors`` the atoms keep their B-factors
    and the blur is chosen so that an atom of median B appears at the nominal resolution;
    otherwise every atom is sharp and blurred to the resolution. ``noise`` adds Gaussian
    noise low-pass filtered like the signal, its standard deviation that fraction of the
    mean density at the atom centres. Hydrogens are ignored.
    """
    coordinates, b_factors = _heavy_atom_arrays(structure)
    if len(coordinates) == 0:
        raise ValueError("the structure has no heavy atoms to simulate")
    if like is None:
        like = grid_around(coordinates, voxel_size or min(1.0, resolution / 3), margin)
    blur = blur_for_resolution(resolution)
    if use_b_factors:
        blur = max(0.0, blur - float(np.median(b_factors)))
    values = _gemmi_density(structure, like, resolution, blur, use_b_factors)
    simulated = like.with_values(values)
    if noise > 0:
        simulated = add_noise(simulated, resolution, noise * float(simulated.interpolate(coordinates).mean()), seed)
    return simulated


def add_noise(density_map: DensityMap, resolution: float, std: float, seed: int) -> DensityMap:
    """Add Gaussian noise of standard deviation ``std``, low-pass filtered to ``resolution`` Å."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(density_map.shape).astype(np.float32)
    sigma_voxels = 0.225 * resolution / density_map.voxel_size
    coloured = ndimage.gaussian_filter(white, sigma_voxels, mode="wrap")
    coloured *= std / max(float(coloured.std()), 1e-12)
    return density_map.with_values(density_map.values + coloured)


def _heavy_atom_arrays(structure: gemmi.Structure) -> tuple[np.ndarray, np.ndarray]:
    coordinates, b_factors = [], []
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                if not atom.is_hydrogen():
                    coordinates.append(atom.pos.tolist())
                    b_factors.append(atom.b_iso)
    return np.array(coordinates, dtype=float).reshape(-1, 3), np.array(b_factors, dtype=float)


def density_calculator(resolution: float, blur: float, cell: np.ndarray, shape: np.ndarray) -> gemmi.DensityCalculatorE:
    """gemmi's electron-scattering density calculator on an empty orthogonal P1 cell (edges ``cell`` Å, ``shape`` voxels)."""
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = resolution
    calculator.blur = blur
    calculator.grid.set_unit_cell(gemmi.UnitCell(*cell, 90, 90, 90))
    calculator.grid.set_size(*(int(n) for n in shape))
    calculator.grid.fill(0.0)
    return calculator


def _gemmi_density(structure: gemmi.Structure, like: DensityMap, resolution: float, blur: float, use_b_factors: bool) -> np.ndarray:
    """Density of the model's heavy atoms on ``like``'s grid, via gemmi on a padded P1 cell."""
    pad = max(8.0, 3.0 * resolution)
    pad_voxels = np.ceil(pad / like.voxel_size).astype(int)
    shape = np.array(like.shape) + 2 * pad_voxels
    cell_origin = like.origin - pad_voxels * like.voxel_size
    cell = shape * like.voxel_size

    calculator = density_calculator(resolution, blur, cell, shape)
    # Keep only atoms well inside the padded cell: the cell is periodic, and an atom
    # outside it would wrap around and add density on the far side.
    inner_lo = cell_origin + pad / 2
    inner_hi = cell_origin + cell - pad / 2
    shift = gemmi.Position(*(-cell_origin))
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                if atom.is_hydrogen():
                    continue
                position = np.array(atom.pos.tolist())
                if np.any(position < inner_lo) or np.any(position > inner_hi):
                    continue
                moved = atom.clone()
                moved.pos = atom.pos + shift
                if not use_b_factors:
                    moved.b_iso = 0.0
                    moved.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
                calculator.add_atom_density_to_grid(moved)
    calculator.grid.symmetrize_sum()
    padded = np.array(calculator.grid, copy=True)
    lo = pad_voxels
    return padded[lo[0] : lo[0] + like.shape[0], lo[1] : lo[1] + like.shape[1], lo[2] : lo[2] + like.shape[2]]


# --------------------------------------------------------------------------- model placement


@dataclass(frozen=True)
class Translation:
    """How well a model fits a map where it is, and shifted by the best whole-model translation (Å)."""

    shift: np.ndarray  # (3,) Å to add to the model's coordinates
    cc_here: float  # correlation of the model's density with the map where the model is (coarse grid)
    cc_shifted: float  # the same after the shift

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(self.shift))


def best_translation(
    density_map: DensityMap,
    coordinates: np.ndarray,
    resolution: float,
    *,
    voxel_size: float | None = None,
    max_shift: float | None = None,
    structure: gemmi.Structure | None = None,
) -> Translation:
    """The translation that best fits a model's simulated density to the map (FFT masked cross-correlation).

    ``coordinates``: the model's heavy atoms (Å); ``structure`` (optional) gives gemmi's electron
    scattering factors, else every atom is carbon. The search runs on a coarse grid (``voxel_size``
    Å; default: 1 Å, coarser for boxes over 100 Å, at least the map's voxel), the model's density
    blurred to at least twice that; each shift's score is the Pearson correlation inside the
    model's mask (map zero outside its box), counted only where at least half of the mask lies in
    the box. ``max_shift`` (Å) bounds the search (default: any shift). The peak is interpolated
    to a fraction of a voxel; about a second for a 300-Å box.
    """
    from scipy import fft

    coordinates = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    if voxel_size is None:
        voxel_size = max(1.0, float(density_map.extent.max()) / 100)
    voxel = max(float(voxel_size), float(density_map.voxel_size.max()))
    coarse = resample(density_map, voxel) if not np.allclose(density_map.voxel_size, voxel) else density_map
    blur_resolution = max(float(resolution), 2.0 * voxel)
    # The template's grid on the map's lattice, so that whole-voxel offsets are exact.
    lower = coarse.origin + np.floor((coordinates.min(0) - blur_resolution - coarse.origin) / voxel) * voxel
    upper = coordinates.max(0) + blur_resolution
    template_grid = DensityMap(np.zeros(np.ceil((upper - lower) / voxel).astype(int) + 1, dtype=np.float32), voxel, lower)
    if structure is None:
        structure = _carbon_structure(coordinates)
    template = simulate(structure, blur_resolution, like=template_grid).values.astype(np.float64)
    mask = (template > 0.05 * template.max()).astype(np.float64)
    template = np.where(mask > 0, template - template[mask > 0].mean(), 0.0)

    values = coarse.values.astype(np.float64)
    values = values - values.mean()
    inside = np.ones_like(values)
    shape = [fft.next_fast_len(a + b - 1) for a, b in zip(values.shape, template.shape)]

    def correlate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        return fft.irfftn(fft.rfftn(image, shape) * np.conj(fft.rfftn(kernel, shape)), shape)

    # Entry (i, j, k) scores the template's voxel 0 at map voxel (i, j, k) (negative offsets wrap round).
    count = mask.sum()
    sum_map = correlate(values, mask)
    sum_map2 = correlate(values**2, mask)
    sum_product = correlate(values, template)
    overlap = correlate(inside, mask)
    variance = np.maximum(sum_map2 - sum_map**2 / count, 1e-12)
    score = sum_product / np.sqrt(variance * float((template**2).sum()))
    score[overlap < 0.5 * count] = -1.0

    offsets = [np.where(np.arange(n) < n - t + 1, np.arange(n), np.arange(n) - n) for n, t in zip(shape, template.shape)]
    grids = np.meshgrid(*offsets, indexing="ij")
    # The template's voxel 0 at map voxel o puts the model at template.origin + shift, i.e. shift = coarse.origin + o·v − template.origin.
    base = coarse.origin - template_grid.origin
    shifts = np.stack([base[a] + grids[a] * voxel for a in range(3)], axis=-1)
    if max_shift is not None:
        score[np.linalg.norm(shifts, axis=-1) > max_shift] = -1.0
    here_index = tuple(int(round(-base[a] / voxel)) % shape[a] for a in range(3))
    best_index = np.unravel_index(int(np.argmax(score)), score.shape)
    shift = shifts[best_index].copy()
    for axis in range(3):  # parabola through the peak and its neighbours along each axis
        around = [score[tuple((best_index[a] + (step if a == axis else 0)) % shape[a] for a in range(3))] for step in (-1, 0, 1)]
        curvature = around[0] - 2 * around[1] + around[2]
        if curvature < 0 and min(around) > -1.0:
            shift[axis] += voxel * float(np.clip(0.5 * (around[0] - around[2]) / curvature, -0.5, 0.5))
    return Translation(shift=np.round(shift, 2), cc_here=float(score[here_index]), cc_shifted=float(score[best_index]))


def _carbon_structure(coordinates: np.ndarray) -> gemmi.Structure:
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    residue = gemmi.Residue()
    residue.name = "UNK"
    for position in coordinates:
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "C", gemmi.Element("C"), gemmi.Position(*position)
        residue.add_atom(atom)
    chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


# --------------------------------------------------------------------------- a crystallographic map on its own grid


@dataclass(frozen=True)
class CellRegion:
    """The part of a crystallographic map stored in its file, on the map's own (possibly non-orthogonal) grid.

    ``values[i, j, k]`` lies at fractional coordinates ``(start + (i, j, k)) / cell_grid`` of the
    unit cell ``cell`` (a, b, c in Å; α, β, γ in degrees; orthogonalised as in the PDB: a along x,
    b in the xy-plane). Nothing is expanded by symmetry: this is the grid cctbx/Phenix work on.
    """

    values: np.ndarray
    start: np.ndarray
    cell_grid: np.ndarray
    cell: tuple[float, float, float, float, float, float]
    space_group: int


def read_cell_region(source: MapSource) -> CellRegion | None:
    """The map as stored on its own grid when ``source`` is a crystallographic map file; None otherwise."""
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
        return None
    path = Path(source)
    header = _read_header(path)
    angles = (float(header.cellb.alpha), float(header.cellb.beta), float(header.cellb.gamma))
    orthogonal = all(abs(a - 90.0) < 1e-3 or a == 0.0 for a in angles)
    if int(header.ispg) in _EM_SPACE_GROUPS and orthogonal:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.open(path, permissive=True) as mrc:
                data = None if mrc.data is None else np.array(mrc.data, dtype=np.float32)
    except (ValueError, OSError, EOFError) as error:
        raise BadMapError(f"{path}: not a readable CCP4 map ({error}); check the file") from None
    if data is None or data.ndim != 3:
        raise BadMapError(f"{path}: the map data is missing or not a 3D volume; re-export the map")
    values = np.ascontiguousarray(np.transpose(data, _axis_order(header, path)))
    check_values(values, path)
    start = np.zeros(3, dtype=int)
    for crs_index, axis in enumerate((int(header.mapc), int(header.mapr), int(header.maps))):
        start[axis - 1] = int((header.nxstart, header.nystart, header.nzstart)[crs_index])
    cell_grid = np.array([int(header.mx), int(header.my), int(header.mz)])
    cell = tuple(float(v) for v in (header.cella.x, header.cella.y, header.cella.z, *angles))
    if np.any(cell_grid <= 0) or min(cell[:3]) <= 0:
        raise BadMapError(f"{path}: the header has no unit cell or sampling; re-export the map with its cell")
    return CellRegion(values, start, cell_grid, cell, int(header.ispg))
