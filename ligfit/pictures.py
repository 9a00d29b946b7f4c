"""Pictures of a ligand in its density: matplotlib (Agg), scikit-image's marching cubes, RDKit's 2D depiction.

Every function takes plain inputs (a :class:`~ligfit.maps.DensityMap`, coordinates in Å in the
map's frame, element symbols, bond index pairs) and returns image bytes, so that reports can
embed them or write them to files. Figures are made with ``matplotlib.figure.Figure`` on an Agg
canvas of their own: pyplot and the caller's matplotlib backend are never touched.

The density is drawn as the isosurface of the map (Lorensen & Cline 1987, as implemented in
scikit-image) zoned to within :data:`ZONE` Å of the ligand's atoms, the way ChimeraX's
``volume zone`` shows it, at a contour where the pocket's own atoms read clearly
(:func:`contour_level`), seen from three directions along the ligand's principal axes.
"""

from __future__ import annotations

import base64
import io as _io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from rdkit import Chem
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from ligfit import maps
from ligfit.maps import DensityMap

ZONE = 2.4  # Å: isosurface shown within this distance of a ligand atom (as ChimeraX's volume zone)
MARGIN = 3.5  # Å of frame around the ligand in each view
POCKET_RADIUS = 5.0  # Å: residues with an atom this close to the ligand are drawn as sticks
REFERENCE_FRACTION = 0.5  # contour at this fraction of the median density at the pocket's atoms
Q_RANGE = (0.0, 1.0)  # colour scale of per-atom Q-scores
Q_COLOURMAP = "RdYlGn"

#: Stick colours by element (Jmol-like; carbon set per molecule).
ELEMENT_COLOURS = {
    "N": "#3050f8",
    "O": "#ff0d0d",
    "S": "#d4b000",
    "P": "#ff8000",
    "F": "#70d050",
    "CL": "#1ff01f",
    "BR": "#a62929",
    "I": "#940094",
    "FE": "#e06633",
    "MG": "#8aff00",
    "ZN": "#7d80b0",
}
LIGAND_CARBON = "#f2b134"
POCKET_CARBON = "#9a9a9a"
MESH_COLOUR = "#2f5fd0"
#: Views of the ligand: (name, in-plane axes, viewing axis) as indices of its principal axes, longest first.
VIEWS = (("face-on", (0, 1)), ("edge-on", (0, 2)), ("end-on", (1, 2)))
_COVALENT_RADII = {"H": 0.31, "C": 0.76, "N": 0.71, "O": 0.66, "S": 1.05, "P": 1.07, "SE": 1.20, "F": 0.57, "CL": 1.02, "BR": 1.20}


@dataclass(frozen=True)
class Sticks:
    """Atoms to draw as sticks: ``coordinates`` (n, 3) in Å (map frame), ``elements`` (n,), ``bonds`` (m, 2) atom index pairs."""

    coordinates: np.ndarray
    elements: np.ndarray
    bonds: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "coordinates", np.asarray(self.coordinates, dtype=float).reshape(-1, 3))
        object.__setattr__(self, "elements", np.array([str(e).upper() for e in self.elements], dtype=object))
        object.__setattr__(self, "bonds", np.asarray(self.bonds, dtype=int).reshape(-1, 2))

    @classmethod
    def from_atoms(cls, coordinates: np.ndarray, elements: Sequence[str]) -> Sticks:
        """Sticks with bonds guessed from covalent radii (for protein atoms, which carry no bond table here)."""
        return cls(coordinates, elements, guess_bonds(coordinates, elements))

    def __len__(self) -> int:
        return len(self.coordinates)


def guess_bonds(coordinates: np.ndarray, elements: Sequence[str], tolerance: float = 0.45) -> np.ndarray:
    """Atom pairs closer than the sum of their covalent radii plus ``tolerance`` Å, shape (m, 2)."""
    xyz = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    if len(xyz) < 2:
        return np.zeros((0, 2), dtype=int)
    radii = np.array([_COVALENT_RADII.get(str(e).upper(), 1.2) for e in elements])
    pairs = cKDTree(xyz).query_pairs(2 * radii.max() + tolerance, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=int)
    length = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
    return pairs[(length > 0.4) & (length < radii[pairs[:, 0]] + radii[pairs[:, 1]] + tolerance)]


def pocket_sticks(
    coordinates: np.ndarray, elements: Sequence[str], residue_ids: Sequence, ligand_xyz: np.ndarray, radius: float = POCKET_RADIUS
) -> Sticks | None:
    """Whole residues with any atom within ``radius`` Å of the ligand, as sticks (None when there are none).

    ``residue_ids``: one hashable label per atom (e.g. chain + number); atoms that coincide with a
    ligand atom (the ligand itself, when it is part of the model) are left out.
    """
    xyz = np.asarray(coordinates, dtype=float).reshape(-1, 3)
    if len(xyz) == 0:
        return None
    distance = cKDTree(np.asarray(ligand_xyz, dtype=float)).query(xyz)[0]
    residue_ids = np.asarray([str(r) for r in residue_ids])
    near = np.isin(residue_ids, np.unique(residue_ids[(distance < radius) & (distance > 0.05)])) & (distance > 0.05)
    if not near.any():
        return None
    elements = np.asarray(elements)[near]
    return Sticks.from_atoms(xyz[near], elements)


def contour_level(density: DensityMap, reference_xyz: np.ndarray | None = None) -> float:
    """A contour level (map units) at which well-ordered atoms read clearly: half the median density at ``reference_xyz``.

    Give the pocket's protein atoms, so that the ligand is shown at the level where its own
    neighbours are covered: a level taken from the ligand's own density would make any ligand look
    covered. Without reference atoms (a map of the ligand alone): mean + 1.5 σ of the non-zero voxels.
    """
    if reference_xyz is not None and len(reference_xyz) >= 10:
        inside = density.contains(reference_xyz)
        if inside.sum() >= 10:
            return float(REFERENCE_FRACTION * np.median(density.interpolate(np.asarray(reference_xyz)[inside])))
    values = density.values[density.values != 0]
    if len(values) == 0:
        return 0.0
    return float(values.mean() + 1.5 * values.std())


def density_views(
    density: DensityMap,
    ligand: Sticks,
    *,
    level: float | None = None,
    pocket: Sticks | None = None,
    atom_q: Sequence[float | None] | None = None,
    title: str | None = None,
    panel_inches: float = 3.3,
    dpi: int = 110,
) -> bytes:
    """PNG of the ligand in its density from three directions (face-on, edge-on, end-on).

    ``level``: the contour (map units; default :func:`contour_level` of the pocket). ``atom_q``: per-atom
    Q-scores of the ligand, which colour its atoms (with a colour bar); without them atoms are
    coloured by element. ``pocket``: protein atoms to draw as thin sticks.
    """
    level = contour_level(density, None if pocket is None else pocket.coordinates) if level is None else float(level)
    centre = ligand.coordinates.mean(axis=0)
    half_width = float(np.max(np.linalg.norm(ligand.coordinates - centre, axis=1))) + MARGIN
    triangles = isosurface(density, level, ligand.coordinates, ZONE)
    axes = principal_axes(ligand.coordinates)
    q = None if atom_q is None else np.array([np.nan if v is None else v for v in atom_q], dtype=float)
    figure = Figure(figsize=(3 * panel_inches + (0.5 if q is not None else 0), panel_inches + 0.45), dpi=dpi)
    FigureCanvasAgg(figure)
    width = 3 * panel_inches + (0.5 if q is not None else 0)
    for index, (name, (a, b)) in enumerate(VIEWS):
        basis = np.stack([axes[a], axes[b], np.cross(axes[a], axes[b])])
        panel = figure.add_axes((index * panel_inches / width, 0.02, panel_inches / width * 0.98, 0.86))
        _draw_scene(panel, basis, centre, half_width, triangles, ligand, pocket, q)
        panel.set_title(name, fontsize=9, pad=2)
    if q is not None:
        bar_axes = figure.add_axes((3 * panel_inches / width + 0.01, 0.12, 0.12 / width, 0.66))
        colour_bar = figure.colorbar(_q_mappable(), cax=bar_axes)
        colour_bar.set_label("Q-score", fontsize=8)
        colour_bar.ax.tick_params(labelsize=7)
    sigma = float(density.values.std())
    caption = f"contour {level:.3g} ({level / sigma:.1f} × map rms), within {ZONE} Å of the ligand"
    figure.text(0.01, 0.985, title + " — " + caption if title else caption, fontsize=8, va="top")
    return _png(figure)


def blob_view(
    difference: DensityMap,
    centre: np.ndarray,
    level: float,
    *,
    radius: float = 6.0,
    pocket: Sticks | None = None,
    title: str | None = None,
    inches: float = 2.6,
    dpi: int = 100,
) -> bytes:
    """PNG of one blob of the difference map: its isosurface at ``level`` within ``radius`` Å of ``centre``, pocket in sticks."""
    centre = np.asarray(centre, dtype=float)
    region = _region(difference, centre[None], radius + 1.0)
    above = region.grid_points()[region.values >= level]
    above = above[np.linalg.norm(above - centre, axis=1) <= radius]
    triangles = isosurface(difference, level, centre[None], radius)
    axes = principal_axes(above) if len(above) >= 3 else np.eye(3)
    basis = np.stack([axes[0], axes[1], np.cross(axes[0], axes[1])])
    figure = Figure(figsize=(inches, inches), dpi=dpi)
    FigureCanvasAgg(figure)
    panel = figure.add_axes((0.02, 0.02, 0.96, 0.88))
    _draw_scene(panel, basis, centre, radius, triangles, None, pocket, None)
    if title:
        panel.set_title(title, fontsize=8, pad=2)
    return _png(figure)


def isosurface(density: DensityMap, level: float, near: np.ndarray, zone: float) -> np.ndarray:
    """Triangles (t, 3, 3) in Å of the ``level`` isosurface with every vertex within ``zone`` Å of a point of ``near``."""
    near = np.asarray(near, dtype=float).reshape(-1, 3)
    region = _region(density, near, zone + 1.0)
    values = region.values
    if not (values.min() < level < values.max()) or min(values.shape) < 2:
        return np.zeros((0, 3, 3))
    vertices, faces, _, _ = marching_cubes(values, level=level, spacing=tuple(region.voxel_size))
    vertices = vertices + region.origin
    close = cKDTree(near).query(vertices)[0] <= zone
    faces = faces[close[faces].all(axis=1)]
    return vertices[faces]


def principal_axes(coordinates: np.ndarray) -> np.ndarray:
    """Rows: the principal axes of a point cloud, longest first, right-handed."""
    xyz = np.asarray(coordinates, dtype=float)
    if len(xyz) < 3:
        return np.eye(3)
    _, vectors = np.linalg.eigh(np.cov((xyz - xyz.mean(axis=0)).T))
    first, second = vectors[:, 2], vectors[:, 1]
    return np.stack([first, second, np.cross(first, second)])


def _region(density: DensityMap, points: np.ndarray, margin: float) -> DensityMap:
    lower = points.min(axis=0) - margin
    upper = points.max(axis=0) + margin
    return maps.box(density, (lower + upper) / 2, upper - lower)


def _draw_scene(panel, basis, centre, half_width, triangles, ligand, pocket, q) -> None:
    """Draw surface, pocket and ligand projected onto ``basis`` rows (u, v, towards the viewer), far to near in slabs."""
    slabs = 8
    depth_range = (float(centre @ basis[2]) - half_width - 3, float(centre @ basis[2]) + half_width + 3)
    edges = np.linspace(*depth_range, slabs + 1)
    edges[0], edges[-1] = -np.inf, np.inf

    def slab_of(depth: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, depth) - 1, 0, slabs - 1)

    light = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
    if len(triangles):
        projected = (triangles - centre) @ basis.T  # (t, 3, 3) in view coordinates
        normals = np.cross(projected[:, 1] - projected[:, 0], projected[:, 2] - projected[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        shade = 0.55 + 0.45 * np.abs(normals @ light)
        face = np.column_stack([0.55 * shade, 0.7 * shade, np.full_like(shade, 1.0), np.full_like(shade, 0.16)])
        triangle_slab = slab_of(triangles.mean(axis=1) @ basis[2])
    molecules = []
    for sticks, carbon, width, is_ligand in ((pocket, POCKET_CARBON, 1.1, False), (ligand, LIGAND_CARBON, 3.0, True)):
        if sticks is None or len(sticks) == 0:
            continue
        view = (sticks.coordinates - centre) @ basis.T
        colours = [ELEMENT_COLOURS.get(e, carbon) if e != "C" else carbon for e in sticks.elements]
        segments, segment_colours, segment_depth = [], [], []
        for i, j in sticks.bonds:
            middle = (view[i] + view[j]) / 2
            for start, colour in ((view[i], colours[i]), (view[j], colours[j])):
                segments.append([start[:2], middle[:2]])
                segment_colours.append(colour)
                segment_depth.append((start[2] + middle[2]) / 2 + centre @ basis[2])
        molecules.append((view, colours, np.array(segments).reshape(-1, 2, 2), segment_colours, np.array(segment_depth), width, is_ligand))
    for slab in range(slabs):
        z = 10 * slab
        if len(triangles):
            chosen = triangle_slab == slab
            if chosen.any():
                panel.add_collection(
                    PolyCollection(
                        projected[chosen][:, :, :2],
                        facecolors=face[chosen],
                        edgecolors=(*_rgb(MESH_COLOUR), 0.55),
                        linewidths=0.35,
                        zorder=z,
                    )
                )
        for view, colours, segments, segment_colours, segment_depth, width, is_ligand in molecules:
            chosen = slab_of(segment_depth) == slab
            if chosen.any():
                panel.add_collection(
                    LineCollection(
                        segments[chosen],
                        colors=[segment_colours[k] for k in np.flatnonzero(chosen)],
                        linewidths=width,
                        alpha=1.0 if is_ligand else 0.75,
                        capstyle="round",
                        zorder=z + (3 if is_ligand else 1),
                    )
                )
            if is_ligand:
                atoms = slab_of(view[:, 2] + centre @ basis[2]) == slab
                if atoms.any():
                    if q is None:
                        atom_colours = [colours[k] for k in np.flatnonzero(atoms)]
                    else:
                        atom_colours = [_q_colour(v) for v in q[atoms]]
                    panel.scatter(view[atoms, 0], view[atoms, 1], s=26, c=atom_colours, edgecolors="#222222", linewidths=0.6, zorder=z + 4)
    panel.set_xlim(-half_width, half_width)
    panel.set_ylim(-half_width, half_width)
    panel.set_aspect("equal")
    panel.set_xticks([])
    panel.set_yticks([])
    for spine in panel.spines.values():
        spine.set_color("#cccccc")
    bar = 5.0 if half_width > 6 else 2.0
    x0, y0 = -half_width + 0.8, -half_width + 0.8
    panel.plot([x0, x0 + bar], [y0, y0], color="#333333", linewidth=1.5, zorder=10 * slabs)
    panel.text(x0 + bar / 2, y0 + 0.35, f"{bar:.0f} Å", ha="center", va="bottom", fontsize=7, zorder=10 * slabs)


def _rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.lstrip("#")
    return tuple(int(colour[k : k + 2], 16) / 255 for k in (0, 2, 4))


def _q_mappable():
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=Normalize(*Q_RANGE), cmap=colormaps[Q_COLOURMAP])


def _q_colour(value: float) -> tuple[float, float, float, float]:
    if value is None or not np.isfinite(value):
        return (0.6, 0.6, 0.6, 1.0)
    return colormaps[Q_COLOURMAP](float(np.clip((value - Q_RANGE[0]) / (Q_RANGE[1] - Q_RANGE[0]), 0, 1)))


def q_score_chart(
    atom_names: Sequence[str], atom_q: Sequence[float | None], expected: float | None, *, width_inches: float = 6.4, dpi: int = 100
) -> bytes:
    """PNG bar chart of per-atom Q-scores, bars in the Q colours, with the expected Q at the map's resolution dashed."""
    q = np.array([np.nan if v is None else v for v in atom_q], dtype=float)
    figure = Figure(figsize=(width_inches, 1.9), dpi=dpi)
    FigureCanvasAgg(figure)
    panel = figure.add_axes((0.07, 0.3, 0.91, 0.62))
    positions = np.arange(len(q))
    heights = np.nan_to_num(q)
    panel.bar(positions, heights, color=[_q_colour(v) for v in q], edgecolor="#444444", linewidth=0.3)
    if expected is not None:
        panel.axhline(expected, color="#333333", linestyle="--", linewidth=1)
        panel.text(len(q) - 0.5, expected + 0.02, f"expected Q {expected:.2f}", ha="right", va="bottom", fontsize=7)
    panel.set_xticks(positions)
    panel.set_xticklabels(list(atom_names), rotation=70, fontsize=6)
    panel.set_ylim(min(0.0, float(np.nanmin(q)) - 0.05) if np.isfinite(q).any() else 0.0, 1.05)
    panel.set_xlim(-0.6, max(len(q), 1) - 0.4)
    panel.set_ylabel("Q-score", fontsize=8)
    panel.tick_params(axis="y", labelsize=7)
    panel.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def ligand_2d(mol: Chem.Mol, atom_q: Sequence[float | None] | None = None, *, size: tuple[int, int] = (460, 340)) -> bytes:
    """2D depiction (RDKit) of ``mol`` with atoms highlighted in their Q colour and the Q written beside them.

    PNG when RDKit was built with Cairo, SVG text (UTF-8 bytes) otherwise. ``atom_q``: one value
    per atom of ``mol`` (hydrogens are removed first, so give heavy-atom values in heavy-atom order).
    """
    flat = Chem.RemoveHs(Chem.Mol(mol), sanitize=False)
    flat.RemoveAllConformers()
    rdDepictor.SetPreferCoordGen(True)
    rdDepictor.Compute2DCoords(flat)
    highlights: dict[int, tuple[float, float, float]] = {}
    if atom_q is not None:
        for atom, value in zip(flat.GetAtoms(), atom_q):
            if value is not None and np.isfinite(value):
                highlights[atom.GetIdx()] = tuple(float(c) for c in _q_colour(value)[:3])
                atom.SetProp("atomNote", f"{value:.2f}")
    cairo = hasattr(rdMolDraw2D, "MolDraw2DCairo")
    drawer = rdMolDraw2D.MolDraw2DCairo(*size) if cairo else rdMolDraw2D.MolDraw2DSVG(*size)
    options = drawer.drawOptions()
    options.annotationFontScale = 0.6
    options.highlightRadius = 0.4
    options.fillHighlights = True
    options.clearBackground = True
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer, flat, highlightAtoms=list(highlights), highlightAtomColors=highlights, highlightBonds=[], highlightBondColors={}
    )
    drawer.FinishDrawing()
    text = drawer.GetDrawingText()
    return text if isinstance(text, bytes) else text.encode()


def data_uri(image: bytes) -> str:
    """An image as a ``data:`` URI for HTML (PNG or SVG, told apart by their first bytes)."""
    mime = "image/png" if image[:4] == b"\x89PNG" else "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def _png(figure: Figure) -> bytes:
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()
