"""From voxel predictions to a protein model: Cα candidates → chains → sequence → full-atom model.

The DeepTracer recipe (Pfab et al. 2021, PNAS 118:e2017525118): the backbone network
(:mod:`ligfit.backbone`) labels every voxel; Cα candidates are the peaks of P(Cα) after
non-maximum suppression; candidates ~3.8 Å apart that are joined by backbone density become
edges of a graph, and a greedy degree-2 forest (cheapest edges first, no cycles) orders them into
chains (a Cα with no partner stays a one-residue chain, its N and C read off the heat-maps); the
N/C probabilities along each link give the chain direction; residue-type probabilities come from
the density in each residue's own frame (:mod:`ligfit.backbone.residue_types`, read both ways)
combined with the network's residue-type head; a given sequence is threaded onto each chain by
dynamic programming over them, both directions, and accepted only if it beats 100 shuffled
sequences; the backbone comes from Cα quadrilaterals and side chains from ideal residues
(:mod:`ligfit.backbone.geometry`). Coordinates in Å, in the map's frame.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ligfit import io
from ligfit.backbone import contract, geometry, side_chains
from ligfit.backbone.errors import MapTooLargeError, NoProteinDensityError, SequenceMismatchError
from ligfit.backbone.infer import Network, VoxelPredictions, load_network, predict
from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER
from ligfit.backbone.residue_types import ResidueTypeClassifier, load_classifier
from ligfit.errors import BadMapError, LigfitError
from ligfit.maps import DensityMap

log = logging.getLogger(__name__)

#: De novo tracing is refused for maps coarser than this (Å).
COARSEST_RESOLUTION = 5.0
#: Background residue frequencies (UniProt), for log-odds threading scores.
BACKGROUND = dict(
    zip(
        "ARNDCQEGHILKMFPSTWYV",
        (8.25, 5.53, 4.06, 5.45, 1.37, 3.93, 6.75, 7.07, 2.27, 5.96, 9.66, 5.84, 2.42, 3.86, 4.70, 6.56, 5.34, 1.08, 2.92, 6.87),
    )
)


@dataclass(frozen=True)
class TraceOptions:
    """Tracing parameters (defaults from ``benchmarks/backbone_tune.py``: validation split, 3 and 4 Å, shipped weights)."""

    ca_threshold: float = 0.3  # minimum P(Cα) of a candidate peak
    nms_radius: float = 2.2  # Å: weaker peaks this close to a kept one are dropped
    link_range: tuple[float, float] = (2.6, 4.6)  # Å: Cα–Cα distances that may be consecutive
    min_support: float = 0.3  # minimum mean P(backbone mask) along a link
    min_chain: int = 1  # shorter chains are dropped (lone residues are kept: pockets and gaps leave them)
    min_residues: int = 10  # fewer traced residues in all: no protein-like density
    insertion_penalty: float = 4.0  # threading: a traced Cα with no sequence residue (log units)
    deletion_penalty: float = 4.0  # threading: a sequence residue with no traced Cα
    shuffles: int = 100  # shuffled sequences for the significance of the threading
    min_sequence_z: float = 3.0  # threading must beat shuffled sequences by this many σ
    unknown_residue: str = "most-likely"  # without a sequence: "most-likely" type or "ALA"
    side_chains: str = "fitted"  # "fitted" (best rotamer in the density), "ideal" (CCD conformation) or "cb" (stop at Cβ)
    density_type_weight: float = 1.0  # residue types: weight of the side-chain density classifier (log-probabilities)
    network_type_weight: float = 0.5  # … and of the backbone network's residue-type head
    cube: int = 64
    margin: int = 16  # voxels of context each cube keeps around its centre (8 let the shipped network's cubes disagree by 0.2 in P(Cα))
    max_voxels: int = 300**3  # at 1 Å: ~15 min and ~1 GB on 2 CPU cores; larger maps must be boxed
    seed: int = 0


#: How ``build`` traces its de novo model: no lone residues (see :func:`build_protein_model`).
BUILD_TRACE = TraceOptions(min_chain=2)


@dataclass(frozen=True)
class TracedChain:
    """One traced chain, N→C: Cα positions (Å), residue names and, when threaded, sequence positions."""

    ca: np.ndarray  # (L, 3)
    residue_names: tuple[str, ...]
    confidence: np.ndarray  # (L,) P(Cα) at each peak
    aa_probabilities: np.ndarray  # (L, 20)
    sequence_index: int | None = None  # which distinct input sequence (first occurrence order), when threaded
    sequence_positions: np.ndarray | None = None  # (L,) 0-based, -1 where no residue aligned
    threading_score: float = 0.0  # log-odds of the alignment
    lone_backbone: np.ndarray | None = None  # (2, 3) N and C of a single-residue chain (from the heat-maps)
    aa_probabilities_reversed: np.ndarray | None = None  # (L, 20) the chain read C→N (last residue first)

    def profiles(self) -> tuple[np.ndarray, np.ndarray]:
        """Residue-type probabilities read N→C and read C→N (each in its own residue order)."""
        reversed_ = self.aa_probabilities_reversed if self.aa_probabilities_reversed is not None else self.aa_probabilities[::-1]
        return self.aa_probabilities, reversed_


@dataclass
class TraceResult:
    """What ``trace`` built: chains as plain arrays, the model, and how well the sequence fits."""

    chains: list[TracedChain]
    structure: gemmi.Structure
    candidates: np.ndarray  # (n, 3) every Cα candidate, Å
    sequence_score: dict | None
    message: str
    timings: dict[str, float] = field(default_factory=dict)
    options: TraceOptions = field(default_factory=TraceOptions)

    @property
    def residue_count(self) -> int:
        return sum(len(chain.ca) for chain in self.chains)

    def write(self, path: str | os.PathLike) -> None:
        """Write the model (mmCIF or PDB by suffix, atomically)."""
        io.write_structure(self.structure, path)

    def summary(self) -> dict:
        """Plain data for reports: what was traced and how well the sequence fits."""
        return {
            "source": "traced de novo by ligfit's backbone network",
            "message": self.message,
            "chains": len(self.chains),
            "residues": self.residue_count,
            "sequence_score": self.sequence_score,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


SequenceInput = str | os.PathLike | list[str] | None


# --------------------------------------------------------------------------- entry point


#: Progress callback: (stage, done, total); stages "network" (cubes), "tracing", "threading", "model".
Progress = Callable[[str, int, int], None]


def trace(
    density_map: DensityMap,
    resolution: float,
    sequence: SequenceInput = None,
    *,
    options: TraceOptions = TraceOptions(),
    network: Network | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TraceResult:
    """Build a protein model de novo from ``density_map`` at ``resolution`` Å, threading ``sequence`` when given.

    ``sequence``: a FASTA path, a one-letter sequence, or a list of them (one per distinct chain).
    Raises ``BadMapError`` for maps coarser than 5 Å, ``MapTooLargeError`` for maps over
    ``options.max_voxels`` at 1 Å, ``NoProteinDensityError`` without protein-like density,
    ``SequenceMismatchError`` when the sequence fits the traced chains no better than shuffled
    ones, ``BadWeightsError`` when the network weights are missing or corrupted.
    """
    check_traceable(density_map, resolution, options)
    sequences = read_sequences(sequence) if sequence is not None else None
    network = network or load_network(weights, device)
    clock = time.perf_counter()
    on_cube = (lambda done, total: progress("network", done, total)) if progress else None
    predictions = predict(density_map, network, options.cube, options.margin, progress=on_cube)
    network_seconds = time.perf_counter() - clock
    result = trace_predictions(predictions, sequences, options=options, progress=progress)
    result.timings["network"] = network_seconds
    return result


def build_protein_model(
    density_map: DensityMap,
    resolution: float,
    sequence: SequenceInput,
    *,
    options: TraceOptions = BUILD_TRACE,
    network: Network | None = None,
    progress: Callable[[str], None] | None = None,
) -> TraceResult:
    """A protein model for ``build`` when the user has none: traced, threaded with ``sequence`` where it fits.

    Unlike :func:`trace`, a sequence that does not fit the traced chains is not an error here:
    the model only has to explain the protein's density, so the unthreaded trace is used and a
    warning gives the threading score. The model's density is subtracted before the ligand
    search, so by default (:data:`BUILD_TRACE`) it has no lone residues: a lone Cα peak is
    where ligand density is most often taken for protein (on the Tyk2 example one sits 0.6 Å
    from a ligand atom and the ligand then lands 6.4 Å off). The search itself uses
    :func:`search_model`.
    """
    say = progress or (lambda message: None)
    check_traceable(density_map, resolution, options)
    sequences = read_sequences(sequence) if sequence is not None else None
    network = network or load_network()
    say("tracing a protein model de novo (backbone network)")
    clock = time.perf_counter()
    predictions = predict(density_map, network, options.cube, options.margin)
    network_seconds = time.perf_counter() - clock
    try:
        result = trace_predictions(predictions, sequences, options=options)
    except SequenceMismatchError as error:
        log.warning("%s; using the trace without the sequence (most likely residue types)", error)
        result = trace_predictions(predictions, None, options=options)
        traced = result.message.split(";")[0]
        result = dataclasses.replace(result, message=f"{traced} with the most likely residue types; the sequence was not threaded: {error}")
    result.timings["network"] = network_seconds
    say(result.message)
    return result


def search_model(result: TraceResult) -> gemmi.Structure:
    """The traced model with side chains stopped at Cβ: what the ligand search subtracts and docks against.

    A traced side chain of the wrong type or rotamer either erases ligand density or leaves a
    ligand-sized hole elsewhere; stopped at Cβ, what the model misses is side-chain sized. On the
    Tyk2 example the ligand lands 0.26 Å off this way, 2.4 Å with fitted side chains and 34 Å
    with ideal CCD ones. The full model (``result.structure``) is what is refined and written.
    """
    return build_structure(result.chains, side_chains_as="cb")


def check_traceable(density_map: DensityMap, resolution: float, options: TraceOptions = TraceOptions()) -> None:
    """Refuse maps that are too coarse for de novo tracing or too large for the CPU budget (``BadMapError``)."""
    if not 0 < resolution <= COARSEST_RESOLUTION:
        raise BadMapError(
            f"resolution {resolution:g} Å: de novo tracing is only reliable at {COARSEST_RESOLUTION:g} Å or better; "
            "give a fitted protein model (--model) instead"
        )
    extent = np.asarray(density_map.shape) * np.asarray(density_map.voxel_size)
    voxels = int(np.prod(np.ceil(extent / contract.VOXEL_SIZE)))
    if voxels > options.max_voxels:
        raise MapTooLargeError(
            f"the map spans {' × '.join(f'{e:.0f}' for e in extent)} Å ({voxels / 1e6:.0f} M voxels at 1 Å, limit "
            f"{options.max_voxels / 1e6:.0f} M); box it around the region to trace, or raise max_voxels"
        )


def trace_predictions(
    predictions: VoxelPredictions,
    sequences: list[str] | None = None,
    *,
    options: TraceOptions = TraceOptions(),
    progress: Progress | None = None,
    residue_types: ResidueTypeClassifier | None = None,
) -> TraceResult:
    """Cα candidates → chains → threaded sequence → full-atom model, from the network's voxel predictions.

    Residue types combine the side-chain density classifier (``residue_types``, default the
    shipped one) and the backbone network's residue-type head, weighted by ``options``.
    """
    say = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    candidates, scores = ca_candidates(predictions, options)
    paths = chain_paths(candidates, predictions, options)
    traced = sum(map(len, paths))
    if traced < options.min_residues:
        raise NoProteinDensityError(
            f"no protein-like density: the network found {len(candidates)} Cα candidates, {traced} of them in chains "
            f"(fewer than {options.min_residues}); "
            "check that the map holds protein at the stated resolution (and its contour/sign), or give a model"
        )
    log.info("traced %d Cα in %d chains from %d candidates", traced, len(paths), len(candidates))
    chains = [
        TracedChain(
            candidates[p],
            (),
            scores[p],
            predictions.residue_types(candidates[p]),
            lone_backbone=lone_residue_backbone(candidates[p[0]], predictions) if len(p) == 1 else None,
        )
        for p in (orient(path, candidates, predictions) for path in paths)
    ]
    if options.density_type_weight:
        classifier = residue_types or load_classifier()
        chains = [with_density_types(chain, predictions, classifier, options) for chain in chains]
    timings["tracing"] = time.perf_counter() - clock
    say("tracing", 1, 1)

    clock = time.perf_counter()
    sequence_score = None
    if sequences:
        chains, sequence_score = thread_all(chains, sequences, options)
        log.info("threaded the sequence: log-odds %.1f, %.1f σ above shuffled sequences", sequence_score["score"], sequence_score["z"])
        message = f"traced {traced} residues in {len(chains)} chains, sequence threaded (z = {sequence_score['z']:.1f})"
        say("threading", 1, 1)
    else:
        chains = [name_without_sequence(chain, options.unknown_residue) for chain in chains]
        kind = "most likely residue types" if options.unknown_residue == "most-likely" else "poly-alanine"
        message = f"traced {traced} residues in {len(chains)} chains; no sequence given, so {kind}"
        log.warning("no sequence given: the model has %s, not a threaded sequence", kind)
    structure = build_structure(chains, predictions.grid, options.side_chains)
    timings["model"] = time.perf_counter() - clock
    say("model", 1, 1)
    return TraceResult(chains, structure, candidates, sequence_score, message, timings, options)


# --------------------------------------------------------------------------- sequences


def read_sequences(sequence: SequenceInput) -> list[str]:
    """One-letter sequences from a FASTA path, a sequence string, or a list of either."""
    if isinstance(sequence, list):
        return [s for item in sequence for s in read_sequences(item)]
    text = str(sequence)
    path = Path(text)
    if isinstance(sequence, os.PathLike) or (len(text) < 4096 and ("/" in text or "." in text) and path.exists()):
        if not path.is_file():
            raise LigfitError(f"{path}: no such sequence file; check the path")
        records, current = [], []
        for line in path.read_text().splitlines():
            if line.startswith(">"):
                if current:
                    records.append("".join(current))
                current = []
            elif line.strip():
                current.append(line.strip())
        if current:
            records.append("".join(current))
        if not records:
            raise LigfitError(f"{path}: no sequence found; give a FASTA file with one record per chain")
        return [_clean(r, str(path)) for r in records]
    return [_clean(text, "the sequence")]


def _clean(sequence: str, source: str) -> str:
    cleaned = "".join(sequence.split()).upper().rstrip("*")
    bad = sorted(set(cleaned) - set(ONE_LETTER) - {"X"})
    if not cleaned or bad:
        raise LigfitError(
            f"{source}: not a protein sequence (unexpected letters {''.join(bad) or 'none found'}); give one-letter amino-acid codes"
        )
    return cleaned


# --------------------------------------------------------------------------- candidates and chains


def ca_candidates(predictions: VoxelPredictions, options: TraceOptions) -> tuple[np.ndarray, np.ndarray]:
    """Cα positions (n, 3) Å and their P(Cα): local maxima, refined to the 3×3×3 centroid, then distance NMS."""
    ca = predictions.ca.astype(np.float32)
    peaks = np.argwhere((ca >= options.ca_threshold) & (ca == ndimage.maximum_filter(ca, size=3, mode="constant")))
    if len(peaks) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    around = np.clip(peaks[:, None] + offsets[None], 0, np.array(ca.shape) - 1)
    weights = ca[tuple(around.reshape(-1, 3).T)].reshape(len(peaks), -1)
    refined = (weights[..., None] * around).sum(axis=1) / weights.sum(axis=1, keepdims=True)
    scores = ca[tuple(peaks.T)]
    positions = predictions.grid.to_points(refined)
    order = np.argsort(-scores)
    positions, scores = positions[order], scores[order]
    neighbours = cKDTree(positions).query_ball_point(positions, options.nms_radius)
    kept = np.ones(len(positions), dtype=bool)
    for index in range(len(positions)):
        if kept[index]:
            for other in neighbours[index]:
                if other > index:
                    kept[other] = False
    return positions[kept], scores[kept].astype(float)


def link_support(predictions: VoxelPredictions, start: np.ndarray, end: np.ndarray, samples: int = 5) -> np.ndarray:
    """Mean P(backbone mask) at ``samples`` points strictly between each start (m, 3) and end (m, 3)."""
    fractions = (np.arange(samples) + 1) / (samples + 1)
    points = start[:, None] + fractions[None, :, None] * (end - start)[:, None]
    return predictions.sample("trace", points.reshape(-1, 3)).reshape(len(start), samples).mean(axis=1)


def chain_paths(candidates: np.ndarray, predictions: VoxelPredictions, options: TraceOptions) -> list[np.ndarray]:
    """Order candidates into chains: a greedy degree-≤2 spanning forest over plausible Cα–Cα links."""
    if len(candidates) < 2:
        return []
    pairs = cKDTree(candidates).query_pairs(options.link_range[1], output_type="ndarray")
    distance = np.linalg.norm(candidates[pairs[:, 0]] - candidates[pairs[:, 1]], axis=1)
    pairs, distance = pairs[distance >= options.link_range[0]], distance[distance >= options.link_range[0]]
    support = link_support(predictions, candidates[pairs[:, 0]], candidates[pairs[:, 1]]) if len(pairs) else np.zeros(0)
    good = support >= options.min_support
    pairs, distance, support = pairs[good], distance[good], support[good]
    cost = ((distance - 3.8) / 0.25) ** 2 - 4.0 * np.log(np.clip(support, 1e-3, None))
    degree = np.zeros(len(candidates), dtype=int)
    parent = np.arange(len(candidates))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    neighbours: list[list[int]] = [[] for _ in candidates]
    for a, b in pairs[np.argsort(cost)]:
        if degree[a] < 2 and degree[b] < 2 and root(a) != root(b):
            parent[root(a)] = root(b)
            degree[a] += 1
            degree[b] += 1
            neighbours[a].append(b)
            neighbours[b].append(a)
    paths, seen = [], np.zeros(len(candidates), dtype=bool)
    for start in np.flatnonzero(degree <= 1):
        if seen[start]:
            continue
        path = [start]
        seen[start] = True
        while True:
            nxt = [n for n in neighbours[path[-1]] if not seen[n]]
            if not nxt:
                break
            path.append(nxt[0])
            seen[nxt[0]] = True
        if len(path) >= options.min_chain:
            paths.append(np.array(path))
    return sorted(paths, key=len, reverse=True)


def lone_residue_backbone(ca: np.ndarray, predictions: VoxelPredictions, directions: int = 200) -> np.ndarray:
    """N and C (2, 3) of a Cα without traced neighbours, from the N and C heat-maps.

    N and C are sought on spheres of their bond lengths around the Cα: the pair with the highest
    P(N) + P(C) whose N–Cα–C angle lies within 100–122° (validation pockets at 3–4 Å: median
    direction error 26° for N, 17° for C at the true Cα).
    """
    index = np.arange(directions) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / directions), np.pi * (1 + 5**0.5) * index
    unit = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
    p_n = predictions.sample("n", ca + geometry.BOND_N_CA * unit)
    p_c = predictions.sample("c", ca + geometry.BOND_CA_C * unit)
    cosine = unit @ unit.T
    allowed = (cosine <= np.cos(np.radians(100))) & (cosine >= np.cos(np.radians(122)))
    total = np.where(allowed, p_n[:, None] + p_c[None, :], -np.inf)
    n_index, c_index = np.unravel_index(int(np.argmax(total)), total.shape)
    return np.stack([ca + geometry.BOND_N_CA * unit[n_index], ca + geometry.BOND_CA_C * unit[c_index]])


def with_density_types(
    chain: TracedChain, predictions: VoxelPredictions, classifier: ResidueTypeClassifier, options: TraceOptions
) -> TracedChain:
    """The chain with residue-type profiles from the density in each residue's frame, read both ways.

    log P = ``density_type_weight`` × log P(classifier) + ``network_type_weight`` × log P(network head),
    normalised. Read C→N the backbone frames differ (N and C swap), so that profile is classified anew.
    """

    def combined(density_types: np.ndarray, network_types: np.ndarray) -> np.ndarray:
        log_p = options.density_type_weight * np.log(np.clip(density_types, 1e-6, None))
        log_p += options.network_type_weight * np.log(np.clip(network_types, 1e-6, None))
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    network_types = chain.aa_probabilities
    n, c, _ = chain_backbone(chain)
    forward = combined(classifier.probabilities(predictions.grid, n, chain.ca, c), network_types)
    if len(chain.ca) == 1:
        backward = forward
    else:
        reversed_ca = chain.ca[::-1]
        n, c, _ = geometry.peptide_table().place(reversed_ca)
        backward = combined(classifier.probabilities(predictions.grid, n, reversed_ca, c), network_types[::-1])
    return dataclasses.replace(chain, aa_probabilities=forward, aa_probabilities_reversed=backward)


def orient(path: np.ndarray, candidates: np.ndarray, predictions: VoxelPredictions) -> np.ndarray:
    """The path ordered N→C: along Cα(i)→Cα(i+1) the carbonyl C comes first and the amide N last."""
    return path if direction_evidence(candidates[path], predictions) >= 0 else path[::-1]


def direction_evidence(ca: np.ndarray, predictions: VoxelPredictions) -> float:
    """Σ over links of [P(C) − P(N)] at 1/3 minus the same at 2/3 of the way: > 0 means N→C as given."""
    start, end = ca[:-1], ca[1:]
    near, far = start + (end - start) / 3, start + 2 * (end - start) / 3
    c_near, n_near = predictions.sample("c", near), predictions.sample("n", near)
    c_far, n_far = predictions.sample("c", far), predictions.sample("n", far)
    return float(np.sum((c_near - n_near) - (c_far - n_far)))


# --------------------------------------------------------------------------- threading


def log_odds(aa_probabilities: np.ndarray, sequence: str) -> np.ndarray:
    """Score (L, M) of each traced residue against each sequence position: log P(type)/background."""
    return log_odds_batch(aa_probabilities, [sequence])[0]


def log_odds_batch(aa_probabilities: np.ndarray, sequences: list[str]) -> np.ndarray:
    """:func:`log_odds` for sequences of one length (S, L, M); unknown letters (X) score 0."""
    background = np.array([BACKGROUND[a] for a in ONE_LETTER]) / 100
    table = np.log(np.clip(aa_probabilities, 1e-4, None)) - np.log(background)  # (L, 20)
    columns = np.array([[ONE_LETTER.index(a) if a in ONE_LETTER else -1 for a in sequence] for sequence in sequences])
    scores = np.where(columns[:, None] >= 0, table[:, np.clip(columns, 0, None)].transpose(1, 0, 2), 0.0)
    return scores


def alignment_table(scores: np.ndarray, insertion: float, deletion: float) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic programming for a batch (B, rows, columns) of alignment score matrices: best scores and moves.

    Rows are traced residues, columns sequence positions; free sequence ends, linear gaps. Row by
    row; the within-row deletion recursion is a running maximum. Moves: 0 diagonal, 1 insertion
    (row only), 2 deletion (column only).
    """
    batch, rows, columns = scores.shape
    best = np.zeros((batch, rows + 1, columns + 1))
    best[:, 1:, 0] = -insertion * np.arange(1, rows + 1)
    move = np.zeros((batch, rows + 1, columns + 1), dtype=np.int8)
    move[:, 1:, 0] = 1
    ramp = deletion * np.arange(columns + 1)
    for i in range(1, rows + 1):
        diagonal = best[:, i - 1, :-1] + scores[:, i - 1]
        insert = best[:, i - 1, 1:] - insertion
        through = np.concatenate([best[:, i, :1], np.maximum(diagonal, insert)], axis=1)
        lifted = through + ramp
        running = np.maximum.accumulate(lifted, axis=1)
        best[:, i] = running - ramp
        move[:, i, 1:] = np.where(insert > diagonal, 1, 0)
        move[:, i, 1:][running[:, 1:] > lifted[:, 1:]] = 2  # compared before removing the ramp: no rounding ties
    return best, move


def align(scores: np.ndarray, insertion: float, deletion: float) -> tuple[float, np.ndarray]:
    """Best alignment of a traced chain (rows) to a sequence (columns), free sequence ends, linear gaps.

    Returns the score and the sequence position of each row (-1 for rows left unaligned).
    """
    best, move = alignment_table(scores[None], insertion, deletion)
    best, move = best[0], move[0]
    rows = scores.shape[0]
    end = int(np.argmax(best[rows]))
    score = float(best[rows, end])
    positions = np.full(rows, -1)
    i, j = rows, end
    while i > 0:
        step = move[i, j] if j > 0 else 1
        if step == 0:
            positions[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return score, positions


def thread(chain: TracedChain, sequences: list[str], options: TraceOptions) -> TracedChain:
    """The chain threaded onto its best-fitting sequence, in whichever direction fits better."""
    best: tuple[float, int, bool, np.ndarray] | None = None
    for index, sequence in enumerate(sequences):
        for reverse, probabilities in zip((False, True), chain.profiles()):
            score, positions = align(log_odds(probabilities, sequence), options.insertion_penalty, options.deletion_penalty)
            if best is None or score > best[0]:
                best = (score, index, reverse, positions)
    score, index, reverse, positions = best
    if reverse:
        chain = reverse_chain(chain)
    probabilities = chain.aa_probabilities
    letters = [sequences[index][p] if p >= 0 else ONE_LETTER[int(np.argmax(probabilities[k]))] for k, p in enumerate(positions)]
    names = tuple(AMINO_ACIDS[ONE_LETTER.index(a)] if a in ONE_LETTER else "ALA" for a in letters)
    return dataclasses.replace(chain, residue_names=names, sequence_index=index, sequence_positions=positions, threading_score=score)


def reverse_chain(chain: TracedChain) -> TracedChain:
    """The chain read C→N: residues reversed, with the profiles swapped."""
    forward, backward = chain.profiles()
    return dataclasses.replace(
        chain,
        ca=chain.ca[::-1],
        confidence=chain.confidence[::-1],
        aa_probabilities=backward,
        aa_probabilities_reversed=forward,
        residue_names=chain.residue_names[::-1],
    )


def thread_all(
    chains: list[TracedChain], sequences: list[str], options: TraceOptions, require_significance: bool = True
) -> tuple[list[TracedChain], dict]:
    """Thread every chain; test the total score against shuffled sequences (raise if not clearly better).

    Accepted when the score is ``options.min_sequence_z`` standard deviations above the shuffled
    sequences' mean and above every one of them (empirical p < 1 / shuffles); with
    ``require_significance=False`` the threading and its scores are returned either way. Every
    chain keeps its threading, significant on its own or not: on the validation pockets, falling
    back to the most likely types for chains < 2 σ above their own shuffles lowered the residue
    types right from 0.46 to 0.38.
    """
    # Copies of one chain (a homo-oligomer's FASTA) count once: each copy would get shuffles of its
    # own, and the best of several random sequences is a higher bar than the data face (haemoglobin,
    # α β α β: z 2.7 with the copies, 6.5 without).
    sequences = list(dict.fromkeys(sequences))
    threaded = [thread(chain, sequences, options) for chain in chains]
    rng = np.random.default_rng(options.seed)
    shuffled = [["".join(rng.permutation(list(s))) for _ in range(options.shuffles)] for s in sequences]
    score = sum(chain.threading_score for chain in threaded)
    shuffled_scores = np.sum([_shuffled_scores(chain, shuffled, options) for chain in chains], axis=0)
    mean, std = float(np.mean(shuffled_scores)), float(np.std(shuffled_scores)) or 1.0
    z = (score - mean) / std
    empirical_p = float((1 + np.sum(shuffled_scores >= score)) / (1 + options.shuffles))
    summary = {
        "score": score,
        "shuffled_mean": mean,
        "shuffled_std": std,
        "z": z,
        "empirical_p": empirical_p,
        "shuffles": options.shuffles,
        "aligned_residues": sum(int((chain.sequence_positions >= 0).sum()) for chain in threaded),
    }
    if require_significance and (z < options.min_sequence_z or np.any(shuffled_scores >= score)):
        raise SequenceMismatchError(
            f"the sequence does not match the traced chains: alignment log-odds {score:.1f} vs {mean:.1f} ± {std:.1f} for "
            f"{options.shuffles} shuffled sequences (z = {z:.1f}, needs {options.min_sequence_z:g} and to beat every shuffle); "
            "check that the FASTA is for this map, or trace without --sequence"
        )
    return threaded, summary


def _shuffled_scores(chain: TracedChain, shuffled: list[list[str]], options: TraceOptions) -> np.ndarray:
    """Best alignment score of ``chain`` (either direction) per shuffle: ``shuffled[k][s]`` is shuffle s of sequence k."""
    best = np.full(len(shuffled[0]), -np.inf)
    for copies in shuffled:
        for probabilities in chain.profiles():
            table, _ = alignment_table(log_odds_batch(probabilities, copies), options.insertion_penalty, options.deletion_penalty)
            best = np.maximum(best, table[:, -1].max(axis=1))
    return best


def name_without_sequence(chain: TracedChain, unknown_residue: str) -> TracedChain:
    """Residue names without a sequence: the most likely predicted type, or alanine."""
    if unknown_residue not in ("most-likely", "ALA"):
        raise ValueError(f"unknown_residue must be 'most-likely' or 'ALA', got {unknown_residue!r}")
    if unknown_residue == "ALA":
        names = ("ALA",) * len(chain.ca)
    else:
        names = tuple(AMINO_ACIDS[i] for i in np.argmax(chain.aa_probabilities, axis=1))
    return dataclasses.replace(chain, residue_names=names)


# --------------------------------------------------------------------------- model


def chain_names(count: int) -> list[str]:
    """A, B, …, Z, a, …, z, 0, …, 9, then two letters."""
    single = list(string.ascii_uppercase + string.ascii_lowercase + string.digits)
    return (single + [a + b for a in single for b in single])[:count]


def build_structure(chains: list[TracedChain], density: DensityMap | None = None, side_chains_as: str = "fitted") -> gemmi.Structure:
    """A gemmi Structure with every traced chain as full-atom residues; B-factor = 100 × (1 − P(Cα)).

    ``side_chains_as``: "fitted" — each side chain takes the rotamer that best fits ``density`` (the
    normalised 1 Å map; :mod:`ligfit.backbone.side_chains`); "ideal" — the CCD conformation; "cb" —
    side chains stop at Cβ (residue names kept).
    """
    if side_chains_as not in ("fitted", "ideal", "cb"):
        raise ValueError(f"side_chains must be 'fitted', 'ideal' or 'cb', got {side_chains_as!r}")
    structure = gemmi.Structure()
    structure.name = "ligfit_trace"
    model = gemmi.Model("1")
    table = geometry.peptide_table()
    atoms = [geometry.full_atoms(*_backbone_with_ca(chain, table), list(chain.residue_names)) for chain in chains]
    if side_chains_as == "cb":
        atoms = [[[atom for atom in residue if side_chains.depth(atom[0]) <= 1] for residue in chain] for chain in atoms]
    elif side_chains_as == "fitted" and density is not None:  # all chains at once: no clash with another chain's backbone either
        names = [name for chain in chains for name in chain.residue_names]
        fitted = iter(side_chains.fit_rotamers([residue for chain in atoms for residue in chain], names, density))
        atoms = [[next(fitted) for _ in chain] for chain in atoms]
    for name, chain, chain_atoms in zip(chain_names(len(chains)), chains, atoms):
        gemmi_chain = gemmi.Chain(name)
        numbers = _residue_numbers(chain)
        for index, (residue_atoms, (number, icode)) in enumerate(zip(chain_atoms, numbers)):
            residue = gemmi.Residue()
            residue.name = chain.residue_names[index]
            residue.seqid = gemmi.SeqId(number, icode)
            residue.entity_type = gemmi.EntityType.Polymer
            b_factor = float(100 * (1 - chain.confidence[index]))
            for atom_name, element, position in residue_atoms:
                residue.add_atom(io.new_atom(atom_name, element, position, b_factor=b_factor))
            gemmi_chain.add_residue(residue)
        model.add_chain(gemmi_chain)
    structure.add_model(model)
    structure.setup_entities()
    return structure


def chain_backbone(chain: TracedChain, table: geometry.PeptideTable | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, C, O (each (L, 3)) of a traced chain: the peptide table on its Cα, or a lone residue's own N and C."""
    if len(chain.ca) == 1:
        return geometry.lone_residue_backbone(chain.ca[0], chain.lone_backbone)
    return (table or geometry.peptide_table()).place(chain.ca)


def _backbone_with_ca(chain: TracedChain, table: geometry.PeptideTable) -> tuple[np.ndarray, ...]:
    n, c, o = chain_backbone(chain, table)
    return n, chain.ca, c, o


def _residue_numbers(chain: TracedChain) -> list[tuple[int, str]]:
    """Sequence numbers (1-based) where threaded; unaligned residues take the previous number and an insertion code."""
    if chain.sequence_positions is None:
        return [(k + 1, " ") for k in range(len(chain.ca))]
    positions = chain.sequence_positions
    aligned = positions[positions >= 0]
    previous = int(aligned[0]) if len(aligned) else 0  # leading unaligned residues share the first number - 1
    numbers, inserted = [], 0
    for position in positions:
        if position >= 0:
            previous, inserted = int(position) + 1, 0
            numbers.append((previous, " "))
        else:
            numbers.append((previous, string.ascii_uppercase[inserted % 26]))
            inserted += 1
    return numbers
