"""Threading a sequence onto traced chains: log-odds, dynamic-programming alignment, shuffled-sequence significance."""

from __future__ import annotations

import dataclasses

import numpy as np

from ligfit.backbone.errors import SequenceMismatchError
from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER
from ligfit.trace.records import TracedChain, TraceOptions

#: Background residue frequencies (UniProt), for log-odds threading scores.
BACKGROUND = dict(
    zip(
        "ARNDCQEGHILKMFPSTWYV",
        (8.25, 5.53, 4.06, 5.45, 1.37, 3.93, 6.75, 7.07, 2.27, 5.96, 9.66, 5.84, 2.42, 3.86, 4.70, 6.56, 5.34, 1.08, 2.92, 6.87),
    )
)


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


def alignment_table(scores: np.ndarray, insertion: float, deletion: float, jump: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic programming for a batch (B, rows, columns) of alignment score matrices: best scores and moves.

    Rows are traced residues, columns sequence positions; free sequence ends, linear gaps. Row by
    row; the within-row deletion recursion is a running maximum. Moves: 0 diagonal, 1 insertion
    (row only), 2 deletion (column only), 3 jump: the row aligns anywhere in the sequence after the
    previous row's best cell, at a cost of ``jump`` (a traced chain that joins two pieces which are
    not neighbours in the sequence; off when infinite).
    """
    batch, rows, columns = scores.shape
    best = np.zeros((batch, rows + 1, columns + 1))
    best[:, 1:, 0] = -insertion * np.arange(1, rows + 1)
    move = np.zeros((batch, rows + 1, columns + 1), dtype=np.int8)
    move[:, 1:, 0] = 1
    ramp = deletion * np.arange(columns + 1)
    for i in range(1, rows + 1):
        diagonal = best[:, i - 1, :-1] + scores[:, i - 1]
        jumped = np.zeros_like(diagonal, dtype=bool)
        if np.isfinite(jump) and i > 1:
            restart = best[:, i - 1].max(axis=1, keepdims=True) - jump + scores[:, i - 1]
            jumped = restart > diagonal
            diagonal = np.maximum(diagonal, restart)
        insert = best[:, i - 1, 1:] - insertion
        through = np.concatenate([best[:, i, :1], np.maximum(diagonal, insert)], axis=1)
        lifted = through + ramp
        running = np.maximum.accumulate(lifted, axis=1)
        best[:, i] = running - ramp
        move[:, i, 1:] = np.where(insert > diagonal, 1, np.where(jumped, 3, 0))
        move[:, i, 1:][running[:, 1:] > lifted[:, 1:]] = 2  # compared before removing the ramp: no rounding ties
    return best, move


def align(scores: np.ndarray, insertion: float, deletion: float) -> tuple[float, np.ndarray]:
    """Best alignment of a traced chain (rows) to a sequence (columns), free sequence ends, linear gaps.

    Returns the score and the sequence position of each row (-1 for rows left unaligned).
    """
    score, positions, _ = align_pieces(scores, insertion, deletion)
    return score, positions


def align_pieces(scores: np.ndarray, insertion: float, deletion: float, jump: float = np.inf) -> tuple[float, np.ndarray, list[int]]:
    """:func:`align` allowing jumps (see :func:`alignment_table`): also the rows where a new piece starts."""
    best, move = alignment_table(scores[None], insertion, deletion, jump)
    best, move = best[0], move[0]
    rows = scores.shape[0]
    end = int(np.argmax(best[rows]))
    score = float(best[rows, end])
    positions = np.full(rows, -1)
    starts = []
    i, j = rows, end
    while i > 0:
        step = move[i, j] if j > 0 else 1
        if step == 0:
            positions[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif step == 3:
            positions[i - 1] = j - 1
            starts.append(i - 1)
            i, j = i - 1, int(np.argmax(best[i - 1]))
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return score, positions, sorted(starts)


def thread(chain: TracedChain, sequences: list[str], options: TraceOptions) -> TracedChain:
    """The chain threaded onto its best-fitting sequence, in whichever direction fits better.

    Where the alignment jumps (``options.split_penalty``), ``junctions`` of the result lists the
    residues that start a new piece: :func:`split_at_junctions` cuts the chain there.
    """
    best: tuple[float, int, bool, np.ndarray] | None = None
    for index, sequence in enumerate(sequences):
        for reverse, probabilities in zip((False, True), chain.profiles()):
            score, positions, starts = align_pieces(
                log_odds(probabilities, sequence), options.insertion_penalty, options.deletion_penalty, options.split_penalty
            )
            if best is None or score > best[0]:
                best = (score, index, reverse, positions, starts)
    score, index, reverse, positions, starts = best
    if reverse:
        chain = reverse_chain(chain)
    probabilities = chain.aa_probabilities
    letters = [sequences[index][p] if p >= 0 else ONE_LETTER[int(np.argmax(probabilities[k]))] for k, p in enumerate(positions)]
    names = tuple(AMINO_ACIDS[ONE_LETTER.index(a)] if a in ONE_LETTER else "ALA" for a in letters)
    return dataclasses.replace(
        chain,
        residue_names=names,
        sequence_index=index,
        sequence_positions=positions,
        threading_score=score,
        junctions=tuple(starts),
        evidence="dp",
    )


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
        secondary_structure=None if chain.secondary_structure is None else chain.secondary_structure[::-1],
        junctions=tuple(sorted(len(chain.ca) - 1 - k for k in chain.junctions)),
    )


def sub_chain(chain: TracedChain, start: int, stop: int) -> TracedChain:
    """Residues ``start:stop`` of a chain as a chain of their own (profiles read both ways kept)."""
    forward, backward = chain.profiles()
    length = len(chain.ca)
    return dataclasses.replace(
        chain,
        ca=chain.ca[start:stop],
        confidence=chain.confidence[start:stop],
        aa_probabilities=forward[start:stop],
        aa_probabilities_reversed=backward[length - stop : length - start],
        secondary_structure=None if chain.secondary_structure is None else chain.secondary_structure[start:stop],
        junctions=tuple(k - start for k in chain.junctions if start <= k < stop),
        lone_backbone=None,
        residue_names=chain.residue_names[start:stop],
        sequence_positions=None if chain.sequence_positions is None else chain.sequence_positions[start:stop],
    )


def split_at_junctions(chain: TracedChain) -> list[TracedChain]:
    """A threaded chain cut where its alignment jumped: pieces whose sequence positions each run forwards."""
    bounds = [0, *chain.junctions, len(chain.ca)]
    if len(bounds) == 2:
        return [chain]
    return [sub_chain(dataclasses.replace(chain, junctions=()), a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


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
    return [piece for chain in threaded for piece in split_at_junctions(chain)], summary


def _shuffled_scores(chain: TracedChain, shuffled: list[list[str]], options: TraceOptions) -> np.ndarray:
    """Best alignment score of ``chain`` (either direction) per shuffle: ``shuffled[k][s]`` is shuffle s of sequence k."""
    best = np.full(len(shuffled[0]), -np.inf)
    for copies in shuffled:
        for probabilities in chain.profiles():
            table, _ = alignment_table(
                log_odds_batch(probabilities, copies), options.insertion_penalty, options.deletion_penalty, options.split_penalty
            )
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
