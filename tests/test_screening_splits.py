"""The screening benchmark's splits (benchmarks/screening.py, ``--disjoint``): each recorded split is what its seed draws,
and a new split holds no pocket of any earlier one, whatever ``--entries`` each had (seeds 25–33, drawn with 8 pockets
against earlier splits rebuilt with 8 instead of the 12 they held, shared 35 pockets with seeds 1–24)."""

from __future__ import annotations

from benchmarks.screening import earlier_splits, recorded_splits, split_order


def test_the_recorded_splits_are_the_draws_of_their_seeds(data):
    from benchmarks.cases import complex_entries

    rows = complex_entries(data)
    recorded = recorded_splits()
    assert set(range(1, 34)) <= set(recorded)
    taken: list[str] = []
    for seed in range(1, 25):  # each drawn disjoint from the ones before it, 12 pockets
        assert recorded[seed] == split_order(rows, seed, taken)[:12]
        taken += recorded[seed]
    assert len(set(taken)) == 24 * 12
    later = [entry for seed in range(25, 34) for entry in recorded[seed]]
    assert len(set(later)) == 9 * 8 and len(set(later) & set(taken)) == 35  # disjoint among themselves, not from 1–24


def test_a_new_split_holds_no_pocket_of_an_earlier_one(data):
    from benchmarks.cases import complex_entries

    rows = complex_entries(data)
    recorded = recorded_splits()
    everything = {entry for entries in recorded.values() for entry in entries}
    following = max(recorded) + 1
    for count in (8, 12):
        earlier = earlier_splits(rows, following, count)
        assert everything <= set(earlier)
        new = split_order(rows, following, earlier)[:count]
        assert len(new) == count and not set(new) & set(earlier)
