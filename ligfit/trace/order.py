"""Fragments ordered by the sequence: unassigned chains placed next to threaded ones, pieces grouped into model chains.

After the HMM search (:mod:`ligfit.trace.hmm`) long chains carry the sequence; short ones rarely
reach significance on their own. A short chain that starts where a threaded piece ends (or ends
where one starts) can only continue that piece's sequence a few residues on: the register is
fixed by the distance up to a handful of missing residues, so its profile need only pick one of
a few registers (both directions), not a place in the whole sequence. It is placed when its best
register stands ``min_z`` σ above all its registers in that sequence. Placed chains extend the
frontier in turn, best first. Threaded pieces whose sequence ranges follow each other and whose
ends are close enough for the residues between them make one model chain (one chain ID).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER
from ligfit.trace.records import TracedChain
from ligfit.trace.threading import log_odds, reverse_chain

RISE = 3.8  # Å between consecutive Cα
#: Å a missing stretch of m residues may span at most: m + 1 links of 3.8 Å plus slack.
SLACK = 1.0


def _ends(piece: TracedChain) -> tuple[tuple[int, np.ndarray], tuple[int, np.ndarray]] | None:
    """(first aligned position, its Cα), (last aligned position, its Cα) of a threaded piece."""
    if piece.sequence_positions is None:
        return None
    aligned = np.flatnonzero(piece.sequence_positions >= 0)
    if len(aligned) == 0:
        return None
    first, last = aligned[0], aligned[-1]
    return (int(piece.sequence_positions[first]), piece.ca[first]), (int(piece.sequence_positions[last]), piece.ca[last])


def place_fragments(
    pieces: list[TracedChain], sequences: list[str], min_z: float = 2.0, extra_missing: int = 3, reach: float = 12.0
) -> tuple[list[TracedChain], int]:
    """Unthreaded chains placed by register next to threaded pieces (see the module); returns the pieces and how many were placed."""
    pieces = list(pieces)
    placed = 0
    while True:
        best = None
        for u, chain in enumerate(pieces):
            if chain.sequence_positions is not None or len(chain.ca) < 2:
                continue
            candidate = _best_register(chain, pieces, sequences, extra_missing, reach)
            if candidate is not None and candidate[0] >= min_z and (best is None or candidate[0] > best[0]):
                best = (*candidate, u)
        if best is None:
            return pieces, placed
        _, reverse, index, start, u = best
        chain = reverse_chain(pieces[u]) if reverse else pieces[u]
        sequence = sequences[index]
        positions = np.arange(start, start + len(chain.ca))
        positions[(positions < 0) | (positions >= len(sequence))] = -1
        letters = [sequence[p] if p >= 0 else ONE_LETTER[int(np.argmax(chain.aa_probabilities[k]))] for k, p in enumerate(positions)]
        names = tuple(AMINO_ACIDS[ONE_LETTER.index(a)] if a in ONE_LETTER else "ALA" for a in letters)
        pieces[u] = dataclasses.replace(chain, residue_names=names, sequence_index=index, sequence_positions=positions, evidence="register")
        placed += 1


def _best_register(
    chain: TracedChain, pieces: list[TracedChain], sequences: list[str], extra_missing: int, reach: float
) -> tuple[float, bool, int, int] | None:
    """(z, reverse, sequence index, start position) of the chain's best register next to a threaded piece's end."""
    best = None
    for reverse, probabilities in zip((False, True), chain.profiles()):
        ca = chain.ca[::-1] if reverse else chain.ca
        scores = {}
        for piece in pieces:
            ends = _ends(piece)
            if ends is None:
                continue
            (first, first_ca), (last, last_ca) = ends
            index = piece.sequence_index
            length = len(sequences[index])
            if index not in scores:
                scores[index] = _register_scores(probabilities, sequences[index])
            table = scores[index]
            for gap, after, before in (
                (float(np.linalg.norm(ca[0] - last_ca)), last, None),
                (float(np.linalg.norm(ca[-1] - first_ca)), None, first),
            ):
                if gap > reach:
                    continue
                fewest = max(int(np.ceil((gap - SLACK) / RISE)) - 1, 0)
                for missing in range(fewest, fewest + extra_missing + 1):
                    # after a piece's last residue, or ending before its first one
                    start = after + 1 + missing if after is not None else before - 1 - missing - (len(ca) - 1)
                    if -len(ca) < start < length and start + len(ca) > 0:
                        z = (table[start + len(ca) - 1] - table.mean()) / (table.std() or 1.0)
                        if best is None or z > best[0]:
                            best = (float(z), reverse, index, int(start))
    return best


def _register_scores(probabilities: np.ndarray, sequence: str) -> np.ndarray:
    """Ungapped log-odds of the chain at every register: entry r has the chain's last residue on sequence position r − L + 1 + …

    Index ``start + L - 1`` for a chain starting at ``start`` (−L < start < len(sequence)); residues off the sequence score 0.
    """
    table = log_odds(probabilities, sequence)  # (L, M)
    rows, columns = table.shape
    padded = np.zeros((rows, columns + 2 * rows))
    padded[:, rows : rows + columns] = table
    registers = columns + rows - 1
    k = np.arange(rows)
    return np.array([padded[k, rows + (r - rows + 1) + k].sum() for r in range(registers)])


def model_chains(pieces: list[TracedChain]) -> list[TracedChain]:
    """Threaded pieces grouped into model chains (``model_chain``): sequence ranges in order, ends within reach of the gap.

    Links cheapest first (fewest missing residues), each piece with at most one predecessor and
    one successor in one sequence copy; unthreaded chains are model chains of their own. Returned
    in model-chain order, each chain's pieces in sequence order.
    """
    ends = [_ends(piece) for piece in pieces]
    links = []
    for a, end_a in enumerate(ends):
        for b, end_b in enumerate(ends):
            if a == b or end_a is None or end_b is None or pieces[a].sequence_index != pieces[b].sequence_index:
                continue
            (_, _), (last, last_ca) = end_a
            (first, first_ca), (_, _) = end_b
            missing = first - last - 1
            if missing >= 0 and np.linalg.norm(first_ca - last_ca) <= RISE * (missing + 1) + SLACK:
                links.append((missing, a, b))
    successor, predecessor = {}, {}
    group = list(range(len(pieces)))

    def root(k: int) -> int:
        while group[k] != k:
            group[k] = group[group[k]]
            k = group[k]
        return k

    for _, a, b in sorted(links):
        if a not in successor and b not in predecessor and root(a) != root(b):
            successor[a], predecessor[b] = b, a
            group[root(a)] = root(b)
    roots = [root(k) for k in range(len(pieces))]
    labels = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    labelled = [dataclasses.replace(piece, model_chain=labels[r]) for piece, r in zip(pieces, roots)]
    first = [e[0][0] if e is not None else 0 for e in ends]
    return [labelled[k] for k in sorted(range(len(pieces)), key=lambda k: (labelled[k].model_chain, first[k]))]
