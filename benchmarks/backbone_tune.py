"""Choose the tracing and threading settings on the validation split (never the test split or the real maps).

Runs the network once per validation pocket (simulated like the benchmark), then:

* ``--part tracing`` sweeps the Cα peak threshold, NMS radius, minimum link support and minimum
  fragment length, scoring the traced Cα with ModelAngelo's recall/precision at 3 Å (Jamali et
  al. 2024); one line per setting, best F1 first.
* ``--part types`` compares weightings of the side-chain density classifier and the network's
  residue-type head by the residue types they give matched Cα (no sequence).
* ``--part threading`` threads each pocket's own sequence and, as the null, the sequence of
  another validation pocket, each against shuffled copies of itself; prints the z-scores and how
  many right and wrong sequences each acceptance rule lets through, with the residue-type match
  of the accepted right ones.

The defaults of ``ligfit.trace.TraceOptions`` come from these tables.

    python benchmarks/backbone_tune.py --part tracing --entries 12
    python benchmarks/backbone_tune.py --part threading --entries 12 --resolutions 3
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.backbone import chain_sequences, match_ca  # noqa: E402
from benchmarks.cases import BENCHMARK_NOISE, data_root  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.backbone.data import read_split, residue_table  # noqa: E402
from ligfit.backbone.infer import WEIGHTS_DIR, load_network, predict  # noqa: E402
from ligfit.backbone.net import AMINO_ACIDS  # noqa: E402
from ligfit.trace import TraceOptions, ca_candidates, chain_paths, thread_all, trace_predictions  # noqa: E402


def validation_cases(entries: int, resolutions: list[float], weights: Path | None) -> list[tuple[str, object, object]]:
    """(entry, reference residues, network predictions) per validation pocket and resolution."""
    root = data_root()
    network = load_network(weights)
    split = read_split(WEIGHTS_DIR / "split.json")
    cases = []
    for entry in split.entries("validation")[:entries]:
        structure = io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb")
        reference = residue_table(structure)
        for resolution in resolutions:
            grid = maps.grid_around(reference.atom_coordinates, 1.0, 4.0)
            density = maps.simulate(structure, resolution, like=grid, use_b_factors=True, noise=BENCHMARK_NOISE, seed=7)
            cases.append((entry, reference, predict(density, network)))
    return cases


def tune_tracing(cases: list) -> None:
    settings = itertools.product([0.15, 0.2, 0.25, 0.3, 0.4], [1.8, 2.2, 2.6], [0.2, 0.3, 0.4], [1, 2, 3])
    rows = []
    for threshold, radius, support, min_chain in settings:
        options = replace(TraceOptions(), ca_threshold=threshold, nms_radius=radius, min_support=support, min_chain=min_chain)
        matched = reference_total = traced_total = 0
        for _, reference, predictions in cases:
            candidates, _ = ca_candidates(predictions, options)
            paths = chain_paths(candidates, predictions, options)
            traced = candidates[np.concatenate(paths)] if paths else np.zeros((0, 3))
            rows_matched, _ = match_ca(reference.ca, traced)
            matched += len(rows_matched)
            reference_total += len(reference)
            traced_total += len(traced)
        recall, precision = matched / reference_total, matched / max(traced_total, 1)
        rows.append((2 * recall * precision / max(recall + precision, 1e-9), recall, precision, threshold, radius, support, min_chain))
    print("| F1 | recall | precision | ca_threshold | nms_radius | min_support | min_chain |\n|---|---|---|---|---|---|---|")
    for row in sorted(rows, reverse=True)[:25]:
        print("| " + " | ".join(f"{v:.3g}" for v in row) + " |")


def tune_types(cases: list) -> None:
    """Residue-type accuracy at matched Cα for weightings of the density classifier and the network's head."""
    print("| density_type_weight | network_type_weight | residue types right (no sequence) |\n|---|---|---|")
    for density_weight, network_weight in ((0.0, 1.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0)):
        options = replace(TraceOptions(), density_type_weight=density_weight, network_type_weight=network_weight)
        right = total = 0
        for _, reference, predictions in cases:
            result = trace_predictions(predictions, options=options)
            ca = np.concatenate([chain.ca for chain in result.chains])
            names = np.array([name for chain in result.chains for name in chain.residue_names])
            matched, columns = match_ca(reference.ca, ca)
            known = reference.aa[matched] >= 0
            truth = np.array([AMINO_ACIDS[a] for a in reference.aa[matched][known]])
            right += int(np.sum(truth == names[columns][known]))
            total += int(known.sum())
        print(f"| {density_weight:g} | {network_weight:g} | {right / max(total, 1):.3f} |")


def tune_threading(cases: list, shuffles: int) -> None:
    """z of the right sequence and of another pocket's sequence, each against its own shuffles."""
    options = replace(TraceOptions(), shuffles=shuffles)
    entries = list(dict.fromkeys(entry for entry, _, _ in cases))
    sequences = {entry: chain_sequences(reference) for entry, reference, _ in cases}
    rows = []
    for entry, reference, predictions in cases:
        wrong_entry = entries[(entries.index(entry) + 1) % len(entries)]
        chains = trace_predictions(predictions, options=options).chains
        for kind, sequence in (("right", sequences[entry]), ("wrong", sequences[wrong_entry])):
            threaded, score = thread_all(chains, sequence, options, require_significance=False)
            ca = np.concatenate([chain.ca for chain in threaded])
            names = np.array([name for chain in threaded for name in chain.residue_names])
            matched, columns = match_ca(reference.ca, ca)
            truth = np.array([AMINO_ACIDS[a] if a >= 0 else "UNK" for a in reference.aa[matched]])
            match = float(np.mean(truth == names[columns])) if len(matched) else 0.0
            rows.append((kind, entry, score["z"], score["empirical_p"], match))
            print(f"{kind:5s} {entry:12s} z {score['z']:6.2f} p {score['empirical_p']:.3f} residue types right {match:.2f}", flush=True)
    print(f"\n{len(cases)} validation maps, {shuffles} shuffles each\n")
    print("| accept when | right accepted | right types (accepted) | wrong accepted |\n|---|---|---|---|")
    for z_floor in (2.0, 3.0, 4.0, 5.0, 6.0):
        for need_all in (False, True):
            accept = [r for r in rows if r[2] >= z_floor and (not need_all or r[3] < 1 / shuffles)]
            right = [r for r in accept if r[0] == "right"]
            wrong = [r for r in accept if r[0] == "wrong"]
            types = f"{np.mean([r[4] for r in right]):.2f}" if right else "–"
            rule = f"z ≥ {z_floor:g}" + (" and above every shuffle" if need_all else "")
            print(f"| {rule} | {len(right)}/{len(cases)} | {types} | {len(wrong)}/{len(cases)} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["tracing", "types", "threading"], default="tracing")
    parser.add_argument("--entries", type=int, default=12)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0, 4.0])
    parser.add_argument("--shuffles", type=int, default=100, help="threading: shuffled sequences per map")
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args(argv)
    if data_root() is None:
        print("benchmarks/backbone_tune.py: the shared data (../shared/data) is not available", file=sys.stderr)
        return 1
    cases = validation_cases(args.entries, args.resolutions, args.weights)
    if args.part == "tracing":
        tune_tracing(cases)
    elif args.part == "types":
        tune_types(cases)
    else:
        tune_threading(cases, args.shuffles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
