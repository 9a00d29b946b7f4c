"""Sequence assignment with profile HMMs, as ModelAngelo does it (Jamali et al. 2024, Nature 628:450).

Each traced chain becomes a profile HMM with one match state per traced residue: the match state
emits the residue's predicted amino-acid probabilities, transitions favour matches (a traced
chain is mostly consecutive residues), inserts (sequence residues the trace missed) emit the
background. HMMER3 (through ``pyhmmer``) then searches the given sequences with each chain's HMM
(both directions, local alignment, several domains allowed), and each significant domain assigns
sequence positions to a stretch of the chain. A chain whose best domain is not significant keeps
its most likely residue types: a sequence is never forced onto it.

HMMER's E-values need each HMM's Forward score distribution (``hmmbuild`` calibrates it); here
it is fitted the way HMMER does (:func:`calibrate`): Forward scores of random background
sequences, an exponential tail with λ = log 2 over the top 4 %, seeded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyhmmer
from pyhmmer.easel import Alphabet, DigitalSequenceBlock, TextSequence
from pyhmmer.plan7 import HMM, Background, Pipeline, Transitions

from ligfit.backbone.errors import SequenceMismatchError
from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER
from ligfit.trace.order import model_chains, place_fragments
from ligfit.trace.records import TracedChain, TraceOptions
from ligfit.trace.threading import reverse_chain, split_at_junctions, sub_chain, thread

ALPHABET = Alphabet.amino()
#: HMMER's column of each of ligfit's residue-type columns (ONE_LETTER order → ACDEFGHIKLMNPQRSTVWY).
_HMMER_ORDER = np.array([ONE_LETTER.index(letter) for letter in ALPHABET.symbols[:20]])
_LOG2 = float(np.log(2.0))
#: Residues two domains of one chain may share and still both count (their pieces are cut between them).
OVERLAP = 4
#: HMMER's calibration of the Forward filter: sequences, their length, the tail fitted.
CALIBRATION = (200, 100, 0.04)


@dataclass(frozen=True)
class Domain:
    """One local alignment of a chain (read ``reverse`` or not) to sequence ``sequence_index``."""

    sequence_index: int
    reverse: bool
    score: float  # bits
    evalue: float  # independent E-value (HMMER's i-Evalue), per chain and direction
    chain_from: int  # 0-based, inclusive: traced residues covered
    chain_to: int
    positions: np.ndarray  # (chain_to - chain_from + 1,) sequence position of each, -1 where the alignment deletes it


def chain_hmm(name: str, probabilities: np.ndarray, match: float = 0.95, extend: float = 0.3) -> HMM:
    """A profile HMM of a traced chain: match state k emits residue k's amino-acid probabilities (L, 20, ligfit order).

    Match→match ``match``, the rest split between insert and delete; inserts and deletes extend
    with ``extend``. ModelAngelo sets match→match from each residue's confidence (≥ 0.5) and
    extension 0.05; on EMD-3488 (P(Cα) as the confidence) that aligned 53 % of the matched
    residues right against 67 % with 0.9 / 0.3 (``benchmarks/backbone.py``).
    """
    length = len(probabilities)
    hmm = HMM(ALPHABET, M=length, name=name)
    emissions = np.clip(np.asarray(probabilities, dtype=np.float64)[:, _HMMER_ORDER], 1e-4, None)
    emitted = np.asarray(hmm.match_emissions)
    emitted[1:] = emissions / emissions.sum(axis=1, keepdims=True)
    background = np.asarray(Background(ALPHABET).residue_frequencies)[:20]
    np.asarray(hmm.insert_emissions)[:] = background / background.sum()
    t = np.asarray(hmm.transition_probabilities)
    t[0] = [1.0, 0.0, 0.0, 1.0 - extend, extend, 1.0, 0.0]  # begin: straight into the first match state
    t[1:, Transitions.MM] = match
    t[1:, Transitions.MI] = t[1:, Transitions.MD] = (1.0 - match) / 2
    t[1:, Transitions.IM] = t[1:, Transitions.DM] = 1.0 - extend
    t[1:, Transitions.II] = t[1:, Transitions.DD] = extend
    t[length, Transitions.MI] = 1.0 - match
    t[length, Transitions.MD] = 0.0
    t[length, Transitions.DM], t[length, Transitions.DD] = 1.0, 0.0
    hmm.set_composition()
    hmm.set_consensus()
    hmm.validate(tolerance=1e-3)
    return hmm


def calibrate(hmm: HMM, seed: int = 0) -> HMM:
    """Set ``hmm``'s E-value parameters as ``hmmbuild`` would: Forward tail of random background sequences.

    λ = log 2 (HMMER's fixed slope for bit scores); τ from the top ``CALIBRATION[2]`` of
    ``CALIBRATION[0]`` random sequences of length ``CALIBRATION[1]`` drawn from HMMER's background.
    """
    count, length, tail = CALIBRATION
    rng = np.random.default_rng(seed)
    background = np.asarray(Background(ALPHABET).residue_frequencies)[:20].astype(float)
    letters = np.array(list(ALPHABET.symbols[:20]))
    draws = rng.choice(20, size=(count, length), p=background / background.sum())
    randoms = [TextSequence(name=f"r{k}", sequence="".join(letters[row])).digitize(ALPHABET) for k, row in enumerate(draws)]
    parameters = hmm.evalue_parameters
    parameters.m_lambda = parameters.v_lambda = parameters.f_lambda = _LOG2
    parameters.m_mu = parameters.v_mu = parameters.f_tau = 0.0
    pipeline = _pipeline(null2=False, Z=count, T=-1e9, domT=-1e9)
    found = sorted((hit.score for hit in pipeline.search_hmm(hmm, DigitalSequenceBlock(ALPHABET, randoms))), reverse=True)
    scores = np.full(count, -1e3)
    scores[: len(found)] = found
    threshold = float(np.sort(scores)[::-1][max(int(round(tail * count)) - 1, 0)])
    parameters.f_tau = threshold + np.log(tail) / _LOG2
    parameters.m_mu = parameters.v_mu = parameters.f_tau  # filters are off (F1 = F2 = F3 = 1): only Forward counts
    return hmm


def chain_domains(chain: TracedChain, sequences: list[str], seed: int = 0, evalue: float = 10.0, sharpness: float = 1.0) -> list[Domain]:
    """Every local alignment (HMMER domain) of ``chain``, read either way, to the distinct ``sequences``, best first.

    Match states emit the chain's probabilities raised to ``sharpness`` (renormalised): below 1 they are flattened.
    """
    targets = DigitalSequenceBlock(
        ALPHABET,
        [
            TextSequence(name=str(k), sequence="".join(a if a in ONE_LETTER else "X" for a in s)).digitize(ALPHABET)
            for k, s in enumerate(sequences)
        ],
    )
    found: list[Domain] = []
    for reverse, probabilities in zip((False, True), chain.profiles()):
        flattened = np.clip(probabilities, 1e-6, None) ** sharpness
        hmm = calibrate(chain_hmm("chain", flattened / flattened.sum(axis=1, keepdims=True)), seed)
        pipeline = _pipeline(Z=len(sequences), E=evalue, domE=evalue)
        for hit in pipeline.search_hmm(hmm, targets):
            for domain in hit.domains:
                if domain.reported:
                    found.append(_domain(domain, int(hit.name), reverse))
    return sorted(found, key=lambda d: -d.score)


def _pipeline(null2: bool = True, **thresholds) -> Pipeline:
    """HMMER's pipeline with its filters off (every sequence gets a Forward score); null2 corrects composition bias."""
    return Pipeline(ALPHABET, bias_filter=False, null2=null2, F1=1.0, F2=1.0, F3=1.0, seed=42, **thresholds)


def _domain(domain: pyhmmer.plan7.Domain, sequence_index: int, reverse: bool) -> Domain:
    alignment = domain.alignment
    model, target = alignment.hmm_sequence, alignment.target_sequence
    k, j = alignment.hmm_from - 1, alignment.target_from - 1
    positions = np.full(alignment.hmm_to - alignment.hmm_from + 1, -1)
    for m, t in zip(model, target):
        is_state, is_residue = m != ".", t != "-"
        if is_state and is_residue:
            positions[k - alignment.hmm_from + 1] = j
        k += is_state
        j += is_residue
    return Domain(
        sequence_index, reverse, float(domain.score), float(domain.i_evalue), alignment.hmm_from - 1, alignment.hmm_to - 1, positions
    )


def assign(
    chain: TracedChain, sequences: list[str], evalue: float, seed: int = 0, extend: bool = True, sharpness: float = 1.0
) -> tuple[list[TracedChain], dict]:
    """``chain`` cut into pieces by its significant domains (E ≤ ``evalue``), each threaded by its alignment.

    The best domain fixes the direction; further domains of that direction that cover other
    residues (a chain joined across two stretches of sequence) each give a piece of their own.
    Residues between domains go to the nearer piece, unaligned (most likely type). Without a
    significant domain the chain comes back whole with its most likely types. The dict: the best
    domain's score and E-value, and how many residues were aligned.
    """
    domains = chain_domains(chain, sequences, seed, sharpness=sharpness)
    best = domains[0] if domains else None
    summary = {"score": best.score if best else 0.0, "evalue": best.evalue if best else float("inf"), "aligned": 0}
    if best is None or best.evalue > evalue:
        return [_most_likely(chain)], summary
    if best.reverse:
        chain = reverse_chain(chain)
    kept: list[Domain] = []
    for domain in domains:
        if domain.reverse == best.reverse and domain.evalue <= evalue:
            if all(min(domain.chain_to, d.chain_to) - max(domain.chain_from, d.chain_from) < OVERLAP for d in kept):
                kept.append(domain)
    kept.sort(key=lambda d: d.chain_from)
    bounds = [0] + [(a.chain_to + b.chain_from + 1) // 2 for a, b in zip(kept[:-1], kept[1:])] + [len(chain.ca)]
    pieces = []
    for domain, start, stop in zip(kept, bounds[:-1], bounds[1:]):
        positions = np.full(len(chain.ca), -1)
        positions[domain.chain_from : domain.chain_to + 1] = domain.positions
        if extend:
            positions = _extended(positions, start, stop, len(sequences[domain.sequence_index]))
        piece = _threaded(chain, positions, sequences[domain.sequence_index], domain)
        pieces.append(_slice(piece, start, stop) if len(kept) > 1 else piece)
    summary["aligned"] = int(sum((p.sequence_positions >= 0).sum() for p in pieces))
    return pieces, summary


def _extended(positions: np.ndarray, start: int, stop: int, length: int) -> np.ndarray:
    """Alignment carried without gaps from its first and last aligned residue to ``start`` and ``stop``, inside the sequence."""
    aligned = np.flatnonzero(positions >= 0)
    if len(aligned) == 0:
        return positions
    out = positions.copy()
    first, last = aligned[0], aligned[-1]
    before = np.arange(start, first)
    out[before] = positions[first] - (first - before)
    after = np.arange(last + 1, stop)
    out[after] = positions[last] + (after - last)
    out[(out < -0) | (out >= length)] = -1
    return out


def _threaded(chain: TracedChain, positions: np.ndarray, sequence: str, domain: Domain) -> TracedChain:
    letters = [sequence[p] if p >= 0 else ONE_LETTER[int(np.argmax(chain.aa_probabilities[k]))] for k, p in enumerate(positions)]
    names = tuple(AMINO_ACIDS[ONE_LETTER.index(a)] if a in ONE_LETTER else "ALA" for a in letters)
    return dataclasses.replace(
        chain,
        residue_names=names,
        sequence_index=domain.sequence_index,
        sequence_positions=positions,
        threading_score=domain.score,
        evidence="hmm",
    )


def _slice(chain: TracedChain, start: int, stop: int) -> TracedChain:
    return dataclasses.replace(sub_chain(chain, start, stop), sequence_index=chain.sequence_index, threading_score=chain.threading_score)


def _most_likely(chain: TracedChain) -> TracedChain:
    names = tuple(AMINO_ACIDS[i] for i in np.argmax(chain.aa_probabilities, axis=1))
    return dataclasses.replace(
        chain, residue_names=names, sequence_index=None, sequence_positions=None, threading_score=0.0, evidence="none"
    )


def without_surplus(pieces: list[TracedChain], sequence_residues: int, below: int) -> tuple[list[TracedChain], int]:
    """``pieces`` without unassigned ones shorter than ``below``, shortest first, while more residues are traced than sequenced.

    The sequences (every copy) say how many residues the protein has; a trace holding more has at
    least that many false ones, and short pieces no alignment placed are where they sit (EMD-3488:
    14 of 16 residues in unassigned pieces of 4–6 lie on no deposited Cα). Returns the pieces kept
    and how many were dropped.
    """
    surplus = sum(len(piece.ca) for piece in pieces) - sequence_residues
    candidates = sorted(
        (index for index, piece in enumerate(pieces) if piece.sequence_positions is None and len(piece.ca) < below),
        key=lambda index: len(pieces[index].ca),
    )
    dropped = set()
    for index in candidates:
        if len(pieces[index].ca) > surplus:
            break
        dropped.add(index)
        surplus -= len(pieces[index].ca)
    return [piece for index, piece in enumerate(pieces) if index not in dropped], len(dropped)


def assign_all(chains: list[TracedChain], sequences: list[str], options: TraceOptions) -> tuple[list[TracedChain], dict]:
    """Every chain assigned by its HMM (:func:`assign`), fragments placed next to threaded pieces, pieces grouped into model chains.

    Refused (``SequenceMismatchError``) unless the best domain's E-value times the number of
    chains searched (the trace-wide E-value: any chain might hit by chance) is at most
    ``options.max_trace_evalue``. Copies in ``sequences`` (a homo-oligomer's FASTA) count once.
    """
    distinct = list(dict.fromkeys(sequences))
    pieces: list[TracedChain] = []
    found = []
    for chain in chains:
        assigned, summary = assign(chain, distinct, options.max_evalue, options.seed, sharpness=options.hmm_sharpness)
        # a chain cut between two domains may leave a one-residue piece with no backbone to build it from: dropped
        pieces += [piece for piece in assigned if len(piece.ca) >= 2 or piece.lone_backbone is not None]
        found.append(summary)
    best = min(found, key=lambda s: s["evalue"]) if found else {"score": 0.0, "evalue": float("inf")}
    trace_evalue = best["evalue"] * max(len(chains), 1)
    if trace_evalue > options.max_trace_evalue:
        raise SequenceMismatchError(
            f"the sequence does not match the traced chains: best HMM alignment {best['score']:.1f} bits, E-value {best['evalue']:.2g} "
            f"over {len(chains)} chains (trace-wide E = {trace_evalue:.2g}, needs ≤ {options.max_trace_evalue:g}); "
            "check that the FASTA is for this map, or trace without --sequence"
        )
    placed_pieces, placed = place_fragments(pieces, distinct, options.min_register_z)
    pruned = sum(p.sequence_positions is None and len(p.ca) < options.prune_unassigned for p in placed_pieces)
    placed_pieces = [p for p in placed_pieces if p.sequence_positions is not None or len(p.ca) >= options.prune_unassigned]
    placed_pieces, surplus_pruned = without_surplus(placed_pieces, sum(map(len, sequences)), options.prune_surplus_below)
    filled = 0
    if options.fill_unassigned:
        completed = []
        for piece in placed_pieces:
            if piece.sequence_positions is None and len(piece.ca) >= options.fill_unassigned:
                completed += split_at_junctions(thread(piece, distinct, options))
                filled += 1
            else:
                completed.append(piece)
        placed_pieces = completed
    grouped = model_chains(placed_pieces)
    summary = {
        "method": "profile HMM (HMMER3 via pyhmmer)",
        "score": float(sum(s["score"] for s in found if s["evalue"] <= options.max_evalue)),
        "best_evalue": best["evalue"],
        "trace_evalue": trace_evalue,
        "chains_threaded": int(sum(s["evalue"] <= options.max_evalue for s in found)),
        "chains_searched": len(chains),
        "fragments_placed": placed,
        "chains_filled_by_dp": filled,
        "chains_pruned": pruned,
        "surplus_pieces_dropped": surplus_pruned,
        "aligned_residues": int(sum((p.sequence_positions >= 0).sum() for p in grouped if p.sequence_positions is not None)),
        "model_chains": len({p.model_chain for p in grouped}),
    }
    return grouped, summary
