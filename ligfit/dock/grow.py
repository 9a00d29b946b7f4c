"""Anchor and grow: place a rigid fragment exhaustively, then build the rest torsion by torsion.

The classical incremental-construction search (as in DOCK's anchor-and-grow and density-guided
ligand fitting): the ligand is cut at its rotatable bonds into rigid fragments; a large
fragment (the anchor) is placed by scoring every pairing of sampled rotations with points of
the blob, the best placements are polished, and the remaining fragments are added one
rotatable bond at a time, each bond's angle scanned and the best partial poses kept (a beam).
Only atoms whose positions are already fixed are scored at each step.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from rdkit import Chem
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation

from ligfit.dock.options import DockingOptions
from ligfit.dock.search import SHARP, PoseBatch, Site, clash_limits, diverse_best, fit_loss, moving_side, optimise
from ligfit.ligand import Ligand


def rigid_fragments(ligand: Ligand) -> np.ndarray:
    """Fragment label of every atom after cutting the rotatable bonds (hydrogens follow their atom)."""
    mol = ligand.mol
    cut = {tuple(sorted(bond)) for bond in ligand.rotatable_bonds}
    rows, cols = [], []
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if tuple(sorted((a, b))) not in cut:
            rows += [a, b]
            cols += [b, a]
    n = mol.GetNumAtoms()
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def grow_poses(
    ligand: Ligand, site: Site, points: np.ndarray, options: DockingOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Complete poses (m, n_atoms, 3) grown from the best anchor placements, and their losses."""
    if not ligand.rotatable_bonds:
        return np.zeros((0, ligand.mol.GetNumAtoms(), 3)), np.zeros(0)
    heavy = ligand.heavy_atom_count
    labels = rigid_fragments(ligand)
    heavy_labels = labels[:heavy]
    sizes = np.bincount(heavy_labels)
    anchors = [f for f in np.argsort(-sizes) if sizes[f] >= max(3, 0.6 * sizes.max())][: options.anchors]
    template = ligand.conformer_coordinates()[0]
    limits = clash_limits(ligand.elements[:heavy], options, site.device)
    distances = Chem.GetDistanceMatrix(ligand.mol)
    flexible = len(ligand.rotatable_bonds) >= options.flexible_rotatable

    all_poses, all_losses = [], []
    for anchor in anchors:
        anchor_atoms = np.flatnonzero(heavy_labels == anchor)
        placements = _place_anchor(template[anchor_atoms], limits[:, anchor_atoms], site, points, options, rng, flexible)
        if len(placements) == 0:
            continue
        starts = np.array([_superpose_onto(template, anchor_atoms, placed) for placed in placements])
        beam_width = round(options.flexible_beam_scale * options.beam_width) if flexible else options.beam_width
        poses, losses = _grow(ligand, starts, anchor, labels, limits, distances, site, options, beam_width)
        all_poses.append(poses)
        all_losses.append(losses)
    if not all_poses:
        return np.zeros((0, ligand.mol.GetNumAtoms(), 3)), np.zeros(0)
    return np.concatenate(all_poses), np.concatenate(all_losses)


def _place_anchor(
    fragment: np.ndarray,
    limits: torch.Tensor,
    site: Site,
    points: np.ndarray,
    options: DockingOptions,
    rng: np.random.Generator,
    flexible: bool = False,
) -> np.ndarray:
    """The best distinct placements (k, atoms, 3) of a rigid fragment among rotations × blob points.

    12 raw placements per one kept are polished: the best overall, or for a ``flexible`` ligand the best few
    rotations at every blob point (the best overall crowd into the strongest density, which in a CoA- or
    FAD-sized blob is the phosphates, whatever the fragment).
    """
    scale = options.flexible_anchor_scale if flexible else 1
    count, spacing = scale * options.anchor_poses, options.flexible_anchor_spacing if flexible else 1.0
    local = fragment - fragment.mean(0)
    rotation_count = scale * options.anchor_rotations
    rotations = Rotation.random(rotation_count, random_state=int(rng.integers(2**31))).as_matrix()
    rotated = np.einsum("rij,aj->rai", rotations, local)  # (R, A, 3)
    if len(points) > 250:
        points = points[rng.choice(len(points), 250, replace=False)]
    scores = []
    with torch.no_grad():
        for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 25)):
            xyz = rotated[None, :, :, :] + points[chunk, None, None, :]  # (P, R, A, 3)
            loss = fit_loss(site.tensor(xyz.reshape(-1, *local.shape)), site, limits, SHARP, options)
            scores.append(loss.cpu().numpy().reshape(len(chunk), len(rotations)))
    loss = np.concatenate(scores)  # (P, R)
    if flexible:
        per_point = max(1, 12 * count // len(points))
        rotation_index = np.argsort(loss, axis=1)[:, :per_point].ravel()
        point_index = np.repeat(np.arange(len(points)), per_point)
    else:
        best = np.argsort(loss.ravel())[: 12 * count]
        point_index, rotation_index = np.unravel_index(best, loss.shape)
    candidates = rotated[rotation_index] + points[point_index][:, None, :]

    batch = PoseBatch.from_poses(candidates, len(local), np.zeros(len(candidates), dtype=int), site.device)
    polished_loss = optimise(batch, site, None, limits, SHARP, 40, options)
    polished = batch.current()
    keep = diverse_best(polished, polished_loss, count, min_rmsd=spacing)
    return polished[keep]


def _superpose_onto(template: np.ndarray, atoms: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """The whole template moved rigidly so that its ``atoms`` best match ``placed`` (Kabsch)."""
    source = template[atoms]
    source_centre, target_centre = source.mean(0), placed.mean(0)
    u, _, vt = np.linalg.svd((source - source_centre).T @ (placed - target_centre))
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    return (template - source_centre) @ rotation + target_centre


def _growth_order(ligand: Ligand, labels: np.ndarray, anchor: int) -> list[tuple[int, int]]:
    """Rotatable bonds (placed atom, new atom) in breadth-first order away from the anchor fragment."""
    bonds = [tuple(b) for b in ligand.rotatable_bonds]
    placed = {anchor}
    order: list[tuple[int, int]] = []
    queue = deque([anchor])
    while queue:
        fragment = queue.popleft()
        for a, b in bonds:
            for near, far in ((a, b), (b, a)):
                if labels[near] == fragment and labels[far] not in placed:
                    placed.add(labels[far])
                    order.append((near, far))
                    queue.append(labels[far])
    return order


def _grow(
    ligand: Ligand,
    starts: np.ndarray,
    anchor: int,
    labels: np.ndarray,
    limits: torch.Tensor,
    distances: np.ndarray,
    site: Site,
    options: DockingOptions,
    beam_width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Beam search over torsion angles, one rotatable bond at a time, per anchor placement, ``beam_width`` poses each."""
    heavy = ligand.heavy_atom_count
    angles = np.deg2rad(np.arange(0.0, 360.0, options.torsion_step_degrees))
    beams = starts[:, None]  # (placements, beam, atoms, 3)
    scores = np.zeros(beams.shape[:2])
    is_heavy = np.arange(len(labels)) < heavy
    # An atom counts once its position is fixed: a fragment's atoms, and the first atom across
    # each rotatable bond leaving it (it sits on that bond's axis).
    scored = _fixed_by(labels == anchor, labels, ligand.rotatable_bonds) & is_heavy
    for a, b in _growth_order(ligand, labels, anchor):
        moving = moving_side(ligand.mol, a, b)
        fixed_now = _fixed_by(labels == labels[b], labels, ligand.rotatable_bonds) & is_heavy
        new = np.flatnonzero(fixed_now & ~scored)
        if len(new) == 0:
            continue
        old = np.flatnonzero(scored)
        # Only the atoms scored are turned for every angle; the poses kept are turned whole afterwards (the same numbers:
        # for a flexible ligand's wide beam, turning every atom of every candidate took most of the search).
        new_xyz = _rotate(beams, a, b, moving, angles, new)  # (placements, beam, angles, new atoms, 3)
        shape = new_xyz.shape[:3]
        with torch.no_grad():
            loss = fit_loss(site.tensor(new_xyz.reshape(-1, len(new), 3)), site, limits[:, new], SHARP, options)
        old_xyz = _rotate(beams, a, b, moving, angles, old)
        loss = loss.cpu().numpy().reshape(shape) + _overlap(new_xyz, old_xyz, distances[np.ix_(new, old)], options)
        total = scores[:, :, None] + loss
        flat = total.reshape(len(total), -1)
        width = min(beam_width, flat.shape[1])
        keep = np.argsort(flat, axis=1)[:, :width]
        beam_index, angle_index = np.unravel_index(keep, shape[1:])
        rows = np.arange(len(total))[:, None]
        beams = _rotate_each(beams[rows, beam_index], a, b, moving, np.cos(angles)[angle_index], np.sin(angles)[angle_index])
        scores = flat[rows, keep]
        scored[new] = True
    return beams.reshape(-1, *beams.shape[2:]), scores.ravel()


def _fixed_by(fragment: np.ndarray, labels: np.ndarray, rotatable_bonds: list[tuple[int, int]]) -> np.ndarray:
    """Atoms whose positions a fragment's placement fixes: its own, plus the far atom of each rotatable bond leaving it."""
    fixed = fragment.copy()
    for a, b in rotatable_bonds:
        if fragment[a]:
            fixed[b] = True
        if fragment[b]:
            fixed[a] = True
    return fixed


def _rotate(beams: np.ndarray, a: int, b: int, moving: np.ndarray, angles: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """The ``atoms`` of every beam pose with the moving side of bond a–b turned by every angle: (placements, beam, angles, atoms, 3).

    Only the moving atoms among them are computed; the others are copied. Laid out atoms-outermost, as
    ``candidates[..., atoms, :]`` of all atoms was: the clash sums over it then run in the same order.
    """
    origin, axis = _bond_frame(beams, a, b)
    turning = moving[atoms]
    v = beams[..., atoms[turning], :] - origin
    cos = np.cos(angles)[:, None, None]
    sin = np.sin(angles)[:, None, None]
    v, axis, origin = v[:, :, None], axis[:, :, None], origin[:, :, None]
    rotated = np.moveaxis(np.empty((len(atoms), *beams.shape[:2], len(angles), 3)), 0, -2)
    rotated[...] = beams[..., atoms, :][:, :, None]
    rotated[..., turning, :] = v * cos + np.cross(axis, v) * sin + axis * (axis * v).sum(-1, keepdims=True) * (1 - cos) + origin
    return rotated


def _rotate_each(poses: np.ndarray, a: int, b: int, moving: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Every pose (placements, width, atoms, 3) with the moving side of bond a–b turned by its own angle (cos, sin: (placements, width)).

    Element for element the arithmetic of :func:`_rotate`, so a pose kept from the scan is the pose that was scored.
    """
    origin, axis = _bond_frame(poses, a, b)
    v = poses[..., moving, :] - origin
    cos, sin = cos[..., None, None], sin[..., None, None]
    turned = poses.copy()
    turned[..., moving, :] = v * cos + np.cross(axis, v) * sin + axis * (axis * v).sum(-1, keepdims=True) * (1 - cos) + origin
    return turned


def _bond_frame(poses: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The turning point (atom b) and unit axis a → b of every pose, each (..., 1, 3)."""
    origin = poses[..., b, :][..., None, :]
    axis = poses[..., b, :] - poses[..., a, :]
    return origin, (axis / np.linalg.norm(axis, axis=-1, keepdims=True))[..., None, :]


def _overlap(new_xyz: np.ndarray, old_xyz: np.ndarray, bonds_apart: np.ndarray, options: DockingOptions) -> np.ndarray:
    """Internal-clash penalty between newly placed and already placed heavy atoms."""
    limits = np.where(bonds_apart >= 5, 3.0, np.where(bonds_apart == 4, 2.6, 0.0))
    # x, y and z one at a time: the same squares summed in the same order as a norm over the last axis, without
    # its (…, new, old, 3) temporaries strided across memory (9× faster for a flexible ligand's beam).
    squared = None
    for axis in range(3):
        difference = new_xyz[..., :, None, axis] - old_xyz[..., None, :, axis]
        squared = difference * difference if squared is None else squared + difference * difference
    return options.internal_weight * (np.clip(limits - np.sqrt(squared), 0, None) ** 2).sum((-1, -2))
