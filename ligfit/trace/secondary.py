"""Secondary structure as an output: per residue from the network's voxel labels, HELIX/SHEET records, a per-voxel map.

The backbone network labels every voxel helix, strand or coil (its "ss" head, trained on DSSP-like
assignments of the deposited models, :func:`ligfit.backbone.data.secondary_structure`), as
Emap2sec (Maddhuri Venkata Subramaniya et al. 2019) and Haruspex (Mostosi et al. 2020) do; on real
maps that head is weak, so traced chains of 5 or more residues take their secondary structure from
their own Cα geometry (P-SEA-like windows), shorter ones from the voxel labels. Runs shorter than
a helix turn (4) or a strand pair (3) become coil.
"""

from __future__ import annotations

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ligfit.backbone.infer import VoxelPredictions
from ligfit.maps import DensityMap

HELIX, STRAND, COIL = 0, 1, 2
#: Shortest run kept as helix / strand (residues).
MIN_RUN = {HELIX: 4, STRAND: 3}
#: Values of the per-voxel map (``trace --ss-map``): solvent or not backbone, helix, strand, coil.
MAP_VALUES = {"none": 0, "helix": 1, "strand": 2, "coil": 3}
#: Voxels with P(backbone) below this are "none" in the map and do not vote for a residue's label.
BACKBONE_FLOOR = 0.3


def residue_secondary_structure(predictions: VoxelPredictions, ca: np.ndarray, radius: float = 1.5) -> np.ndarray:
    """HELIX / STRAND / COIL (L,) for a chain of Cα positions (N→C): from the chain's Cα geometry
    (:func:`ca_secondary_structure`) when it has 5 residues or more, else the majority label of the network's
    backbone voxels within ``radius`` Å of each Cα. Runs too short to be real are made coil."""
    if len(ca) >= 5:
        return ca_secondary_structure(ca)
    return network_secondary_structure(predictions, ca, radius)


def network_secondary_structure(predictions: VoxelPredictions, ca: np.ndarray, radius: float = 1.5) -> np.ndarray:
    """HELIX / STRAND / COIL (L,): the majority label of the network's backbone voxels within ``radius`` Å of each Cα.

    On the real EMD-3488 map the shipped network's head calls most helix voxels coil (helix F1 0.04
    against 5NI1), which is why chains take their Cα geometry instead.
    """
    if len(ca) == 0:
        return np.zeros(0, dtype=int)
    grid = predictions.grid
    steps = np.arange(-int(np.ceil(radius)), int(np.ceil(radius)) + 1)
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    offsets = offsets[np.linalg.norm(offsets * np.asarray(grid.voxel_size), axis=1) <= radius]
    centre = np.rint(grid.to_index(ca)).astype(int)
    voxels = np.clip(centre[:, None] + offsets[None], 0, np.array(predictions.ss.shape) - 1)  # (L, k, 3)
    labels = predictions.ss[tuple(voxels.reshape(-1, 3).T)].reshape(len(ca), -1).astype(int)
    backbone = predictions.trace[tuple(voxels.reshape(-1, 3).T)].reshape(len(ca), -1).astype(float) >= BACKBONE_FLOOR
    votes = np.stack([np.sum((labels == k) & backbone, axis=1) for k in (HELIX, STRAND, COIL)], axis=1)
    ss = np.where(votes.sum(axis=1) > 0, np.argmax(votes, axis=1), COIL)
    return _drop_short_runs(ss)


def ca_secondary_structure(ca: np.ndarray) -> np.ndarray:
    """HELIX / STRAND / COIL (L,) from Cα geometry alone, P-SEA-like (Labesse et al. 1997, CABIOS 13:291).

    Helix: every residue of a window i..i+4 with d(i, i+3) 4.2–5.9 Å, d(i, i+4) 5.2–7.2 Å and the
    Cα(i..i+3) virtual dihedral 20–90° (right-handed). Strand: residues of windows i..i+2 with
    d(i, i+2) ≥ 6.0 Å and a virtual dihedral beyond ±150° (or below −110°), kept only when a Cα of
    another extended stretch (≥ 3 residues away) lies within 5.5 Å: a strand needs a partner.
    """
    count = len(ca)
    ss = np.full(count, COIL, dtype=int)
    if count < 4:
        return ss

    def distance(step: int) -> np.ndarray:
        return np.linalg.norm(ca[step:] - ca[:-step], axis=1)

    b1, b2, b3 = ca[1:-2] - ca[:-3], ca[2:-1] - ca[1:-2], ca[3:] - ca[2:-1]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    m1 = np.cross(n1, b2 / np.maximum(np.linalg.norm(b2, axis=1, keepdims=True), 1e-9))
    dihedral = -np.degrees(np.arctan2(np.sum(m1 * n2, axis=1), np.sum(n1 * n2, axis=1)))  # (L-3,) for i..i+3
    d2, d3 = distance(2), distance(3)
    d4 = distance(4) if count > 4 else np.zeros(0)
    for i in range(count - 4):
        if 4.2 <= d3[i] <= 5.9 and 5.2 <= d4[i] <= 7.2 and 20 <= dihedral[i] <= 90 and 20 <= dihedral[i + 1] <= 90:
            ss[i : i + 5] = HELIX
    extended = np.zeros(count, dtype=bool)
    for i in range(count - 3):
        if d2[i] >= 6.0 and d2[i + 1] >= 6.0 and (dihedral[i] >= 150 or dihedral[i] <= -110):
            extended[i : i + 4] = True
    extended &= ss != HELIX
    index = np.flatnonzero(extended)
    if len(index):
        near = np.linalg.norm(ca[index][:, None] - ca[index][None], axis=-1) <= 5.5
        near &= np.abs(index[:, None] - index[None]) >= 3
        ss[index[near.any(axis=1)]] = STRAND
    return _drop_short_runs(ss)


def _drop_short_runs(ss: np.ndarray) -> np.ndarray:
    ss = ss.copy()
    start = 0
    for end in range(1, len(ss) + 1):
        if end == len(ss) or ss[end] != ss[start]:
            if ss[start] in MIN_RUN and end - start < MIN_RUN[ss[start]]:
                ss[start:end] = COIL
            start = end
    return ss


def runs(ss: np.ndarray, kind: int) -> list[tuple[int, int]]:
    """(first, last) residue indices (inclusive) of each run of ``kind``."""
    padded = np.concatenate([[False], ss == kind, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def add_records(structure: gemmi.Structure, secondary: list[np.ndarray | None]) -> None:
    """HELIX (α, right-handed) and SHEET records (one strand per sheet: pairing is not traced) for each chain of model 1."""
    structure.helices.clear()
    structure.sheets.clear()
    for chain, ss in zip(structure[0], secondary):
        if ss is None:
            continue
        residues = list(chain)
        for first, last in runs(ss, HELIX):
            helix = gemmi.Helix()
            helix.start, helix.end = _address(chain, residues[first]), _address(chain, residues[last])
            helix.pdb_helix_class = gemmi.Helix.HelixClass.RAlpha
            helix.length = last - first + 1
            structure.helices.append(helix)
        for first, last in runs(ss, STRAND):
            sheet = gemmi.Sheet(f"S{len(structure.sheets) + 1}")
            strand = gemmi.Sheet.Strand()
            strand.start, strand.end, strand.name, strand.sense = _address(chain, residues[first]), _address(chain, residues[last]), "1", 0
            sheet.strands.append(strand)
            structure.sheets.append(sheet)


def _address(chain: gemmi.Chain, residue: gemmi.Residue) -> gemmi.AtomAddress:
    return gemmi.AtomAddress(chain.name, residue.seqid, residue.name, "CA")


def secondary_structure_map(predictions: VoxelPredictions, ca: np.ndarray | None = None, ss: np.ndarray | None = None) -> DensityMap:
    """Per-voxel labels on the network's 1 Å grid: 0 not backbone, 1 helix, 2 strand, 3 coil (see :data:`MAP_VALUES`).

    Backbone voxels (P ≥ 0.3) within 2.5 Å of a traced Cα (``ca`` (n, 3), labels ``ss`` (n,)) take that
    residue's label; other backbone voxels keep the network's own.
    """
    labels = predictions.ss.astype(np.float32) + 1
    backbone = predictions.trace.astype(np.float32) >= BACKBONE_FLOOR
    if ca is not None and ss is not None and len(ca):
        voxels = np.argwhere(backbone)
        distance, nearest = cKDTree(ca).query(predictions.grid.to_points(voxels), distance_upper_bound=2.5)
        near = np.isfinite(distance)
        labels[tuple(voxels[near].T)] = np.asarray(ss)[nearest[near]] + 1
    labels[~backbone] = 0
    return predictions.grid.with_values(labels)


def f1_scores(reference_ss: np.ndarray, traced_ss: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> dict[str, float]:
    """Helix and strand F1 per residue: a true positive is a matched (reference ``rows``, traced ``columns``) pair
    labelled ``kind`` in both; other reference residues of that kind are misses, other traced ones false alarms."""
    scores = {}
    for name, kind in (("helix", HELIX), ("strand", STRAND)):
        true_positive = int(np.sum((reference_ss[rows] == kind) & (traced_ss[columns] == kind)))
        actual, called = int(np.sum(reference_ss == kind)), int(np.sum(traced_ss == kind))
        scores[f"{name}_f1"] = 2 * true_positive / (actual + called) if actual + called else float("nan")
    return scores


__all__ = [
    "MAP_VALUES",
    "add_records",
    "ca_secondary_structure",
    "f1_scores",
    "network_secondary_structure",
    "residue_secondary_structure",
    "runs",
    "secondary_structure_map",
]
