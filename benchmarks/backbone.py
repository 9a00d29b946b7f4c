"""De novo tracing benchmark: Cα recall/precision at 3 Å, backbone RMSD, sequence match, time.

Metrics follow ModelAngelo (Jamali et al. 2024, Nature 628:450): a reference Cα is recalled when a
traced Cα lies within 3 Å (one-to-one matching, Hungarian assignment on distances ≤ 3 Å);
precision is the fraction of traced Cα matched; RMSD is over matched Cα pairs; sequence match is
the fraction of matched residues whose residue type is right: "sequence_match" for the most
likely types (no sequence given: side-chain density classifier and network head), "threaded"
after threading the reference sequence (blank where the threading was refused as no better than
shuffled sequences), "final" what ``build --sequence`` ends with (threaded where accepted);
"sequence_z" is the threading's significance: the best chain's HMMER E-value (profile HMM
assignment, ``ligfit.trace.hmm``, the default) or z against shuffled sequences (``--sequence-method dp``).
"types_deposited_frames" is the residue-type classifier's top-1 on the *deposited* backbone (N, Cα, C) in the same
map: its ceiling there. The gap to "sequence_match" is roughly what the traced frames cost (roughly: that column
also mixes in the network's own type head and counts every Cα matched within 3 Å).
"chains" counts the model's chains (lone residues included; pieces the sequence orders into one
chain count once). Helix and strand F1 are per residue:
the traced model's secondary structure (``ligfit.trace.secondary``) against a DSSP-like H-bond
assignment of the reference model (``ligfit.backbone.data.secondary_structure``: DSSP's
electrostatic H-bond energy, 4-/3-turns for helix, bridges for strand), over Cα matched within 3 Å.

On the real haemoglobin map the benchmark also scores ModelAngelo's model of the same map
(``peers/modelangelo_EMD-3488``, shifted by −14.70 Å on each axis into this map's frame, as its
README says) with the same definitions (its secondary structure from the same H-bond assignment of its own backbone).

Sets (../shared/data via benchmarks.cases):
  simulated  the held-out test split's PoseBusters pockets (ligfit/backbone/weights/split.json),
             simulated at 3 Å with B-factor blur and noise σ = 0.2 of the mean atom density
  real       apoferritin EMD-20026 (~1.75 Å), ribosomal protein 3J6B chain 9 in EMD-2566 (3.2 Å),
             haemoglobin EMD-3488 (3.2 Å) scored against 5NI1, the model built into that map

    python benchmarks/backbone.py --quick      # 4 simulated test pockets + the 3 real maps
    python benchmarks/backbone.py              # every test pocket + the real maps
    python benchmarks/backbone.py --sets real  # the real maps only, with ModelAngelo's row

Prints a Markdown table and writes one CSV row per case (default benchmarks/results/backbone.csv).
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import BENCHMARK_NOISE, data_root  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.backbone.data import ResidueTable, read_split, residue_table  # noqa: E402
from ligfit.backbone.infer import WEIGHTS_DIR, load_network, predict  # noqa: E402
from ligfit.backbone.net import AMINO_ACIDS, ONE_LETTER  # noqa: E402
from ligfit.backbone.residue_types import ResidueTypeClassifier, load_classifier  # noqa: E402
from ligfit.errors import LigfitError  # noqa: E402
from ligfit.trace import TraceOptions, TraceResult, check_traceable, trace_predictions  # noqa: E402
from ligfit.trace.secondary import f1_scores  # noqa: E402

MATCH_DISTANCE = 3.0
REAL_MAPS = {
    "apoferritin EMD-20026": (
        "em/maps_with_models/EMD-20026_apoferritin_crop/emd20026_prot.mrc",
        "em/maps_with_models/EMD-20026_apoferritin_crop/3ajo_fitted_refined.pdb",
        1.75,
    ),
    "3J6B chain 9 EMD-2566": (
        "em/maps_with_models/EMD-2566_3J6B_chain9/emd_2566_3J6B_chain9_crop.mrc",
        "em/maps_with_models/EMD-2566_3J6B_chain9/3J6B_chain9.pdb",
        3.2,
    ),
    "haemoglobin EMD-3488 vs 5NI1": (
        "em/maps_with_models/EMD-3488_5ME2_hemoglobin/emd_3488.mrc",
        "em/maps_with_models/EMD-3488_5ME2_hemoglobin/5ni1_updated.cif",
        3.2,
    ),
}
#: ModelAngelo's model of EMD-3488 and its frame offset to the 100³ map (peers/modelangelo_EMD-3488/README.md).
MODELANGELO = ("peers/modelangelo_EMD-3488/modelangelo_5ni1.cif", -14 * 1.05)


def match_ca(reference: np.ndarray, traced: np.ndarray, cutoff: float = MATCH_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (reference index, traced index) within ``cutoff`` Å, maximising the number matched."""
    if len(reference) == 0 or len(traced) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    distance = np.linalg.norm(reference[:, None] - traced[None], axis=-1)
    cost = np.where(distance <= cutoff, distance / cutoff, 10.0)
    rows, columns = linear_sum_assignment(cost)
    good = distance[rows, columns] <= cutoff
    return rows[good], columns[good]


def scores(reference: ResidueTable, result: TraceResult) -> dict[str, float]:
    """ModelAngelo-style scores of a trace against a reference model."""
    traced_ca = np.concatenate([chain.ca for chain in result.chains]) if result.chains else np.zeros((0, 3))
    traced_names = [name for chain in result.chains for name in chain.residue_names]
    traced_ss = np.concatenate([_ss(chain) for chain in result.chains]) if result.chains else np.zeros(0, dtype=int)
    return model_scores(reference, traced_ca, traced_names, traced_ss, result.model_chain_count)


def _ss(chain) -> np.ndarray:
    return chain.secondary_structure if chain.secondary_structure is not None else np.full(len(chain.ca), 2)


def model_scores(reference: ResidueTable, ca: np.ndarray, names: list[str], ss: np.ndarray, chains: int) -> dict[str, float]:
    """Recall, precision, Cα RMSD, sequence match and helix/strand F1 of a model's Cα (with names and SS) vs a reference."""
    rows, columns = match_ca(reference.ca, ca)
    truth = np.array([AMINO_ACIDS[a] if a >= 0 else "UNK" for a in reference.aa])
    matched = max(len(rows), 1)
    return {
        "reference_residues": len(reference),
        "traced_residues": len(ca),
        "chains": chains,
        "recall": len(rows) / max(len(reference), 1),
        "precision": len(rows) / max(len(ca), 1),
        "ca_rmsd": float(np.sqrt(np.mean(np.sum((reference.ca[rows] - ca[columns]) ** 2, axis=1)))) if len(rows) else float("nan"),
        "sequence_match": float(np.sum(truth[rows] == np.array(names)[columns]) / matched) if len(rows) else 0.0,
        **f1_scores(reference.ss, np.asarray(ss), rows, columns),
    }


def modelangelo_row(root: Path) -> dict | None:
    """ModelAngelo's model of EMD-3488 scored against 5NI1 like a trace (None where peers/ is absent)."""
    path, offset = MODELANGELO
    if not (root / path).is_file():
        return None
    model = residue_table(io.read_structure(root / path))
    shifted = model.ca + offset
    names = [AMINO_ACIDS[a] if a >= 0 else "UNK" for a in model.aa]
    _, reference_path, resolution = REAL_MAPS["haemoglobin EMD-3488 vs 5NI1"]
    reference = residue_table(io.read_structure(root / reference_path))
    found = model_scores(reference, shifted, names, model.ss, len(dict.fromkeys(model.chain)))  # its SS: same H-bond rule
    row = {"set": "real", "case": "ModelAngelo's model of EMD-3488 vs 5NI1", "resolution": resolution}
    row.update(found)
    row["threaded_sequence_match"] = row["final_sequence_match"] = found["sequence_match"]
    row["final_recall"], row["final_precision"], row["final_chains"] = found["recall"], found["precision"], found["chains"]
    row["sequence_z"] = "its own"
    return row


def chain_sequences(reference: ResidueTable) -> list[str]:
    """One sequence per chain of the reference model (its modelled residues, in order)."""
    return [
        "".join(ONE_LETTER[a] if a >= 0 else "X" for a in reference.aa[reference.chain == name]) for name in dict.fromkeys(reference.chain)
    ]


def run_case(
    name: str,
    kind: str,
    density: maps.DensityMap,
    reference: ResidueTable,
    resolution: float,
    network,
    options: TraceOptions | None = None,
    residue_types: ResidueTypeClassifier | None = None,
) -> dict:
    row = {
        "set": kind,
        "case": name,
        "resolution": resolution,
        "grid_1A": "×".join(str(int(np.ceil(e))) for e in np.asarray(density.shape) * density.voxel_size),
    }
    started = time.perf_counter()
    check_traceable(density, resolution)
    predictions = predict(density, network)
    untreaded = trace_predictions(predictions, residue_types=residue_types)  # what `trace` does without a sequence, timed as a whole
    row["seconds"] = round(time.perf_counter() - started, 1)
    row.update({k: v for k, v in scores(reference, untreaded).items()})
    row["types_deposited_frames"] = deposited_frame_types(predictions, reference, residue_types or load_classifier())
    try:
        threaded = trace_predictions(
            predictions, chain_sequences(reference), options=options or TraceOptions(), residue_types=residue_types
        )
        threaded_scores = scores(reference, threaded)
        row["threaded_sequence_match"] = threaded_scores["sequence_match"]
        score = threaded.sequence_score
        row["sequence_z"] = f"E {score['best_evalue']:.1g}" if "best_evalue" in score else round(score["z"], 1)
    except LigfitError as error:  # a refused threading (sequence no better than shuffled) is a measured outcome
        row["threaded_sequence_match"] = float("nan")
        row["sequence_z"] = f"refused: {type(error).__name__}"
        threaded_scores = scores(reference, untreaded)
    row["final_recall"], row["final_precision"] = threaded_scores["recall"], threaded_scores["precision"]
    row["final_chains"] = threaded_scores["chains"]
    # What `build --sequence` ends with: the threaded types where the sequence was accepted, else the most likely ones.
    accepted = not np.isnan(row["threaded_sequence_match"])
    row["final_sequence_match"] = row["threaded_sequence_match"] if accepted else row["sequence_match"]
    row["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def deposited_frame_types(predictions, reference: ResidueTable, classifier: ResidueTypeClassifier) -> float:
    """The classifier's top-1 accuracy on the deposited backbone (N, Cα, C) in the same map: its ceiling on this map."""
    known = (reference.aa >= 0) & np.all(np.isfinite(np.concatenate([reference.n, reference.ca, reference.c], axis=1)), axis=1)
    probabilities = classifier.probabilities(predictions.grid, reference.n[known], reference.ca[known], reference.c[known])
    return float(np.mean(probabilities.argmax(axis=1) == reference.aa[known]))


def simulated_cases(root: Path, count: int | None, resolution: float, seed: int):
    split = read_split(WEIGHTS_DIR / "split.json")
    entries = split.entries("test")[:count]
    for entry in entries:
        structure = io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb")
        reference = residue_table(structure)
        grid = maps.grid_around(reference.atom_coordinates, 1.0, 4.0)
        rng = np.random.default_rng([seed, sum(map(ord, entry))])
        density = maps.simulate(structure, resolution, like=grid, use_b_factors=True, noise=BENCHMARK_NOISE, seed=int(rng.integers(2**31)))
        yield entry, density, reference, resolution


def real_cases(root: Path):
    for name, (map_path, model_path, resolution) in REAL_MAPS.items():
        yield name, maps.read_map(root / map_path), residue_table(io.read_structure(root / model_path)), resolution


def summarise(rows: list[dict]) -> str:
    columns = ["set", "case", "resolution", "grid_1A", "reference_residues", "traced_residues", "recall", "precision", "ca_rmsd"]
    columns += ["chains", "helix_f1", "strand_f1"]
    columns += [
        "types_deposited_frames",
        "sequence_match",
        "threaded_sequence_match",
        "final_sequence_match",
        "sequence_z",
        "seconds",
        "peak_memory_mb",
    ]
    columns += ["final_recall", "final_precision", "final_chains"]  # the model with the sequence (pruned, ordered into chains)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_format(row.get(c, "")) for c in columns) + " |")
    simulated = [r for r in rows if r["set"] == "simulated"]
    if simulated:
        mean = {
            k: float(np.nanmean([r[k] for r in simulated]))
            for k in ("recall", "precision", "ca_rmsd", "types_deposited_frames", "sequence_match", "threaded_sequence_match")
            + ("final_sequence_match", "seconds")
        }
        accepted = sum(not np.isnan(r["threaded_sequence_match"]) for r in simulated)
        lines.append(
            f"| simulated | mean of {len(simulated)} | 3 | | | | {mean['recall']:.2f} | {mean['precision']:.2f} | {mean['ca_rmsd']:.2f} | | | | "
            f"{mean['types_deposited_frames']:.2f} | {mean['sequence_match']:.2f} | {mean['threaded_sequence_match']:.2f} | "
            f"{mean['final_sequence_match']:.2f} | "
            f"accepted {accepted}/{len(simulated)} | {mean['seconds']:.1f} | |"
        )
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 simulated test pockets + the real maps")
    parser.add_argument("--entries", type=int, help="the first N test pockets (sorted by name) instead of all")
    parser.add_argument("--sets", nargs="+", default=["simulated", "real"], choices=["simulated", "real"])
    parser.add_argument("--resolution", type=float, default=3.0, help="resolution of the simulated maps (Å)")
    parser.add_argument("--weights", type=Path, help="backbone.json to use (default: the shipped weights)")
    parser.add_argument("--residue-types", type=Path, help="residue-type classifier to use (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sequence-method", choices=["hmm", "dp"], default="hmm", help="sequence assignment (TraceOptions.sequence_method)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "backbone.csv")
    args = parser.parse_args(argv)
    root = data_root()
    if root is None:
        print("benchmarks/backbone.py: the shared data (../shared/data) is not available", file=sys.stderr)
        return 1
    network = load_network(args.weights)
    residue_types = load_classifier(args.residue_types) if args.residue_types else None
    cases = []
    if "simulated" in args.sets:
        count = 4 if args.quick else args.entries
        cases += [(c, "simulated") for c in simulated_cases(root, count, args.resolution, args.seed)]
    if "real" in args.sets:
        cases += [(c, "real") for c in real_cases(root)]
    rows = []
    for (name, density, reference, resolution), kind in cases:
        row = run_case(
            name, kind, density, reference, resolution, network, TraceOptions(sequence_method=args.sequence_method), residue_types
        )
        print(f"{kind:9s} {name:30s} recall {row['recall']:.2f} precision {row['precision']:.2f} rmsd {row['ca_rmsd']:.2f} "
              f"types {row['sequence_match']:.2f} threaded {row['threaded_sequence_match']:.2f} ({row['seconds']} s)", flush=True)  # fmt: skip
        rows.append(row)
    if "real" in args.sets and (peer := modelangelo_row(root)) is not None:
        rows.append(peer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{' '.join(['python benchmarks/backbone.py', *(argv if argv is not None else sys.argv[1:])])}\n")
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
