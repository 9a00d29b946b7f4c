"""Choose the tracing thresholds on the validation split (never the test split or the real maps).

Runs the network once per validation pocket (simulated like the benchmark, at 2.5, 3 and 4 Å),
then sweeps the Cα peak threshold, NMS radius and minimum link support, scoring the traced Cα
with ModelAngelo's recall/precision at 3 Å (Jamali et al. 2024). Prints one line per setting,
best F1 first; the defaults of ``ligfit.trace.TraceOptions`` come from this table.

    python benchmarks/backbone_tune.py --entries 10
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.backbone import match_ca  # noqa: E402
from benchmarks.cases import BENCHMARK_NOISE, data_root  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.backbone.data import read_split, residue_table  # noqa: E402
from ligfit.backbone.infer import WEIGHTS_DIR, load_network, predict  # noqa: E402
from ligfit.trace import TraceOptions, ca_candidates, chain_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[2.5, 3.0, 4.0])
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args(argv)
    root = data_root()
    network = load_network(args.weights)
    split = read_split(WEIGHTS_DIR / "split.json")
    cases = []
    for entry in split.entries("validation")[: args.entries]:
        structure = io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb")
        reference = residue_table(structure)
        for resolution in args.resolutions:
            grid = maps.grid_around(reference.atom_coordinates, 1.0, 4.0)
            density = maps.simulate(structure, resolution, like=grid, use_b_factors=True, noise=BENCHMARK_NOISE, seed=7)
            cases.append((reference, predict(density, network)))
    settings = itertools.product([0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5], [1.8, 2.2, 2.6, 3.0], [0.1, 0.2, 0.3, 0.4, 0.5])
    rows = []
    for threshold, radius, support in settings:
        options = replace(TraceOptions(), ca_threshold=threshold, nms_radius=radius, min_support=support)
        matched = reference_total = traced_total = 0
        for reference, predictions in cases:
            candidates, _ = ca_candidates(predictions, options)
            paths = chain_paths(candidates, predictions, options)
            traced = candidates[np.concatenate(paths)] if paths else np.zeros((0, 3))
            rows_matched, _ = match_ca(reference.ca, traced)
            matched += len(rows_matched)
            reference_total += len(reference)
            traced_total += len(traced)
        recall, precision = matched / reference_total, matched / max(traced_total, 1)
        rows.append((2 * recall * precision / max(recall + precision, 1e-9), recall, precision, threshold, radius, support))
    print("| F1 | recall | precision | ca_threshold | nms_radius | min_support |\n|---|---|---|---|---|---|")
    for row in sorted(rows, reverse=True):
        print("| " + " | ".join(f"{v:.3g}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
