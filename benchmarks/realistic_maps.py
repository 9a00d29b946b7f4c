"""Benchmark: ligands in realistic maps with an incomplete whole-pocket model (issue 18).

Every case is a PoseBusters pocket simulated with what real maps hold besides the ligand
(see benchmarks/realistic_cases.py: an unmodelled loop next to the ligand, truncated side
chains, waters, an ion, a detergent, partial ligand occupancy with high B, a local-resolution
gradient, sharpening, noise); ligfit gets the incomplete model. Decoys are the same maps
without the ligand: the right answer is "no ligand".

    python benchmarks/realistic_maps.py --quick            # 6 entries at 3.0 and 3.5 Å + their decoys
    python benchmarks/realistic_maps.py --entries 20       # a larger sample
    python benchmarks/realistic_maps.py --summarise results/seed*.csv   # one table over runs already made (several seeds)
    python benchmarks/realistic_maps.py --quick --seed 3 --dump-poses poses.jsonl   # + every docked pose of every map

Prints the table (top-1 ≤ 2 Å, decoys answered "no ligand", how right "high" confidence is, a
reliability table by confidence bin) and writes one CSV row per map (benchmarks/results/).
Runs one build at a time; say how many other processes shared the machine when quoting times.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import data_root, sample_entries  # noqa: E402
from benchmarks.ligand_placement import SUCCESS_RMSD, ligand_rmsd  # noqa: E402
from benchmarks.realistic_cases import realistic_case  # noqa: E402

FIELDS = [
    "case", "resolution", "decoy", "heavy_atoms", "occupancy", "status", "confidence", "label",
    "rmsd", "right", "miss", "deposited_score", "best_score", "turned_away_confidence", "turned_away_rmsd", "loop_built",
    "answer_interaction", "answer_burial", "answer_rare_torsions", "blob_note", "seconds", "message",
]  # fmt: skip
CONFIDENCE_BINS = [(0.0, 0.4, "low"), (0.4, 0.7, "medium"), (0.7, 1.01, "high")]
#: Confidence bins of the answers build turned away as "low" (``turned_away_confidence``), for the summary.
TURNED_AWAY_BINS = [(0.0, 0.2), (0.2, 0.3), (0.3, 0.4)]
#: Å: a ligand atom this close to a blob voxel lies in that blob; a blob holding this share of its atoms holds the ligand.
IN_BLOB_DISTANCE, IN_BLOB_SHARE = 1.5, 0.2
#: Why a map holding the ligand was not answered right (``miss_reason``), in the order the summary lists them.
MISS_REASONS = (
    "no blob: the ligand's density is below the threshold",
    "merged into a blob marked as unmodelled protein",
    "its blob was not docked",
    "right pose found, rejected (low confidence)",
    "wrong pose in the ligand's blob",
    "another blob's pose won",
)
#: A wrong pose in the ligand's blob, by how the deposited pose scores there against the best pose docking found (``wrong_pose_kind``):
#: within this of each other the two are a tie the score cannot break.
SCORE_TIE = 0.01
WRONG_POSE_KINDS = (
    "the deposited pose scores higher: the search did not find it",
    f"a tie (within {SCORE_TIE}): the score cannot tell them apart",
    "the deposited pose scores lower: the score prefers another pose",
)


def run_one(
    root: Path,
    entry: str,
    resolution: float,
    decoy: bool,
    seed: int,
    build_loops: bool = True,
    complete_side_chains: bool = True,
    with_sequence: bool = False,
    dump: TextIO | None = None,
) -> dict:
    from rdkit import Chem

    import ligfit
    from ligfit.ligand import heavy_atom_mol
    from ligfit.records import confidence_label

    case, record = realistic_case(root, entry, resolution, with_ligand=not decoy, seed=seed, with_sequence=with_sequence)
    started = time.perf_counter()
    result = ligfit.build(
        case.density, case.smiles, case.model, resolution=resolution, build_loops=build_loops, complete_side_chains=complete_side_chains
    )
    seconds = time.perf_counter() - started
    placed = result.found
    rmsd = ligand_rmsd(heavy_atom_mol(result.ligand, result.placements[0].coordinates), case.reference) if placed else None
    # A placement counts as right only on a map that holds the ligand and within 2 Å of it.
    right = (not placed) if decoy else (placed and rmsd is not None and rmsd <= SUCCESS_RMSD)
    confidence = result.confidence if placed else 0.0
    miss = "" if right or decoy else miss_reason(result, case.reference)
    deposited, best = deposited_pose_scores(result, case.reference, resolution) if miss == MISS_REASONS[4] else (None, None)
    turned_away, turned_away_pose = turned_away_answer(result)
    turned_away_rmsd = (
        ligand_rmsd(heavy_atom_mol(result.ligand, turned_away_pose.coordinates), case.reference)
        if turned_away_pose is not None and not decoy
        else None
    )
    interaction, buried = answer_chemistry(result, result.placements[0] if placed else turned_away_pose)
    if dump is not None:
        holding = None if decoy else holding_blob(result, case.reference)[0]
        dumped = {"case": case.name, "resolution": resolution, "decoy": decoy, "seed": seed, "right": bool(right)}
        dumped.update(
            placed_blob=result.placements[0].blob_rank if placed else None, holding_blob=None if holding is None else holding.rank
        )
        dumped["molblock"] = Chem.MolToMolBlock(heavy_atom_mol(result.ligand))  # the atom order of each pose's "xyz"
        dumped["poses"] = pose_records(result, None if decoy else case.reference)
        dump.write(json.dumps(dumped) + "\n")
        dump.flush()
    return {
        "case": case.name,
        "resolution": resolution,
        "decoy": decoy,
        "heavy_atoms": case.reference.GetNumAtoms(),
        "occupancy": record["occupancy"],
        "status": result.status,
        "confidence": round(confidence, 3),
        "label": confidence_label(confidence) if placed else "",
        "rmsd": "" if rmsd is None else round(rmsd, 2),
        "right": bool(right),
        "miss": miss,
        "deposited_score": "" if deposited is None else round(deposited, 3),
        "best_score": "" if best is None else round(best, 3),
        "turned_away_confidence": "" if turned_away is None else turned_away,
        "turned_away_rmsd": "" if turned_away_rmsd is None else round(turned_away_rmsd, 2),
        "loop_built": loop_built(result, record["loop"]),
        "answer_interaction": "" if interaction is None else round(interaction, 3),
        "answer_burial": "" if buried is None else round(buried, 3),
        "answer_rare_torsions": rare_torsions(result.ligand, result.placements[0].coordinates) if placed else "",
        "blob_note": _blob_note(result),
        "seconds": round(seconds, 1),
        "message": result.message,
    }


def pose_records(result, reference) -> list[dict]:
    """Every pose docking reported, as docked (before refinement), with its score terms, its fit score as the screen
    ranks ligands (``ligfit.screen.ranking``) and, on a map holding the ligand, its RMSD to the deposited pose: the rows
    a rule choosing among poses can be tried on offline (``--dump-poses``)."""
    from ligfit import io, segment
    from ligfit.dock.place import support_failures
    from ligfit.ligand import heavy_atom_mol
    from ligfit.measures.qscore import ReferenceGaussian, expected_q_score
    from ligfit.screen import ranking

    heavy = result.ligand.heavy_atom_count
    elements = list(result.ligand.elements[:heavy])
    resolution = result.options.resolution
    difference = segment.without_explained(result.difference.difference, result.blobs)
    others = io.heavy_atoms(result.model).coordinates if result.model is not None else np.zeros((0, 3))
    q_reference = ReferenceGaussian.from_map(result.density_map)
    expected = expected_q_score(resolution)
    blobs = {blob.rank: blob for blob in result.blobs}
    records = []
    for pose in result.poses:
        xyz = pose.coordinates[:heavy]
        fit = ranking.pose_fit(
            difference, result.density_map, blobs[pose.blob_rank], xyz, elements, others, resolution, expected, q_reference
        )
        records.append(
            {
                "blob": pose.blob_rank,
                "score": round(pose.score, 4),
                "score_before_tie_breaks": round(pose.score_before_tie_breaks, 4),
                "cc": round(pose.cc, 4),
                "mean_sigma": round(pose.mean_sigma, 3),
                "fraction_in_density": round(pose.fraction_in_density, 3),
                "clashes": pose.clashes,
                "strain": None if pose.strain is None else round(pose.strain, 2),
                "interaction": None if pose.interaction is None else round(pose.interaction, 3),
                "supported": not support_failures(pose, result.options.docking),
                "blob_cc": round(fit.blob_cc, 4),
                "explained": round(fit.explained, 3),
                "q_score": None if fit.q_score is None else round(fit.q_score, 3),
                "fit_score": round(fit.fit_score, 4),
                "rmsd": None if reference is None else round(ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference), 2),
                "xyz": np.round(xyz, 2).tolist(),
            }
        )
    return records


def rare_torsions(ligand, coordinates) -> int:
    """How many torsions of the written ligand (refined where it was) sit far up their crystal-structure potential."""
    from ligfit.measures.torsions import TorsionPreferences

    return TorsionPreferences.of(ligand.mol).rare(coordinates[: ligand.heavy_atom_count])


def answer_chemistry(result, pose) -> tuple[float | None, float | None]:
    """The answer's (placed or turned away) Vina-like interaction per heavy atom and its site's burial against the given model."""
    from ligfit.dock.place import burial
    from ligfit.io import heavy_atoms

    if pose is None or result.model is None:
        return None, None
    heavy = result.ligand.heavy_atom_count
    return pose.interaction, burial(pose.coordinates[:heavy], heavy_atoms(result.model))


def turned_away_answer(result) -> tuple[float | None, object]:
    """The confidence of the answer that was turned away at low confidence, and its pose (None, None when none was).

    Read from build's message ("the best pose (blob N, CC c) has low confidence x"): the pose is the best-scoring pose
    of blob N whose CC rounds to c.
    """
    if result.found:
        return None, None
    said = re.search(r"best pose \(blob (\d+), CC (-?\d+\.\d+)\) has low confidence (-?\d+\.\d+)", result.message)
    if said is None:
        return None, None
    rank, cc, confidence = int(said.group(1)) - 1, float(said.group(2)), float(said.group(3))
    candidates = [pose for pose in result.poses if pose.blob_rank == rank and abs(pose.cc - cc) <= 0.0051]
    return confidence, max(candidates, key=lambda pose: pose.score, default=None)


def miss_reason(result, reference) -> str:
    """Which of ``MISS_REASONS`` explains a wrong or missing answer on a map holding the ligand (the deposited pose ``reference``)."""
    from ligfit.ligand import heavy_atom_mol

    holding, share = holding_blob(result, reference)
    if holding is None or share < IN_BLOB_SHARE:
        return MISS_REASONS[0]
    if holding.explanation:
        return MISS_REASONS[1]
    in_blob = [pose for pose in result.poses if pose.blob_rank == holding.rank]
    if not in_blob:
        return MISS_REASONS[2]
    if result.found:
        return MISS_REASONS[4] if result.placements[0].blob_rank == holding.rank else MISS_REASONS[5]
    best = min(ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference) for pose in in_blob)
    return MISS_REASONS[3] if best <= SUCCESS_RMSD else MISS_REASONS[4]


def holding_blob(result, reference):
    """The blob holding most of the deposited ligand's atoms, and that share (None, 0 without blobs)."""
    from scipy.spatial import cKDTree

    truth = reference.GetConformer().GetPositions()
    shares = {blob.rank: float(np.mean(cKDTree(blob.points).query(truth)[0] < IN_BLOB_DISTANCE)) for blob in result.blobs}
    holding = max(result.blobs, key=lambda blob: shares[blob.rank], default=None)
    return holding, (shares[holding.rank] if holding is not None else 0.0)


def reference_pose(ligand, reference) -> np.ndarray:
    """The deposited pose as all-atom coordinates in ``ligand``'s atom order: heavy atoms where deposited, hydrogens
    from the conformer that superposes best (docking's restrained MMFF relaxation then settles them)."""
    from ligfit.backbone.geometry import superpose
    from ligfit.measures import connectivity_mol, symmetry_matches

    heavy = ligand.heavy_atom_count
    reference_bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in reference.GetBonds()], dtype=int)
    ligand_bonds = np.array(
        [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ligand.mol.GetBonds() if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < heavy],
        dtype=int,
    )
    matches = symmetry_matches(
        connectivity_mol([a.GetSymbol() for a in reference.GetAtoms()], reference_bonds),
        connectivity_mol(list(ligand.elements[:heavy]), ligand_bonds),
    )
    if not len(matches):
        raise ValueError("the deposited ligand's graph does not match the ligand's")
    truth = np.zeros((heavy, 3))
    truth[matches[0]] = reference.GetConformer().GetPositions()
    best, best_rmsd = None, np.inf
    for conformer in ligand.conformer_coordinates():
        rotation, shift = superpose(conformer[:heavy], truth[None])
        moved = conformer @ rotation[0] + shift[0]
        deviation = float(np.sqrt(((moved[:heavy] - truth) ** 2).sum(1).mean()))
        if deviation < best_rmsd:
            best, best_rmsd = moved, deviation
    best[:heavy] = truth
    return best


def deposited_pose_scores(result, reference, resolution: float) -> tuple[float | None, float | None]:
    """The deposited pose's docking score in the blob holding it (``ligfit.dock.score_pose``) and the best score docking
    found there (before near-tie shifts, which score_pose does not apply): a wrong pose's miss is the search's or the score's."""
    from ligfit import io, segment
    from ligfit.dock import score_pose
    from ligfit.measures import relax_pose

    holding, _ = holding_blob(result, reference)
    in_blob = [pose for pose in result.poses if holding is not None and pose.blob_rank == holding.rank]
    if not in_blob:
        return None, None
    protein = io.heavy_atoms(result.model) if result.model is not None else None
    difference = segment.without_explained(result.difference.difference, result.blobs)
    options = result.options.docking
    # Deposited bond lengths and angles are not MMFF's: held at docking's restraint they read as tens of kcal/mol of strain
    # (NAD in 7UMW: 79 kcal/mol; 19 after a 0.08 Å shift). A loose relaxation first (0.1–0.55 Å) leaves the conformation's.
    eased, _ = relax_pose(result.ligand, reference_pose(result.ligand, reference), options.flexible_relax_force)
    pose = score_pose(result.ligand, eased, difference, holding, resolution, protein, options)
    return pose.score, max(p.score_before_tie_breaks for p in in_blob)


def wrong_pose_kind(row: dict) -> str:
    """Which of ``WRONG_POSE_KINDS`` a "wrong pose in the ligand's blob" row is ("" when its scores were not recorded)."""
    if row.get("deposited_score") in (None, "") or row.get("best_score") in (None, ""):
        return ""
    gap = float(row["deposited_score"]) - float(row["best_score"])
    return WRONG_POSE_KINDS[0] if gap > SCORE_TIE else WRONG_POSE_KINDS[1] if gap >= -SCORE_TIE else WRONG_POSE_KINDS[2]


def loop_built(result, loop: str) -> str:
    """Whether ligfit built the case's unmodelled loop (residues "A71,A72,...", built as "A:71-74 (...": "yes" / "no"; "" for none)."""
    if not loop:
        return ""
    labels = loop.split(",")
    chain = labels[0].rstrip("0123456789")
    span = f"{chain}:{labels[0][len(chain) :]}-{labels[-1][len(chain) :]} ("
    built = (result.inputs.get("missing_loops") or {}).get("built") or []
    return "yes" if any(entry.startswith(span) for entry in built) else "no"


def _blob_note(result) -> str:
    """What ligfit said about the blob it placed the ligand in (or the best blob)."""
    if not result.blobs:
        return ""
    rank = result.placements[0].blob_rank if result.found else 0
    blob = next((b for b in result.blobs if b.rank == rank), result.blobs[0])
    return blob.explanation


def read_rows(paths: list[Path]) -> list[dict]:
    """The rows of earlier runs' CSV files, typed as ``run_one`` returns them."""
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append(
                    {
                        **row,
                        "resolution": float(row["resolution"]),
                        "decoy": row["decoy"] == "True",
                        "right": row["right"] == "True",
                        "confidence": float(row["confidence"]),
                        "seconds": float(row["seconds"]),
                    }
                )
    return rows


def summarise(rows: list[dict], live: bool = True) -> str:
    """The Markdown tables; ``live``: the rows were built by this process (say the machine's load)."""
    lines = ["| set | resolution | maps | right | rate |", "|---|---|---|---|---|"]
    for decoy in (False, True):
        for resolution in sorted({r["resolution"] for r in rows}):
            subset = [r for r in rows if r["decoy"] == decoy and r["resolution"] == resolution]
            if subset:
                right = sum(r["right"] for r in subset)
                what = "decoys: no ligand" if decoy else "ligand: top-1 ≤ 2 Å"
                lines.append(f"| {what} | {resolution:g} Å | {len(subset)} | {right} | {right / len(subset):.0%} |")
    lines += ["", "| confidence (placements) | placed | right | precision |", "|---|---|---|---|"]
    placed = [r for r in rows if r["status"] != "no convincing density"]
    for low, high, label in CONFIDENCE_BINS:
        subset = [r for r in placed if low <= r["confidence"] < high]
        right = sum(r["right"] for r in subset)
        rate = f"{right / len(subset):.0%}" if subset else "–"
        lines.append(f"| {label} ({low:.1f}–{min(high, 1.0):.1f}) | {len(subset)} | {right} | {rate} |")
    from ligfit.records import CONFIDENCE_RECORD, CONFIDENCE_RECORD_SEEDS

    said = ", ".join(f"{label} {right}/{placed}" for label, (right, placed) in CONFIDENCE_RECORD.items())
    lines.append(f"\nwhat reports tell users (ligfit.records.CONFIDENCE_RECORD, held-out seeds {CONFIDENCE_RECORD_SEEDS}): {said}; update it from a full run")
    turned = [r for r in rows if r.get("turned_away_confidence") not in (None, "")]
    if turned:
        lines += [
            "",
            "| answers turned away at low confidence | ligand maps: right pose (≤ 2 Å) | ligand maps: wrong pose | decoys |",
            "|---|---|---|---|",
        ]
        for low, high in TURNED_AWAY_BINS:
            subset = [r for r in turned if low <= float(r["turned_away_confidence"]) < high]
            right = sum(not r["decoy"] and r["turned_away_rmsd"] != "" and float(r["turned_away_rmsd"]) <= SUCCESS_RMSD for r in subset)
            decoys = sum(r["decoy"] for r in subset)
            lines.append(f"| {low:.1f}–{high:.1f} | {right} | {len(subset) - right - decoys} | {decoys} |")
    misses = [r for r in rows if not r["decoy"] and not r["right"]]
    if misses:
        lines += ["", "| why a map with the ligand was missed | maps |", "|---|---|"]
        for reason in MISS_REASONS:
            count = sum(r["miss"] == reason for r in misses)
            if count:
                lines.append(f"| {reason} | {count} |")
            if reason == MISS_REASONS[4]:
                for kind in WRONG_POSE_KINDS:
                    count = sum(r["miss"] == reason and wrong_pose_kind(r) == kind for r in misses)
                    if count:
                        lines.append(f"| &nbsp;&nbsp;{kind} | {count} |")
    loops = [r for r in rows if r["loop_built"]]
    if loops:
        built = sum(r["loop_built"] == "yes" for r in loops)
        lines.append(f"\nthe unmodelled loop built (ligfit.trace.loops) in {built} of {len(loops)} maps")
    seconds = [r["seconds"] for r in rows]
    when = f"one build at a time; load {os.getloadavg()[0]:.1f} at the end" if live else "as recorded"
    lines.append(f"\nmedian build {np.median(seconds):.1f} s, max {max(seconds):.1f} s ({when})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 entries at 3.0 and 3.5 Å, with their decoys")
    parser.add_argument("--entries", type=int, default=12)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0, 3.5])
    parser.add_argument("--seed", type=int, default=1, help="seed of the entry sample (0 is the placement benchmark's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realistic_maps.csv")
    parser.add_argument("--no-loops", action="store_true", help="build without ligfit.trace.loops (the unmodelled loop stays a gap)")
    parser.add_argument(
        "--no-side-chains", action="store_true", help="build without ligfit.trace.truncated (truncated side chains stay so)"
    )
    parser.add_argument("--with-sequence", action="store_true", help="the model carries its sequence (as a deposited mmCIF does)")
    parser.add_argument(
        "--dump-poses", type=Path, metavar="JSONL", help="also write every docked pose of every map (score terms, fit, RMSD)"
    )
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="CSV", help="print one table over the rows of earlier runs and stop")
    args = parser.parse_args(argv)
    if args.summarise:
        missing = [str(path) for path in args.summarise if not path.is_file()]
        if missing:
            print(f"realistic_maps.py: no such CSV file: {', '.join(missing)}", file=sys.stderr)
            return 2
        print(f"ligfit realistic-map benchmark: {len(args.summarise)} earlier run(s) ({', '.join(p.name for p in args.summarise)})")
        print(summarise(read_rows(args.summarise), live=False))
        return 0
    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    sample = sample_entries(root, 6 if args.quick else args.entries, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    dumping = open(args.dump_poses, "w") if args.dump_poses else contextlib.nullcontext()
    with open(args.out, "w", newline="") as handle, dumping as dump:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for resolution in args.resolutions:
            for decoy in (False, True):
                for entry in sample:
                    row = run_one(
                        root,
                        entry,
                        resolution,
                        decoy,
                        args.seed,
                        build_loops=not args.no_loops,
                        complete_side_chains=not args.no_side_chains,
                        with_sequence=args.with_sequence,
                        dump=dump,
                    )
                    writer.writerow(row)
                    handle.flush()
                    rows.append(row)
                    what = f"rmsd {row['rmsd']}" if row["rmsd"] != "" else row["status"]
                    print(f"  {row['case']:24s} {what:24s} conf {row['confidence']:.2f} {row['seconds']:6.1f} s  {row['blob_note'][:60]}",
                          file=sys.stderr, flush=True)  # fmt: skip
    loops = "off (--no-loops)" if args.no_loops else "on"
    sequence = ", the model with its sequence" if args.with_sequence else ""
    side_chains = "off (--no-side-chains)" if args.no_side_chains else "on"
    print(
        f"ligfit realistic-map benchmark ({len(sample)} entries, seed {args.seed}, loop building {loops}, side-chain completion "
        f"{side_chains}{sequence}); rows in {args.out}"
    )
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
