"""From voxel predictions to a protein model: Cα candidates → chains → sequence → full-atom model.

The DeepTracer recipe (Pfab et al. 2021, PNAS 118:e2017525118): the backbone network
(:mod:`ligfit.backbone`) labels every voxel; Cα candidates are the peaks of P(Cα) after
non-maximum suppression; candidates ~3.8 Å apart that are joined by backbone density become
edges of a graph, and a greedy degree-2 forest (cheapest edges first, no cycles) orders them into
chains (a Cα with no partner stays a one-residue chain, its N and C read off the heat-maps); the
N/C probabilities along each link give the chain direction; residue-type probabilities come from
the density in each residue's own frame (:mod:`ligfit.backbone.residue_types`, read both ways)
combined with the network's residue-type head; a given sequence is assigned as ModelAngelo
does it: each chain becomes a profile HMM of its residue-type probabilities and HMMER3 (pyhmmer)
aligns the sequence to it, both directions, with calibrated E-values (:mod:`~ligfit.trace.hmm`);
short fragments next to threaded pieces take the register the distance allows, pieces are ordered
into model chains (:mod:`~ligfit.trace.order`), and the trace is refused when no chain aligns
significantly (``options.sequence_method = "dp"``: the earlier threading by dynamic programming
against 100 shuffled sequences); the backbone comes from Cα quadrilaterals and side chains from ideal residues
(:mod:`ligfit.backbone.geometry`). Coordinates in Å, in the map's frame.

One module per job: :mod:`~ligfit.trace.sequence` (FASTA reading and cleaning),
:mod:`~ligfit.trace.chains` (Cα candidates → oriented chains with residue-type profiles),
:mod:`~ligfit.trace.hmm` (profile-HMM sequence assignment), :mod:`~ligfit.trace.order`
(fragments placed and ordered by the sequence), :mod:`~ligfit.trace.threading` (dynamic-programming
alignment and shuffled-sequence significance),
:mod:`~ligfit.trace.model` (full-atom structures), :mod:`~ligfit.trace.records` (options and
results); this module runs them in order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable

import numpy as np

from ligfit.backbone import contract
from ligfit.backbone.errors import MapTooLargeError, NoProteinDensityError, SequenceMismatchError
from ligfit.backbone.infer import Network, VoxelPredictions, load_network, predict
from ligfit.backbone.residue_types import ResidueTypeClassifier, load_classifier
from ligfit.errors import BadMapError
from ligfit.maps import DensityMap
from ligfit.trace.certainty import displaced_residues, uncertain_chains, uncertain_residues
from ligfit.trace.chains import (
    ca_candidates,
    chain_backbone,
    chain_paths,
    connect,
    direction_evidence,
    link_support,
    lone_residue_backbone,
    orient,
    with_density_types,
)
from ligfit.trace.hmm import assign_all
from ligfit.trace.model import build_structure, chain_names, contact_model, residue_keys, search_model, without_residues
from ligfit.trace.records import (
    BUILD_TRACE,
    COARSEST_RESOLUTION,
    COMPETING_TRACE,
    FRAGMENT_TRACE,
    JOINED_BUILD_TRACE,
    Progress,
    SequenceInput,
    TracedChain,
    TraceOptions,
    TraceResult,
)
from ligfit.trace.secondary import residue_secondary_structure, secondary_structure_map
from ligfit.trace.sequence import read_sequences
from ligfit.trace.threading import (
    BACKGROUND,
    align,
    alignment_table,
    log_odds,
    log_odds_batch,
    name_without_sequence,
    reverse_chain,
    thread,
    thread_all,
)

__all__ = [
    "BACKGROUND",
    "BUILD_TRACE",
    "COARSEST_RESOLUTION",
    "COMPETING_TRACE",
    "FRAGMENT_TRACE",
    "JOINED_BUILD_TRACE",
    "Progress",
    "SequenceInput",
    "TraceOptions",
    "TraceResult",
    "TracedChain",
    "align",
    "alignment_table",
    "build_protein_model",
    "build_structure",
    "ca_candidates",
    "chain_backbone",
    "chain_names",
    "chain_paths",
    "connect",
    "contact_model",
    "check_traceable",
    "direction_evidence",
    "displaced_residues",
    "link_support",
    "log_odds",
    "log_odds_batch",
    "lone_residue_backbone",
    "name_without_sequence",
    "orient",
    "read_sequences",
    "residue_keys",
    "reverse_chain",
    "search_model",
    "thread",
    "thread_all",
    "trace",
    "trace_predictions",
    "uncertain_chains",
    "uncertain_residues",
    "with_density_types",
    "without_residues",
]

log = logging.getLogger(__name__)

#: ``trace``'s options when none are given.
DEFAULT_TRACE = TraceOptions()


def trace(
    density_map: DensityMap,
    resolution: float,
    sequence: SequenceInput = None,
    *,
    options: TraceOptions = DEFAULT_TRACE,
    network: Network | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TraceResult:
    """Build a protein model de novo from ``density_map`` at ``resolution`` Å, threading ``sequence`` when given.

    ``sequence``: a FASTA path, a one-letter sequence, or a list of them (one per distinct chain).
    Raises ``BadMapError`` for maps coarser than 5 Å, ``MapTooLargeError`` for maps over
    ``options.max_voxels`` at 1 Å, ``NoProteinDensityError`` without protein-like density,
    ``SequenceMismatchError`` when no traced chain aligns to the sequence significantly (the best
    HMM E-value times the chains searched above ``options.max_trace_evalue``), ``BadWeightsError`` when the network weights are missing or corrupted.
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
        joined = _joined_trace_evalue(predictions, sequences) if options.sequence_method == "hmm" else None
        if joined is not None:
            # The sequence is this map's (its joined chains align significantly); each fragment still needs its own E-value.
            log.info("sequence matches the joined chains (trace-wide E %.2g); threading the fragments by their own E-values", joined)
            result = trace_predictions(predictions, sequences, options=dataclasses.replace(options, max_trace_evalue=np.inf))
            result.sequence_score["joined_trace_evalue"] = joined
            message = f"{result.message}; the sequence accepted on the joined chains (trace-wide E {joined:.1g})"
        else:
            log.warning("%s; using the trace without the sequence (most likely residue types)", error)
            result = trace_predictions(predictions, None, options=options)
            traced = result.message.split(";")[0]
            message = f"{traced} with the most likely residue types; the sequence was not threaded: {error}"
        result = dataclasses.replace(result, message=message)
    result.timings["network"] = network_seconds
    say(result.message)
    return result


def _joined_trace_evalue(predictions: VoxelPredictions, sequences: list[str] | None) -> float | None:
    """Trace-wide E-value of ``sequences`` on :func:`trace`'s joined chains, or None where it is refused (or no sequence).

    Short fragments rarely reach significance one by one, and the trace-wide E-value multiplies the
    best by the number of chains searched (95 fragments on EMD-3488): the joined chains tell more
    surely whether the sequence belongs to the map.
    """
    if not sequences:
        return None
    try:
        return float(trace_predictions(predictions, sequences, options=DEFAULT_TRACE).sequence_score["trace_evalue"])
    except SequenceMismatchError:
        return None


def check_traceable(density_map: DensityMap, resolution: float, options: TraceOptions = DEFAULT_TRACE) -> None:
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
    options: TraceOptions = DEFAULT_TRACE,
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
    candidates, scores, paths, _ = connect(predictions, options)
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
        if options.sequence_method == "dp":
            chains, sequence_score = thread_all(chains, sequences, options)
            log.info("threaded the sequence: log-odds %.1f, %.1f σ above shuffled sequences", sequence_score["score"], sequence_score["z"])
            message = f"traced {traced} residues in {len(chains)} chains, sequence threaded (z = {sequence_score['z']:.1f})"
        else:
            chains, sequence_score = assign_all(chains, sequences, options)
            log.info(
                "sequence assigned by profile HMMs: best E-value %.2g, %d residues aligned",
                sequence_score["best_evalue"],
                sequence_score["aligned_residues"],
            )
            message = (
                f"traced {traced} residues in {sequence_score['model_chains']} chains, sequence threaded onto "
                f"{sequence_score['aligned_residues']} of them by profile HMMs (best E-value {sequence_score['best_evalue']:.1g})"
            )
            if sequence_score["surplus_pieces_dropped"]:
                message += (
                    f"; {sequence_score['surplus_pieces_dropped']} short pieces no alignment placed were left out "
                    "(the trace held more residues than the sequence has)"
                )
        say("threading", 1, 1)
    else:
        chains = [name_without_sequence(chain, options.unknown_residue) for chain in chains]
        kind = "most likely residue types" if options.unknown_residue == "most-likely" else "poly-alanine"
        message = f"traced {traced} residues in {len(chains)} chains; no sequence given, so {kind}"
        log.warning("no sequence given: the model has %s, not a threaded sequence", kind)
    chains = [dataclasses.replace(chain, secondary_structure=residue_secondary_structure(predictions, chain.ca)) for chain in chains]
    structure = build_structure(chains, predictions.grid, options.side_chains)
    timings["model"] = time.perf_counter() - clock
    say("model", 1, 1)
    return TraceResult(chains, structure, candidates, sequence_score, message, timings, options, secondary_structure_map(predictions))
