"""Unexplained density: subtract the model's simulated density and segment what is left into blobs.

The difference map is expressed in units of its own noise (σ), estimated robustly near the
model and locally: real maps differ in local resolution and B across the box, so σ is measured
in blocks and varies smoothly over the map. Blobs are connected regions above a threshold in σ, merged ones split by a watershed,
and those buried in the protein or far from it dropped. Each blob is described by its size,
shape and height, and ranked by how well it could hold the ligand at hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gemmi
import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.segmentation import watershed

from ligfit import io, maps
from ligfit.errors import BadModelError
from ligfit.io import SIDE_CHAIN_ATOMS
from ligfit.maps import DensityMap
from ligfit.measures import atomic_numbers, ligand_cc
from ligfit.records import Blob, LigandShape, principal_spread

log = logging.getLogger(__name__)

#: Blur factors tried when matching the model's simulated density to the map (x the resolution).
_RESOLUTION_FACTORS = (0.8, 1.0, 1.2, 1.45, 1.7)
#: Edge (Å) of the blocks in which the difference map's noise is measured locally.
NOISE_BLOCK = 24.0
#: A block's σ is shrunk towards the whole map's by this many voxels' worth of the global σ
#: (a block with few near-model voxels measures its σ poorly).
NOISE_BLOCK_PRIOR = 2000
#: The local σ stays within these factors of the whole map's.
NOISE_LOCAL_RANGE = (0.5, 2.0)
#: Voxels above this many σ of their block (first pass), and their neighbours, are candidate blobs, not noise.
_NOISE_EXCLUDE_SIGMA = 3.0


@dataclass(frozen=True)
class DifferenceMap:
    """Map minus scaled model density, in units of the noise σ; ``scale``·model + ``offset`` ≈ map."""

    difference: DensityMap  # σ units (the local σ at each voxel)
    noise: float  # σ of the difference map over the whole region near the model, in the input map's units
    scale: float
    offset: float
    model_resolution: float  # resolution (Å) at which the simulated model matched the map best
    model_cc: float  # correlation of simulated model and map near the model
    heavy_atom_density: float | None  # integrated density (input map units x Å³) of one full heavy atom
    local_noise: np.ndarray | None = None  # σ at each voxel, in the input map's units (None: ``noise`` everywhere)


def difference_map(
    density_map: DensityMap,
    structure: gemmi.Structure | None,
    resolution: float,
    *,
    mask_radius: float = 6.0,
) -> DifferenceMap:
    """Subtract the model's density, scaled to the map by least squares near the model.

    Without a model the map itself is the difference map, its noise estimated over the box.
    """
    if structure is None or structure[0].count_atom_sites() == 0:
        noise = _robust_sigma(density_map.values.ravel())
        centre = float(np.median(density_map.values))
        return DifferenceMap(density_map.with_values((density_map.values - centre) / noise), noise, 0.0, centre, resolution, 0.0, None)

    coordinates = io.heavy_atoms(structure, exclude_residues=frozenset()).coordinates  # waters explain density too
    near_model = _distance_to_points(density_map, coordinates, mask_radius) < mask_radius
    if near_model.sum() < 100:
        raise BadModelError(
            "cannot subtract the model from the map: it hardly overlaps the map (fewer than 100 voxels within 6 Å of it); "
            "check that the model was fitted to this map"
        )
    target = density_map.values[near_model].astype(float)
    best = None
    for factor in _RESOLUTION_FACTORS:
        model_map = maps.simulate(structure, resolution * factor, like=density_map)
        simulated = model_map.values[near_model].astype(float)
        if simulated.std() == 0 or target.std() == 0:
            raise BadModelError(
                "cannot subtract the model from the map: the map or the model's simulated density is flat where the model is; "
                "check that the model was fitted to this map"
            )
        cc = float(np.corrcoef(simulated, target)[0, 1])
        if best is None or cc > best[0]:
            best = (cc, factor, model_map)
    cc, factor, model_map = best
    design = np.stack([model_map.values[near_model], np.ones(near_model.sum())], axis=1).astype(float)
    (scale, offset), *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = density_map.values - scale * model_map.values - offset
    noise = _robust_sigma(residual[near_model])
    if noise <= 1e-6 * float(target.std()):  # rounding noise of a map simulated from the model itself
        raise BadModelError(
            "cannot subtract the model from the map: the difference map is flat (the model explains the map exactly, "
            "e.g. a map simulated from the model without noise); nothing is left to fit a ligand into"
        )
    heavy_atom_density = float(scale * model_map.values.sum() * np.prod(density_map.voxel_size) / len(coordinates))
    local = noise * _local_noise_factor(residual, near_model, density_map.voxel_size)
    log.info(
        "difference map: model density matched at %.2f Å (CC %.3f near the model), scale %.4g, noise σ %.4g (locally %.2f–%.2f×)",
        resolution * factor,
        cc,
        scale,
        noise,
        float(local.min() / noise),
        float(local.max() / noise),
    )
    return DifferenceMap(
        density_map.with_values(residual / local),
        noise,
        float(scale),
        float(offset),
        resolution * factor,
        cc,
        heavy_atom_density,
        local.astype(np.float32),
    )


def _local_noise_factor(residual: np.ndarray, near_model: np.ndarray, voxel_size: np.ndarray) -> np.ndarray:
    """The difference map's σ at each voxel relative to the whole region's, measured in blocks.

    In each :data:`NOISE_BLOCK` block the robust σ of the near-model voxels that are not part
    of a candidate blob is taken relative to the same over the whole region, shrunk towards 1
    where the block holds few voxels, interpolated smoothly between block centres and kept
    within :data:`NOISE_LOCAL_RANGE`. A map no larger than about one block gets 1 everywhere.
    """
    block = np.maximum(1, np.round(NOISE_BLOCK / np.asarray(voxel_size, dtype=float)).astype(int))
    counts = -(-np.array(residual.shape) // block)
    if counts.max() < 2:
        return np.ones(residual.shape, dtype=np.float32)
    block_of = tuple(np.minimum(np.arange(size) // b, count - 1) for size, b, count in zip(residual.shape, block, counts))

    def block_sigmas(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sigma, n = np.full(tuple(counts), np.nan), np.zeros(tuple(counts))
        for index in np.ndindex(*counts):
            region = tuple(slice(i * b, (i + 1) * b) for i, b in zip(index, block))
            values = residual[region][mask[region]]
            n[index] = len(values)
            if len(values) >= 50:
                sigma[index] = _robust_sigma(values)
        return sigma, n

    # Two passes: σ per block, then again without the voxels of candidate blobs (above 3 local σ).
    first, _ = block_sigmas(near_model)
    first = np.where(np.isnan(first), _robust_sigma(residual[near_model]), first)
    local_first = first[np.ix_(*block_of)]
    candidate = ndimage.binary_dilation(np.abs(residual) > _NOISE_EXCLUDE_SIGMA * local_first, iterations=1)
    quiet = near_model & ~candidate
    if quiet.sum() < 100:
        return np.ones(residual.shape, dtype=np.float32)
    reference = _robust_sigma(residual[quiet])
    sigma, n = block_sigmas(quiet)
    ratio = np.where(np.isnan(sigma), 1.0, (sigma / reference) ** 2)
    variance_ratio = (n * ratio + NOISE_BLOCK_PRIOR) / (n + NOISE_BLOCK_PRIOR)
    factor = np.sqrt(_interpolate_blocks(variance_ratio, residual.shape, block))
    return np.clip(factor, *NOISE_LOCAL_RANGE).astype(np.float32)


def _interpolate_blocks(values: np.ndarray, shape: tuple[int, ...], block: np.ndarray) -> np.ndarray:
    """Per-block values interpolated linearly between block centres to every voxel (one axis at a time)."""
    result = values
    for axis, (size, b, count) in enumerate(zip(shape, block, values.shape)):
        position = np.clip((np.arange(size) + 0.5) / b - 0.5, 0, count - 1)
        lower = np.floor(position).astype(int)
        upper = np.minimum(lower + 1, count - 1)
        weights = np.zeros((size, count))
        weights[np.arange(size), lower] += 1 - (position - lower)
        weights[np.arange(size), upper] += position - lower
        result = np.moveaxis(np.tensordot(weights, result, axes=([1], [axis])), 0, axis)
    return result.astype(np.float32)


def find_blobs(
    difference: DifferenceMap,
    ligand: LigandShape,
    protein_coordinates: np.ndarray | None,
    *,
    threshold: float = 3.0,
    hysteresis: float = 0.0,
    min_heavy_atoms: float = 3.0,
    max_protein_distance: float = 6.0,
) -> list[Blob]:
    """Blobs ranked by ligand match (best first).

    A blob is a connected region above ``threshold`` − ``hysteresis`` σ that peaks above
    ``threshold`` σ (hysteresis keeps weak ligands in one piece), split where merged.
    """
    values = difference.difference.values
    labels = _hysteresis_labels(values, threshold, threshold - hysteresis)
    if labels.max() == 0:
        return []
    labels = _split_large(values, labels, ligand, difference, threshold)
    tree = cKDTree(protein_coordinates) if protein_coordinates is not None and len(protein_coordinates) else None
    voxel_volume = float(np.prod(difference.difference.voxel_size))
    blobs = []
    voxel_counts = np.bincount(labels.ravel())
    smallest = min_heavy_atoms * 2.0 / voxel_volume  # a heavy atom fills ≥ ~2 Å³ above threshold
    for label, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None or voxel_counts[label] < smallest:
            continue
        mask = labels[region] == label
        blob = _describe(difference, region, mask, ligand, tree, voxel_volume)
        if blob is None:
            continue
        if blob.estimated_heavy_atoms is not None and blob.estimated_heavy_atoms < min_heavy_atoms:
            continue
        if blob.estimated_heavy_atoms is None and blob.volume < 4 * min_heavy_atoms:
            continue
        if tree is not None and blob.protein_distance > max_protein_distance:
            continue  # far from the protein: not a bound ligand
        blobs.append(blob)
    ranked = sorted(blobs, key=lambda b: (-b.ligand_match, -b.mean * len(b.points)))
    return [_with_rank(blob, rank) for rank, blob in enumerate(ranked)]


#: A blob is docked into only when it matches the ligand at least this fraction as well as the best blob does. A weak
#: ligand (occupancy 0.5–0.6, B well above the protein's) leaves a blob of a quarter to a third of its atoms, matching
#: 0.07–0.2 where a detergent on the surface matches 0.3–0.7: at 0.3 those ligands were never docked (realistic maps).
RELATIVE_MATCH_FLOOR = 0.1


def select_blobs(blobs: list[Blob], max_blobs: int, relative_match: float = RELATIVE_MATCH_FLOOR) -> list[Blob]:
    """The blobs worth docking into: at most ``max_blobs``, each matching the ligand at least
    ``relative_match`` times as well as the best one (so noise specks do not compete); blobs
    with an ``explanation`` (unmodelled protein) are left out."""
    candidates = [blob for blob in blobs if not blob.explanation]
    if not candidates:
        return []
    floor = relative_match * candidates[0].ligand_match
    return [blob for blob in candidates if blob.ligand_match >= floor][:max_blobs]


def without_explained(difference: DensityMap, blobs: list[Blob]) -> DensityMap:
    """The difference map with the voxels of blobs explained as protein set to zero.

    Docking samples the whole difference map around a candidate blob; a loop or side chain
    marked as unmodelled protein next to it would otherwise draw the ligand in.
    """
    explained = [blob.points for blob in blobs if blob.explanation]
    if not explained:
        return difference
    values = difference.values.copy()
    values[_voxels(difference, np.concatenate(explained))] = 0.0
    return difference.with_values(values)


def _voxels(grid: DensityMap, points: np.ndarray) -> tuple[np.ndarray, ...]:
    """The index arrays of the voxels nearest ``points`` (Å) that lie in the grid (for ``values[...]``)."""
    indices = np.rint(grid.to_index(points)).astype(int)
    inside = np.all((indices >= 0) & (indices < np.array(grid.shape)), axis=1)
    return tuple(indices[inside].T)


def site_blob(
    difference: DifferenceMap, center: np.ndarray, radius: float, ligand: LigandShape, protein_coordinates: np.ndarray | None
) -> Blob:
    """A blob made of the voxels within ``radius`` Å of a user-named site (for ``--site``)."""
    grid = difference.difference
    distances = np.linalg.norm(grid.grid_points() - np.asarray(center), axis=-1)
    inside = distances <= radius
    positive = inside & (grid.values > 1.0)
    mask = positive if positive.sum() >= 8 else inside
    if mask.sum() == 0:
        raise BadModelError(f"the site {np.round(center, 2).tolist()} lies outside the map; check its coordinates")
    tree = cKDTree(protein_coordinates) if protein_coordinates is not None and len(protein_coordinates) else None
    region = tuple(slice(0, n) for n in grid.shape)
    blob = _describe(difference, region, mask, ligand, tree, float(np.prod(grid.voxel_size)), buried_limit=1.01)
    return _with_rank(blob, 0)


def _with_rank(blob: Blob, rank: int) -> Blob:
    return Blob(**{**blob.__dict__, "rank": rank})


def _describe(
    difference: DifferenceMap, region, mask: np.ndarray, ligand: LigandShape, tree, voxel_volume: float, buried_limit: float = 0.5
) -> Blob | None:
    grid = difference.difference
    offset = np.array([s.start for s in region])
    indices = np.argwhere(mask) + offset
    points = grid.to_points(indices)
    values = grid.values[tuple(indices.T)]
    weights = np.clip(values, 1e-6, None)
    centroid = np.average(points, axis=0, weights=weights)
    axes, extents = principal_spread(points, weights)

    contacts, protein_distance = 0, float("inf")
    if tree is not None:
        distances, _ = tree.query(points, distance_upper_bound=12.0)
        protein_distance = float(distances.min())
        if np.mean(distances < 1.5) > buried_limit:
            return None  # inside the protein: a model error, not a ligand
        contacts = len({j for row in tree.query_ball_point(points, 4.0) for j in row})

    estimated = None
    if difference.heavy_atom_density:
        # Integrate the positive difference density over the blob grown by ~1.5 Å to catch the tails.
        sigma = difference.noise if difference.local_noise is None else difference.local_noise
        integral = _grown_integral(grid.values, indices, int(np.ceil(1.5 / grid.voxel_size.min())), sigma) * voxel_volume
        estimated = float(integral / difference.heavy_atom_density)

    match = _ligand_match(estimated, extents, ligand)
    return Blob(
        rank=-1,
        points=points,
        values=values,
        volume=len(points) * voxel_volume,
        centroid=centroid,
        principal_axes=axes,
        extents=extents,
        peak=float(values.max()),
        mean=float(values.mean()),
        estimated_heavy_atoms=estimated,
        protein_contacts=contacts,
        protein_distance=protein_distance,
        ligand_match=match,
    )


def _ligand_match(estimated_atoms: float | None, extents: np.ndarray, ligand: LigandShape) -> float:
    """Size agreement (log ratio of heavy atoms, tolerant of partial occupancy) times shape agreement."""
    shape_error = np.abs(np.log((extents + 0.5) / (ligand.extents + 0.5)))
    shape = float(np.exp(-np.sum(shape_error**2) / (2 * 0.4**2)))
    if estimated_atoms is None:
        return shape
    ratio = max(estimated_atoms, 1e-3) / ligand.heavy_atoms
    # Partial occupancy makes blobs look smaller, and unmodelled neighbours larger, than the
    # ligand: tolerate a factor of ~2 either way.
    width = 0.6
    size = float(np.exp(-(np.log(ratio) ** 2) / (2 * width**2)))
    return size * (0.5 + 0.5 * shape)


def _hysteresis_labels(values: np.ndarray, high: float, low: float) -> np.ndarray:
    """Connected components above ``low`` that reach ``high``, numbered 1…n."""
    labels, count = ndimage.label(values > low, structure=np.ones((3, 3, 3)))
    if count == 0:
        return labels
    peaks = ndimage.maximum(values, labels, index=np.arange(1, count + 1))
    keep = np.concatenate([[0], np.cumsum(peaks > high) * (peaks > high)])
    return keep[labels]


def _split_large(values: np.ndarray, labels: np.ndarray, ligand: LigandShape, difference: DifferenceMap, threshold: float) -> np.ndarray:
    """Split components much bigger than the ligand at saddles (watershed from separated maxima)."""
    voxel = difference.difference.voxel_size
    ligand_voxels = max(ligand.heavy_atoms * 10.0 / float(np.prod(voxel)), 8)
    sizes = np.bincount(labels.ravel())
    large = [label for label in range(1, len(sizes)) if sizes[label] > 3 * ligand_voxels]
    if not large:
        return labels
    separation = max(2.0 * float(np.linalg.norm(ligand.extents)), 4.0)
    footprint = max(3, int(round(separation / voxel.min())) | 1)
    smooth = ndimage.gaussian_filter(values, 1.0 / voxel)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=footprint)) & (labels > 0)
    next_label = labels.max() + 1
    for label in large:
        component = labels == label
        markers_idx = np.argwhere(peaks & component)
        if len(markers_idx) < 2:
            continue
        markers = np.zeros(values.shape, dtype=np.int32)
        for offset, idx in enumerate(markers_idx):
            markers[tuple(idx)] = offset + 1
        markers[~component] = -1
        scaled = np.clip((smooth.max() - smooth) / (smooth.max() - threshold + 1e-9) * 60000, 0, 65535).astype(np.uint16)
        split = ndimage.watershed_ift(scaled, markers)
        for offset in range(1, len(markers_idx) + 1):
            piece = component & (split == offset)
            if piece.any():
                labels[piece] = next_label
                next_label += 1
    return labels


def _grown_integral(values: np.ndarray, indices: np.ndarray, voxels: int, sigma: float | np.ndarray) -> float:
    """Sum of the positive values (σ units) times σ over the voxels within ``voxels`` steps of the given ones.

    ``sigma`` is one σ or one per voxel (a map like ``values``); only the blob's neighbourhood is touched.
    """
    lower = np.maximum(indices.min(axis=0) - voxels, 0)
    upper = np.minimum(indices.max(axis=0) + voxels + 1, values.shape)
    region = tuple(slice(a, b) for a, b in zip(lower, upper))
    mask = np.zeros(upper - lower, dtype=bool)
    mask[tuple((indices - lower).T)] = True
    if voxels > 0:
        mask = ndimage.binary_dilation(mask, iterations=voxels)
    positive = np.clip(values[region][mask], 0, None)
    if np.ndim(sigma) == 0:
        return float(positive.sum() * sigma)
    return float((positive * sigma[region][mask]).sum())


def _robust_sigma(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (robust to blobs)."""
    values = values[values != 0] if np.count_nonzero(values) > 0.2 * values.size else values
    mad = float(np.median(np.abs(values - np.median(values))))
    return 1.4826 * mad if mad > 0 else float(values.std())


def _distance_to_points(density_map: DensityMap, points: np.ndarray, cap: float) -> np.ndarray:
    """Distance (Å) from every voxel to the nearest point, capped at ``cap``."""
    tree = cKDTree(points)
    distances, _ = tree.query(density_map.grid_points().reshape(-1, 3), distance_upper_bound=cap)
    return np.minimum(distances, cap).reshape(density_map.shape)


#: Heavy atoms per residue, for how much an unmodelled stretch of residues can hold.
ATOMS_PER_RESIDUE = 8.5
#: A blob within this distance (Å) of where unmodelled protein would attach starts at that attachment.
ATTACHMENT_DISTANCE = 1.6
#: ... from the Cβ of a residue ``ligfit.trace.loops`` built (its Cα lie 0.4–1.5 Å from the deposited ones on the realistic maps).
BUILT_ATTACHMENT_DISTANCE = 2.5
#: ... and the difference density there is at least this (σ) for a backbone continuation.
ATTACHMENT_DENSITY = 2.0
#: σ: a blob whose density runs on at this height, unbroken, to an open backbone end continues that end, however far
#: away the blob lies (a long disordered loop is weak near its ends and breaks into pieces at the threshold). On a real
#: map (EMD-21457's spike NTD, 6VYB's gaps of 12–22 residues) such pieces drew AGS, ATP and A1N in at medium confidence;
#: on the realistic benchmark (384 maps) it marks a blob in 46, gains 2 decoys and loses 1 ligand, whose loop the pocket's
#: numbering makes look too long to build (docs/benchmarks.md, "Round 22").
CONTINUATION_DENSITY = ATTACHMENT_DENSITY
#: Å: the C–N peptide bond, placing the next residue's N after an open C end (planar with the end's O and Cα).
PEPTIDE_BOND = 1.33
#: A blob within this distance (Å) of both ends of one gap in the chain fills that gap, whatever the
#: density at the guessed next-atom positions (before an open N end the guess, 1.4 Å along Cα→N, is often off it).
GAP_BOTH_ENDS_DISTANCE = 2.0
#: Compact protein density is over-counted by the blob's heavy-atom estimate (a phenylalanine ring cut
#: back to Cβ: 8.8 for 6 atoms; four-residue loops 25-48 for 38, on the realistic design set), so the
#: unmodelled part may hold this many times its atoms.
UNMODELLED_ESTIMATE_SLACK = 1.3
#: A blob that fills a gap and could hold more than the loop is split, the loop taking its smallest
#: plausible share (capacity / slack); a piece left beyond it is a ligand candidate of its own when it
#: holds at least this many heavy atoms, this fraction of the ligand's, and matches the ligand's shape
#: this well (realistic design set, seeds 3 and 5: ligand pieces 19-36 atoms, match 0.66-0.91; loop
#: pieces at most 12.8 atoms, and 0.31 match at that size; at 12 atoms a 12.6-atom piece, 40% loop,
#: drew a wrong pose called high confidence on seed 7).
LIGAND_PIECE_MIN_ATOMS, LIGAND_PIECE_MIN_FRACTION, LIGAND_PIECE_MIN_MATCH = 15.0, 0.5, 0.5


@dataclass(frozen=True)
class Attachment:
    """Where the model stops but protein may go on: an open backbone end or a side chain cut short."""

    point: np.ndarray  # Å: the next atom's likely position (backbone) or the Cβ (side chain)
    what: str  # e.g. "chain A after residue 57", "the side chain of A123"
    capacity: float  # heavy atoms the unmodelled part can hold (inf at a chain terminus)
    backbone: bool
    gap: str | None = None  # the chain gap this end opens onto (both ends of one gap share it; their capacity is one)
    built: bool = False  # the side chain of a residue ``ligfit.trace.loops`` built (its Cβ less sure: a longer reach)

    @property
    def reach(self) -> float:
        """Å: a blob this close to ``point`` starts there."""
        return BUILT_ATTACHMENT_DISTANCE if self.built else ATTACHMENT_DISTANCE


def attachments(structure: gemmi.Structure) -> list[Attachment]:
    """Open backbone ends and truncated side chains of the model's amino acids."""
    found = []
    for chain in structure[0]:
        residues = [r for r in chain if r.name in SIDE_CHAIN_ATOMS]
        for index, residue in enumerate(residues):
            atoms = {atom.name: np.array(atom.pos.tolist()) for atom in residue if not atom.is_hydrogen()}
            side = sum(name not in ("N", "CA", "C", "O", "OXT", "CB") for name in atoms)
            # a built residue's blob holds its side chain and what its backbone (~0.7 Å off) leaves: counted as the
            # largest side chain whatever its type (with exact sizes, 8D39's decoy at 3 Å got a ligand called high)
            built = residue.flag == io.BUILT_RESIDUE_FLAG
            missing = SIDE_CHAIN_ATOMS["UNK" if built else residue.name] - side
            label = f"{chain.name}{residue.seqid.num}"
            if missing >= 2 and "CB" in atoms:
                why = (
                    "(cut short in the model)"
                    if not built
                    else "(ligfit built the loop" + (", its type unknown)" if residue.name == "UNK" else ")")
                )
                found.append(Attachment(atoms["CB"], f"the side chain of {residue.name} {label} {why}", missing + 1.0, False, built=built))
            if not {"N", "CA", "C"} <= atoms.keys():
                continue
            after = residues[index + 1] if index + 1 < len(residues) else None
            if not _peptide_bonded(residue, after):
                gap = (after.seqid.num - residue.seqid.num - 1) if after is not None else None
                key = None if after is None else f"{chain.name}:{residue.seqid.num}-{after.seqid.num}"
                following = _next_nitrogen(atoms["C"], atoms["CA"], atoms.get("O"))
                found.append(_backbone_end(following, f"chain {chain.name} after residue {residue.seqid.num}", gap, key))
            before = residues[index - 1] if index > 0 else None
            if not _peptide_bonded(before, residue):
                gap = (residue.seqid.num - before.seqid.num - 1) if before is not None else None
                key = None if before is None else f"{chain.name}:{before.seqid.num}-{residue.seqid.num}"
                previous = _beyond(atoms["N"], atoms["CA"])
                found.append(_backbone_end(previous, f"chain {chain.name} before residue {residue.seqid.num}", gap, key))
    return found


def _peptide_bonded(first: gemmi.Residue | None, second: gemmi.Residue | None) -> bool:
    if first is None or second is None:
        return False
    carbon, nitrogen = first.find_atom("C", "*"), second.find_atom("N", "*")
    return carbon is not None and nitrogen is not None and carbon.pos.dist(nitrogen.pos) < 2.0


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _beyond(end: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """1.4 Å past ``end`` along Cα→end: a rough place for the next atom (1.3–1.5 Å from where it really is)."""
    return end + 1.4 * _unit(end - alpha)


def _next_nitrogen(carbon: np.ndarray, alpha: np.ndarray, oxygen: np.ndarray | None) -> np.ndarray:
    """Where the next residue's N would be: in the peptide plane, opposite O and Cα (≤ 0.15 Å off on 5NI1); without O, the rough place.

    The previous residue's C, before an open N end, has no such estimate: where it lies turns with φ.
    """
    if oxygen is None:
        return _beyond(carbon, alpha)
    return carbon + PEPTIDE_BOND * _unit(-(_unit(oxygen - carbon) + _unit(alpha - carbon)))


def _backbone_end(point: np.ndarray, what: str, gap: int | None, key: str | None) -> Attachment:
    capacity = float("inf") if gap is None or gap <= 0 else gap * ATOMS_PER_RESIDUE + 4.0
    return Attachment(point, what, capacity, True, key if gap is not None and gap > 0 else None)


def explain_as_protein(
    blobs: list[Blob],
    structure: gemmi.Structure | None,
    difference: DifferenceMap,
    ligand: LigandShape | None = None,
    protein_coordinates: np.ndarray | None = None,
) -> list[Blob]:
    """Mark blobs that start where the model stops and are no bigger than the protein missing there.

    A blob that continues an open backbone end (density at the next atom's place), reaches both
    ends of one gap in the chain, continues a side chain cut back to Cβ, or whose density runs on
    unbroken above CONTINUATION_DENSITY to an open backbone end, and holds no more heavy
    atoms than the missing residues or side chain (a gap counted once, with the estimate's slack),
    is most likely unmodelled protein, not a ligand: its ``explanation`` says so. A blob that fills
    a gap in the chain and may hold more than the loop is split, given the ``ligand``: the part
    nearest the gap's ends along the density, as big as the loop can be at the least, is marked,
    and a piece beyond it that could be the ligand (size and shape) becomes a blob of its own (a
    ligand touching the unmodelled loop); failing that, a blob bigger than the loop can be is split
    at the loop's full size. Blobs come back ranked again.
    """
    if structure is None or not blobs:
        return blobs
    sites = attachments(structure)
    if not sites:
        return blobs
    points = np.array([site.point for site in sites])
    heights = difference.difference.interpolate(points)
    tree = cKDTree(protein_coordinates) if protein_coordinates is not None and len(protein_coordinates) else None
    continuations = _Continuations.of(difference.difference, [site for site in sites if site.backbone])
    marked = []
    reach = max(ATTACHMENT_DISTANCE, GAP_BOTH_ENDS_DISTANCE, *(site.reach for site in sites))
    for blob in blobs:
        distance, _ = cKDTree(blob.points).query(points, distance_upper_bound=reach + 1e-6)  # per site, inf beyond
        ends_reached: dict[str, int] = {}
        for site, gap in zip(sites, distance):
            if site.gap is not None and gap <= GAP_BOTH_ENDS_DISTANCE:
                ends_reached[site.gap] = ends_reached.get(site.gap, 0) + 1
        touching = [
            site
            for site, gap, height in zip(sites, distance, heights)
            if (gap <= site.reach and (not site.backbone or height >= ATTACHMENT_DENSITY)) or ends_reached.get(site.gap, 0) >= 2
        ]
        capacity = _capacity(touching)
        size = blob.estimated_heavy_atoms if blob.estimated_heavy_atoms is not None else blob.volume / 10.0
        what = "; ".join(sorted({site.what for site in touching}))
        filled_gaps = [site for site in touching if site.gap is not None and ends_reached.get(site.gap, 0) >= 2]
        if ligand is not None and filled_gaps and blob.estimated_heavy_atoms:
            ends = np.array([site.point for site in filled_gaps])
            missing = sum({site.gap: site.capacity for site in filled_gaps}.values())
            pieces = None
            if size > missing / UNMODELLED_ESTIMATE_SLACK:  # may hold more than the loop: look for a ligand beyond it
                pieces = _split_off_gap(blob, ends, missing / UNMODELLED_ESTIMATE_SLACK, difference, ligand, tree)
                pieces = _with_ligand_piece(pieces, ligand, f"unmodelled protein? it fills {what}")
            if pieces is None and size > capacity * UNMODELLED_ESTIMATE_SLACK:
                pieces = _split_off_gap(blob, ends, missing, difference, ligand, tree)
                if pieces is not None:
                    protein_part, rest = pieces
                    pieces = [Blob(**{**protein_part.__dict__, "explanation": f"unmodelled protein? it fills {what}"}), *rest]
            if pieces is not None:
                marked.extend(pieces)
                continue
        if touching and size <= capacity * UNMODELLED_ESTIMATE_SLACK:
            marked.append(Blob(**{**blob.__dict__, "explanation": f"unmodelled protein? it continues {what}"}))
            continue
        running = continuations.reached_by(blob)
        if running and size <= _capacity(running) * UNMODELLED_ESTIMATE_SLACK:
            ends = "; ".join(sorted({site.what for site in running}))
            explanation = f"unmodelled protein? its density runs on (above {CONTINUATION_DENSITY:g} σ) to {ends}"
            marked.append(Blob(**{**blob.__dict__, "explanation": explanation}))
            continue
        marked.append(blob)
    ranked = sorted(marked, key=lambda b: (-b.ligand_match, -b.mean * len(b.points)))
    return [_with_rank(blob, rank) for rank, blob in enumerate(ranked)]


def _capacity(sites: list[Attachment]) -> float:
    """Heavy atoms the protein missing at ``sites`` can hold (both ends of one gap counted once)."""
    return sum({site.gap or site.what: site.capacity for site in sites}.values())


@dataclass(frozen=True)
class _Continuations:
    """The difference map's regions above CONTINUATION_DENSITY, and which of them start at each open backbone end."""

    regions: np.ndarray  # region label per voxel (0: below the height)
    grid: DensityMap
    starts: tuple[tuple[Attachment, frozenset[int]], ...]  # each end with the regions within its reach

    @classmethod
    def of(cls, difference: DensityMap, ends: list[Attachment]) -> _Continuations:
        regions = ndimage.label(difference.values >= CONTINUATION_DENSITY)[0]
        starts = []
        for end in ends:
            labels = frozenset(int(label) for label in _labels_near(regions, difference, end.point, end.reach)) - {0}
            if labels:
                starts.append((end, labels))
        return cls(regions, difference, tuple(starts))

    def reached_by(self, blob: Blob) -> list[Attachment]:
        """The open ends whose region holds the blob."""
        if not self.starts:
            return []
        labels = set(self.regions[_voxels(self.grid, blob.points)].tolist()) - {0}
        return [end for end, starts in self.starts if starts & labels]


def _labels_near(labels: np.ndarray, grid: DensityMap, point: np.ndarray, radius: float) -> np.ndarray:
    """The labels of the voxels within ``radius`` Å of ``point``."""
    centre = grid.to_index(point[None])[0]
    span = np.ceil(radius / np.asarray(grid.voxel_size)).astype(int)
    low = np.maximum(np.floor(centre).astype(int) - span, 0)
    high = np.minimum(np.ceil(centre).astype(int) + span + 1, np.array(grid.shape))
    if np.any(high <= low):
        return np.zeros(0, dtype=labels.dtype)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    index = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij"), axis=-1).reshape(-1, 3)
    near = np.linalg.norm(grid.to_points(index) - point, axis=1) <= radius
    return labels[box].reshape(-1)[near]


#: Å: unexplained blobs whose voxels come this close may be pieces of one weakly bound ligand's density
#: (partial occupancy and high B break it at the threshold; see :func:`merge_fragments`).
FRAGMENT_GAP = 4.5


def merge_fragments(
    blobs: list[Blob],
    difference: DifferenceMap,
    ligand: LigandShape,
    protein_coordinates: np.ndarray | None = None,
    gap: float = FRAGMENT_GAP,
) -> list[Blob]:
    """Blobs with each cluster of nearby unexplained pieces replaced by one blob, where that matches the ligand better.

    A weak ligand's density falls apart at the threshold into pieces of a few atoms each, none of
    which matches the ligand's size, so none was docked into. Unexplained blobs whose voxels lie within
    ``gap`` Å of each other form a cluster; the cluster becomes one blob when its ``ligand_match``
    beats that of its best piece. Blobs marked as unmodelled protein never join. Blobs come back ranked again.
    """
    pieces = [blob for blob in blobs if not blob.explanation]
    if len(pieces) < 2:
        return blobs
    trees = [cKDTree(blob.points) for blob in pieces]
    centroids = np.array([blob.centroid for blob in pieces])
    radii = np.array([np.linalg.norm(blob.points - blob.centroid, axis=1).max() for blob in pieces])
    apart = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    near = np.zeros((len(pieces), len(pieces)), dtype=bool)
    for i, j in np.argwhere(np.triu(apart <= radii[:, None] + radii[None] + gap, k=1)):  # pairs whose voxels may come that close
        near[i, j] = near[j, i] = trees[i].sparse_distance_matrix(trees[j], gap).nnz > 0
    count, cluster = connected_components(csr_matrix(near), directed=False)
    if count == len(pieces):
        return blobs
    grid = difference.difference
    tree = cKDTree(protein_coordinates) if protein_coordinates is not None and len(protein_coordinates) else None
    kept = [blob for blob in blobs if blob.explanation]
    for label in range(count):
        members = [piece for piece, c in zip(pieces, cluster) if c == label]
        best = max(members, key=lambda b: b.ligand_match)
        merged = None
        if len(members) > 1:
            _, lower, mask = _voxel_box(grid, np.concatenate([b.points for b in members]))
            region = tuple(slice(int(a), int(a + n)) for a, n in zip(lower, mask.shape))
            merged = _describe(difference, region, mask, ligand, tree, float(np.prod(grid.voxel_size)))
        if merged is not None and merged.ligand_match > best.ligand_match:
            kept.append(merged)
        else:
            kept.extend(members)
    ranked = sorted(kept, key=lambda b: (-b.ligand_match, -b.mean * len(b.points)))
    return [_with_rank(blob, rank) for rank, blob in enumerate(ranked)]


#: A blob holding at least this many times the ligand's heavy atoms may be the ligand merged with unexplained
#: neighbours (untraced protein beside it in a de novo build); see :func:`carve_ligand`.
CARVE_SIZE_RATIO = 1.6
#: Ligands smaller than this are not carved out: a piece of protein density the size of two or three side
#: chains matches them by chance (held-out 7EBG, 14 atoms: carved protein outranked the ligand, 0.36 → 14.8 Å).
CARVE_MIN_LIGAND_ATOMS = 20
#: Å: :func:`carve_ligand` cuts a blob into watershed basins of the difference map smoothed by this much ...
CARVE_SMOOTHING = 0.5
#: ... whose maxima lie at least this far apart (EMD-3488: a heme falls into 3 basins, the helix beside it into 5).
CARVE_SEPARATION = 4.0


def carve_ligand(
    blobs: list[Blob], difference: DifferenceMap, ligand: LigandShape, protein_coordinates: np.ndarray | None = None
) -> list[Blob]:
    """Blobs with each one much bigger than the ligand replaced by its ligand-like part and the rest, where that part matches better.

    A ligand touching unexplained protein (residues a de novo trace missed) forms one blob with it,
    too big to match the ligand, so it was never docked into. Such a blob (at least
    ``CARVE_SIZE_RATIO`` times the ligand's heavy atoms, not marked as protein) is cut into small
    watershed basins; from the densest basin, neighbouring basins are added one at a time while the
    ligand match rises. The best region found, when it matches the ligand better than the
    whole blob, becomes a blob, and the rest's connected pieces blobs of their own. Ligands under
    ``CARVE_MIN_LIGAND_ATOMS`` are not carved for. Blobs come back ranked again.
    """
    if ligand.heavy_atoms < CARVE_MIN_LIGAND_ATOMS:
        return blobs
    tree = cKDTree(protein_coordinates) if protein_coordinates is not None and len(protein_coordinates) else None
    out: list[Blob] = []
    changed = False
    for blob in blobs:
        size = blob.estimated_heavy_atoms
        pieces = None
        if not blob.explanation and size is not None and size >= CARVE_SIZE_RATIO * ligand.heavy_atoms:
            pieces = _carve(blob, difference, ligand, tree)
        changed |= pieces is not None
        out.extend(pieces if pieces is not None else [blob])
    if not changed:
        return blobs
    ranked = sorted(out, key=lambda b: (-b.ligand_match, -b.mean * len(b.points)))
    return [_with_rank(blob, rank) for rank, blob in enumerate(ranked)]


def _carve(blob: Blob, difference: DifferenceMap, ligand: LigandShape, tree: cKDTree | None) -> list[Blob] | None:
    """The ligand-like part of a big blob and the pieces left beside it (:func:`carve_ligand`), or None."""
    grid = difference.difference
    indices, lower, inside = _voxel_box(grid, blob.points)
    pad = 2
    start = np.maximum(lower - pad, 0)
    stop = np.minimum(lower + np.array(inside.shape) + pad, grid.shape)
    region = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    mask = np.zeros(stop - start, dtype=bool)
    mask[tuple((indices - start).T)] = True
    values = grid.values[region]
    smooth = ndimage.gaussian_filter(values, CARVE_SMOOTHING / grid.voxel_size)
    footprint = max(3, int(round(CARVE_SEPARATION / float(grid.voxel_size.min()))) | 1)
    maxima = np.argwhere((smooth == ndimage.maximum_filter(smooth, size=footprint)) & mask)
    if len(maxima) < 2:
        return None
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(maxima.T)] = np.arange(1, len(maxima) + 1)
    basins = watershed(-smooth, markers, mask=mask, connectivity=3)  # flooded downhill from each maximum, 26-connected
    count = len(maxima)

    weight = np.clip(values, 0, None) * mask
    basin_weight = ndimage.sum(weight, basins, index=np.arange(1, count + 1))
    atoms_per_weight = float(blob.estimated_heavy_atoms) / max(float(weight.sum()), 1e-9)
    neighbours = _touching_labels(basins, count)
    voxels = np.argwhere(mask)  # grouped by basin in one sort, each basin's voxels in scan order
    labels = basins[tuple(voxels.T)]
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(1, count + 2))
    voxel_points = [grid.to_points(voxels[order[a:b]] + start) for a, b in zip(bounds[:-1], bounds[1:])]
    voxel_weights = [weight[tuple(voxels[order[a:b]].T)] for a, b in zip(bounds[:-1], bounds[1:])]

    def match(members: frozenset[int]) -> float:
        points = np.concatenate([voxel_points[m] for m in members])
        weights = np.concatenate([voxel_weights[m] for m in members]) + 1e-6
        atoms = atoms_per_weight * float(sum(basin_weight[m] for m in members))
        return _ligand_match(atoms, principal_spread(points, weights)[1], ligand)

    # grown from the densest basin (growing from every basin and keeping the best match found carved
    # half-heme, half-helix regions on EMD-3488: the best of many tries matches by chance)
    members = frozenset([int(np.argmax(basin_weight))])
    current = match(members)
    while True:
        scored = [(match(members | {n}), n) for n in {n for m in members for n in neighbours[m]} - members]
        if not scored or max(scored)[0] <= current:
            break
        current, added = max(scored)
        members = members | {added}
    if len(members) == count:
        return None
    carved_mask = np.isin(basins, [m + 1 for m in members])
    voxel_volume = float(np.prod(grid.voxel_size))
    carved = _describe(difference, region, carved_mask, ligand, tree, voxel_volume)
    if carved is None or carved.ligand_match <= blob.ligand_match:
        return None
    carved = Blob(**{**carved.__dict__, "carved": True})
    rest, pieces = ndimage.label(mask & ~carved_mask, structure=ndimage.generate_binary_structure(3, 3))
    left = [_describe(difference, region, rest == label, ligand, tree, voxel_volume) for label in range(1, pieces + 1)]
    return [carved, *(piece for piece in left if piece is not None and (piece.estimated_heavy_atoms or 0.0) >= 3.0)]


def _touching_labels(labels: np.ndarray, count: int) -> list[set[int]]:
    """Per label 1…``count`` (indexed from 0): the labels whose voxels touch it (26-connectivity), indexed from 0."""
    touching: list[set[int]] = [set() for _ in range(count)]
    for offset in np.argwhere(np.ones((3, 3, 3), dtype=bool)) - 1:
        if tuple(offset) <= (0, 0, 0):
            continue  # each direction once
        here = tuple(slice(max(-o, 0), labels.shape[i] - max(o, 0)) for i, o in enumerate(offset))
        there = tuple(slice(max(o, 0), labels.shape[i] - max(-o, 0)) for i, o in enumerate(offset))
        first, second = labels[here], labels[there]
        pairs = (first > 0) & (second > 0) & (first != second)
        for a, b in np.unique(np.stack([first[pairs], second[pairs]], axis=1), axis=0).tolist():
            touching[a - 1].add(b - 1)
            touching[b - 1].add(a - 1)
    return touching


def _with_ligand_piece(pieces: tuple[Blob, list[Blob]] | None, ligand: LigandShape, explanation: str) -> list[Blob] | None:
    """The split's pieces when one beyond the loop could be the ligand (the rest marked with ``explanation``), else None."""
    if pieces is None:
        return None
    protein_part, rest = pieces
    least = max(LIGAND_PIECE_MIN_ATOMS, LIGAND_PIECE_MIN_FRACTION * ligand.heavy_atoms)
    candidates = [p for p in rest if (p.estimated_heavy_atoms or 0.0) >= least and p.ligand_match >= LIGAND_PIECE_MIN_MATCH]
    if not candidates:
        return None
    loop = [Blob(**{**p.__dict__, "explanation": explanation}) for p in [protein_part, *rest] if all(p is not c for c in candidates)]
    return loop + candidates


def _voxel_box(grid: DensityMap, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points' voxel indices, the lower corner of the box around them, and a mask of them in that box."""
    indices = np.rint(grid.to_index(points)).astype(int)
    lower = indices.min(axis=0)
    inside = np.zeros(indices.max(axis=0) - lower + 1, dtype=bool)
    inside[tuple((indices - lower).T)] = True
    return indices, lower, inside


def _split_off_gap(
    blob: Blob, ends: np.ndarray, missing_atoms: float, difference: DifferenceMap, ligand: LigandShape, tree: cKDTree | None
) -> tuple[Blob, list[Blob]] | None:
    """The blob's voxels nearest the gap's ``ends`` along the density, holding ``missing_atoms``, and the blobs left beyond them.

    Voxels are taken in order of their path length through the blob from the ends (geodesic
    dilation) until they hold the missing residues' share of the blob's density; the remainder's
    connected pieces of at least three heavy atoms are described as blobs. None when nothing
    of that size is left.
    """
    grid = difference.difference
    indices, lower, inside = _voxel_box(grid, blob.points)
    box_shape = inside.shape
    weight = np.zeros(box_shape)
    weight[tuple((indices - lower).T)] = np.clip(blob.values, 0, None)
    share = min(missing_atoms / float(blob.estimated_heavy_atoms), 1.0) * weight.sum()

    _, nearest = cKDTree(indices).query(np.rint(grid.to_index(ends)).astype(int))
    reached = np.zeros(box_shape, dtype=bool)
    reached[tuple((indices[nearest] - lower).T)] = True
    structure = ndimage.generate_binary_structure(3, 3)
    while weight[reached].sum() < share:
        grown = ndimage.binary_dilation(reached, structure=structure) & inside
        if grown.sum() == reached.sum():
            break
        reached = grown
    pieces, count = ndimage.label(inside & ~reached, structure=structure)
    if count == 0:
        return None
    voxel_volume = float(np.prod(grid.voxel_size))
    region = tuple(slice(a, a + n) for a, n in zip(lower, box_shape))
    rest = []
    for label in range(1, count + 1):
        piece = _describe(difference, region, pieces == label, ligand, tree, voxel_volume)
        if piece is not None and (piece.estimated_heavy_atoms or 0.0) >= 3.0:
            rest.append(piece)
    protein_part = _describe(difference, region, reached, ligand, tree, voxel_volume, buried_limit=1.01)
    if not rest or protein_part is None:
        return None
    return protein_part, rest


# --------------------------------------------------------------------------- rival explanations of a blob (issue 17)

#: Å: a blob voxel this close to an atom of a traced fragment left out of the subtracted model is that fragment's density ...
FREED_DISTANCE = 2.0
#: ... and a blob with at least this fraction of its voxels so is freed fragment density (see :func:`freed_fraction`).
FREED_FRACTION = 0.5


def freed_fraction(blobs: list[Blob], fragment_coordinates: np.ndarray, distance: float = FREED_DISTANCE) -> np.ndarray:
    """Per blob: the fraction of its voxels within ``distance`` Å of a left-out fragment's atom (``fragment_coordinates``, (n, 3)).

    A de novo build leaves uncertain traced fragments out of the model it subtracts
    (``ligfit.trace.certainty``); their density comes back as blobs, most of them true protein.
    """
    if not blobs or len(fragment_coordinates) == 0:
        return np.zeros(len(blobs))
    tree = cKDTree(np.asarray(fragment_coordinates, dtype=float))
    return np.array([float(np.mean(tree.query(blob.points, distance_upper_bound=distance)[0] <= distance)) for blob in blobs])


def select_blobs_beyond_freed(
    blobs: list[Blob], freed: np.ndarray, max_blobs: int, freed_fraction_limit: float = FREED_FRACTION
) -> list[Blob]:
    """:func:`select_blobs`, plus the best ``max_blobs`` blobs that are not freed fragment density (``freed`` per blob, 0–1).

    Freed protein looks like a small ligand (on a held-out pocket six blobs of 12–19 atoms outranked the
    ligand's own); docking reaches past them to the blobs no left-out fragment runs through, while the freed
    ones are docked too (a wrong fragment may run through the ligand) and decided by :func:`rival_fit`.
    Returned in rank order.
    """
    chosen = select_blobs(blobs, max_blobs)
    clean = select_blobs([blob for blob, fraction in zip(blobs, freed) if fraction < freed_fraction_limit], max_blobs)
    ranks = {blob.rank for blob in chosen}
    return sorted(chosen + [blob for blob in clean if blob.rank not in ranks], key=lambda blob: blob.rank)


def rival_fit(
    density: DensityMap,
    first_coordinates: np.ndarray,
    first_elements,
    second_coordinates: np.ndarray,
    second_elements,
    resolution: float,
) -> tuple[float, float]:
    """How well each of two rival explanations of the same density fits it: their correlations over one mask.

    The mask holds the voxels of ``density`` within max(1.5 Å, resolution/2) of an atom of either
    (a ligand pose and the traced residues it would displace); each is scored as ``ligand_cc`` scores
    a ligand, but with its atoms weighed by atomic number, as when this contest was set on issue 17's de novo builds
    (not yet measured with electron scattering; docs/benchmarks.md, "Round 37").
    Density only one of them covers counts against the other.
    """
    first = np.asarray(first_coordinates, dtype=float).reshape(-1, 3)
    second = np.asarray(second_coordinates, dtype=float).reshape(-1, 3)
    if len(first) == 0 or len(second) == 0:
        return (0.0 if len(first) == 0 else 1.0), (0.0 if len(second) == 0 else 1.0)
    both = np.concatenate([first, second])
    first_elements, second_elements = [str(e) for e in first_elements], [str(e) for e in second_elements]
    return (
        ligand_cc(density, first, first_elements, resolution, mask_coordinates=both, weights=atomic_numbers(first_elements)),
        ligand_cc(density, second, second_elements, resolution, mask_coordinates=both, weights=atomic_numbers(second_elements)),
    )
