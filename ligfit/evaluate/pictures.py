"""Pictures of a ligand in its density, written without a plotting library.

A ligand picture is three orthogonal views (down x, y and z) of the map around the ligand: each
view is the maximum of the density through a slab as thick as the ligand (+1.5 Å either side),
drawn in grey with the points above a contour level tinted blue, like a mesh seen from above,
and the ligand drawn in on top, atoms coloured by their Q-score. It is written as PNG with
zlib (an 8-bit RGB image needs nothing more), and the per-atom Q-score plot is SVG text that
the HTML report embeds: neither needs matplotlib.
"""

from __future__ import annotations

import os
import struct
import zlib
from html import escape

import numpy as np
from scipy import ndimage

from ligfit import maps
from ligfit.io import atomic_path
from ligfit.maps import DensityMap

PIXEL = 0.1  # Å per pixel
MARGIN = 4.0  # Å around the ligand
SLAB = 1.5  # Å beyond the ligand along the view direction
CONTOUR_FRACTION = 0.9  # contour at this fraction of the median map value at the ligand atoms


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an (h, w, 3) uint8 RGB image as PNG (atomic)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))  # filter type 0 per scanline

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with atomic_path(path) as temporary:
        temporary.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def ligand_picture(density: DensityMap, ligand: dict, path: str | os.PathLike) -> None:
    """Three views of the density around ``ligand`` (an Evaluation ligand dict) with the model drawn in."""
    coordinates = np.asarray(ligand["coordinates"], dtype=float)
    q = np.asarray([np.nan if v is None else v for v in ligand["atom_q_scores"]], dtype=float)
    lower = coordinates.min(axis=0) - MARGIN
    upper = coordinates.max(axis=0) + MARGIN
    region = maps.box(density, (lower + upper) / 2, upper - lower)
    level = CONTOUR_FRACTION * float(np.median(density.interpolate(coordinates)))
    panels = [_view(region, coordinates, ligand["bonds"], q, axis, level) for axis in (2, 1, 0)]
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 6, 3), 255, dtype=np.uint8)
    row = []
    for panel in panels:
        padded = np.full((height, panel.shape[1], 3), 255, dtype=np.uint8)
        padded[: panel.shape[0]] = panel
        row += [padded, gap]
    write_png(path, np.concatenate(row[:-1], axis=1))


def _view(region: DensityMap, coordinates: np.ndarray, bonds: list, q: np.ndarray, axis: int, level: float) -> np.ndarray:
    """One panel: density projected along ``axis`` within the ligand's slab, with the ligand on top."""
    across = [a for a in range(3) if a != axis]
    depth = region.to_index(coordinates)[:, axis]
    lo = int(max(0, np.floor(depth.min() - SLAB / region.voxel_size[axis])))
    hi = int(min(region.shape[axis], np.ceil(depth.max() + SLAB / region.voxel_size[axis]) + 1))
    slab = np.take(region.values, np.arange(lo, hi), axis=axis)
    zoom = region.voxel_size[across] / PIXEL
    projection = ndimage.zoom(slab.max(axis=axis), zoom, order=1)  # (n_across0, n_across1) in pixels
    image = _shade(projection, level)
    # Image rows run down the second in-plane axis, columns along the first.
    image = np.transpose(image, (1, 0, 2))[::-1].copy()
    pixels = region.to_index(coordinates)[:, across] * zoom
    pixels = np.stack([image.shape[0] - 1 - pixels[:, 1], pixels[:, 0]], axis=1)  # (row, column)
    order = np.argsort(region.to_index(coordinates)[:, axis])  # far atoms first
    for i, j in bonds:
        _line(image, pixels[i], pixels[j], 2.0, (60, 60, 60))
    for atom in order:
        _disk(image, pixels[atom], 0.35 / PIXEL, q_colour(q[atom]))
    return image


def _shade(projection: np.ndarray, level: float) -> np.ndarray:
    low, high = np.percentile(projection, [5, 99.5])
    grey = np.clip((projection - low) / max(high - low, 1e-12), 0, 1)
    rgb = np.stack([1 - 0.8 * grey] * 3, axis=-1)
    above = projection >= level
    rgb[above] = rgb[above] * 0.45 + np.array([0.25, 0.45, 0.95]) * 0.55
    edge = above ^ ndimage.binary_erosion(above)
    rgb[edge] = (0.1, 0.25, 0.8)
    return (rgb * 255).astype(np.uint8)


def q_colour(value: float) -> tuple[int, int, int]:
    """Red (Q ≤ 0.2) through yellow to green (Q ≥ 0.8); grey where Q is unknown."""
    if not np.isfinite(value):
        return (150, 150, 150)
    t = float(np.clip((value - 0.2) / 0.6, 0, 1))
    return (int(255 * min(1, 2 - 2 * t)), int(200 * min(1, 2 * t)), 40)


def _disk(image: np.ndarray, centre: np.ndarray, radius: float, colour: tuple[int, int, int]) -> None:
    r0, c0 = centre
    rows = np.arange(max(0, int(r0 - radius - 1)), min(image.shape[0], int(r0 + radius + 2)))
    cols = np.arange(max(0, int(c0 - radius - 1)), min(image.shape[1], int(c0 + radius + 2)))
    if len(rows) == 0 or len(cols) == 0:
        return
    distance = np.hypot(rows[:, None] - r0, cols[None] - c0)
    window = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    window[distance <= radius] = colour
    window[(distance > radius) & (distance <= radius + 1.2)] = (30, 30, 30)


def _line(image: np.ndarray, start: np.ndarray, end: np.ndarray, width: float, colour: tuple[int, int, int]) -> None:
    steps = int(np.ceil(np.linalg.norm(end - start) * 2)) + 1
    for point in np.linspace(start, end, steps):
        r, c = np.round(point).astype(int)
        half = int(width // 2)
        image[max(0, r - half) : max(0, r + half + 1), max(0, c - half) : max(0, c + half + 1)] = colour


def q_score_svg(atom_names: list[str], q: list[float | None], expected: float, width: int = 640, height: int = 170) -> str:
    """An SVG bar chart of per-atom Q-scores with the expected Q at the map's resolution dashed."""
    n = max(1, len(atom_names))
    left, bottom, top = 34, 36, 8
    plot_h = height - bottom - top
    bar = (width - left - 4) / n

    def y(value: float) -> float:
        return top + plot_h * (1 - (np.clip(value, -0.2, 1.0) + 0.2) / 1.2)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="9">']
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 3:.1f}" text-anchor="end">{tick:.1f}</text>')
    for i, (name, value) in enumerate(zip(atom_names, q)):
        x = left + i * bar
        if value is not None and np.isfinite(value):
            r, g, b = q_colour(value)
            top_y, base = sorted((y(value), y(0.0)))
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{top_y:.1f}" width="{max(bar - 1, 1):.1f}" height="{base - top_y:.1f}" fill="rgb({r},{g},{b})"><title>{escape(name)}: Q {value:.2f}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 10}" transform="rotate(60 {x + bar / 2:.1f} {height - bottom + 10})">{escape(name)}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{width}" y1="{y(expected):.1f}" y2="{y(expected):.1f}" stroke="#333" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{width - 2}" y="{y(expected) - 3:.1f}" text-anchor="end">expected Q {expected:.2f}</text></svg>')
    return "".join(parts)
