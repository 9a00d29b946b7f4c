"""Sequence assignment with profile HMMs (HMMER3 via pyhmmer): known threadings recovered, wrong sequences refused."""

from __future__ import annotations

import numpy as np
import pytest

from ligfit.backbone.errors import SequenceMismatchError
from ligfit.backbone.net import ONE_LETTER
from ligfit.trace import TracedChain, TraceOptions, build_structure
from ligfit.trace.hmm import assign, assign_all, chain_domains, without_surplus
from ligfit.trace.order import model_chains, place_fragments
from ligfit.trace.threading import BACKGROUND

RNG = np.random.default_rng(0)
_FREQUENCIES = np.array([BACKGROUND[a] for a in ONE_LETTER])
SEQUENCE = "".join(RNG.choice(list(ONE_LETTER), 150, p=_FREQUENCIES / _FREQUENCIES.sum()))  # a protein's composition


def chain_on(positions: np.ndarray, right: float = 0.5, seed: int = 1, start: np.ndarray | None = None) -> TracedChain:
    """A straight chain of Cα 3.8 Å apart whose profile puts ``right`` on the sequence's residue at each position."""
    rng = np.random.default_rng(seed)
    probabilities = np.full((len(positions), 20), (1 - right) / 19)
    probabilities[np.arange(len(positions)), [ONE_LETTER.index(SEQUENCE[p]) for p in positions]] = right
    origin = np.zeros(3) if start is None else start
    ca = origin + np.outer(np.arange(len(positions)), [3.8, 0.0, 0.0]) + rng.normal(0, 0.1, (len(positions), 3))
    return TracedChain(ca, ("ALA",) * len(positions), np.full(len(positions), 0.8), probabilities)


def test_hmm_recovers_a_known_threading_with_its_evalue():
    truth = np.arange(40, 100)
    pieces, summary = assign(chain_on(truth), [SEQUENCE], evalue=0.01)
    assert len(pieces) == 1 and summary["evalue"] < 1e-10, summary
    assert np.mean(pieces[0].sequence_positions == truth) > 0.95
    # Read C→N the same chain aligns in reverse and comes back N→C.
    backwards = chain_on(truth)
    backwards = TracedChain(backwards.ca[::-1], backwards.residue_names, backwards.confidence, backwards.aa_probabilities[::-1])
    pieces, _ = assign(backwards, [SEQUENCE], evalue=0.01)
    assert np.mean(pieces[0].sequence_positions == truth) > 0.95


def test_chain_joined_across_two_stretches_is_cut_into_pieces():
    truth = np.concatenate([np.arange(10, 50), np.arange(100, 140)])
    domains = chain_domains(chain_on(truth), [SEQUENCE])
    assert len(domains) >= 2
    pieces, _ = assign(chain_on(truth), [SEQUENCE], evalue=0.01)
    assert len(pieces) == 2
    assigned = np.concatenate([p.sequence_positions for p in pieces])
    assert np.mean(assigned == truth) > 0.9


def test_wrong_sequence_is_refused_with_its_evalue():
    chains = [chain_on(np.arange(20, 80), right=0.3)]
    wrong = "".join(np.random.default_rng(5).permutation(list(SEQUENCE)))
    with pytest.raises(SequenceMismatchError, match="E-value"):
        assign_all(chains, [wrong], TraceOptions())
    # A chain the sequence does not explain keeps its most likely types: nothing is forced on it.
    pieces, summary = assign(chain_on(np.arange(20, 80), right=0.3), [wrong], evalue=0.01)
    assert pieces[0].sequence_positions is None and summary["evalue"] > 0.01


def test_fragments_are_placed_and_ordered_into_one_chain():
    long = chain_on(np.arange(10, 70))
    # A 5-residue fragment two residues past the long chain's end (one residue missing): too short for an E-value.
    fragment = chain_on(np.arange(71, 76), right=0.35, seed=2, start=long.ca[-1] + [7.6, 0.0, 0.0])
    pieces, _ = assign(long, [SEQUENCE], evalue=0.01)
    alone, _ = assign(fragment, [SEQUENCE], evalue=0.01)
    assert alone[0].sequence_positions is None
    placed, count = place_fragments(pieces + alone, [SEQUENCE])
    assert count == 1 and np.array_equal(placed[1].sequence_positions, np.arange(71, 76))
    grouped = model_chains(placed)
    assert len({p.model_chain for p in grouped}) == 1
    structure = build_structure(grouped, side_chains_as="cb")
    assert len(structure[0]) == 1 and len(structure[0][0]) == 65
    assert [r.seqid.num for r in structure[0][0]][-5:] == [72, 73, 74, 75, 76]


def test_unassigned_short_pieces_go_only_while_the_trace_outnumbers_the_sequence():
    assigned = assign(chain_on(np.arange(10, 130)), [SEQUENCE], evalue=0.01)[0]
    assert all(p.sequence_positions is not None for p in assigned)
    loose = [chain_on(np.arange(n), right=0.05, seed=n, start=np.array([0.0, 30.0 + 10 * n, 0.0])) for n in (6, 2, 9, 5)]
    pieces = assigned + loose  # 120 + 22 traced residues
    # 150 sequenced: no surplus, nothing goes.
    kept, dropped = without_surplus(pieces, 150, below=7)
    assert dropped == 0 and len(kept) == len(pieces)
    # 130 sequenced: 12 too many; the 2- and 5-residue pieces go (7), the 6 would overshoot, the 9 is too long to go at all.
    kept, dropped = without_surplus(pieces, 130, below=7)
    assert dropped == 2 and sorted(len(p.ca) for p in kept if p.sequence_positions is None) == [6, 9]
    assert sum(p.sequence_positions is not None for p in kept) == len(assigned)
    # below=0 turns it off.
    kept, dropped = without_surplus(pieces, 100, below=0)
    assert dropped == 0 and len(kept) == len(pieces) and all(a is b for a, b in zip(kept, pieces))
