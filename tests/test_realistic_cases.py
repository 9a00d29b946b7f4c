"""The realistic benchmark's unmodelled loop is a loop (benchmarks/realistic_cases.py), not a chain end at the crop.

8AUH_L9I at 3.5 Å, seed 7: the draw falls on B175–178, whose neighbour B174 the 14 Å pocket left out (the crop jumps
from 160 to 175). Removing them made the model's gap run 161–178, 18 residues by its numbering where 4 are missing,
and no whole model has such a gap (docs/benchmarks.md "Round 24"). The next stretch with both neighbours is taken.
"""

from __future__ import annotations

from benchmarks.realistic_cases import realistic_case


def _numbers(structure, chain_name: str) -> set[int]:
    return {residue.seqid.num for chain in structure[0] if chain.name == chain_name for residue in chain}


def test_the_unmodelled_loop_has_modelled_residues_on_both_sides(data):
    case, record = realistic_case(data, "8AUH_L9I", 3.5, seed=7)
    loop = record["loop"].split(",")
    chain = loop[0].rstrip("0123456789")
    removed = sorted(int(label[len(chain) :]) for label in loop)
    assert removed == list(range(removed[0], removed[0] + 4))
    modelled = _numbers(case.model, chain)
    assert not modelled & set(removed)
    assert removed[0] - 1 in modelled and removed[-1] + 1 in modelled
    assert removed[0] - 1 in _numbers(record["truth"], chain)
