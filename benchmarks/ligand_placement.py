"""Ligand placement benchmark: top-1 symmetry-corrected RMSD to the deposited ligand.

Sets (all from ../shared/data; see benchmarks/cases.py):
  simulated  PoseBusters pockets + deposited ligand simulated at each resolution (B-factor blur,
             ligand occupancy 0.6–1.0, coloured noise); ligfit gets the pocket and the SMILES
  decoy      the same pockets without the ligand: the right answer is "no convincing density"
  em-boxes   the seven real EMDB ligand boxes (no protein)
  d2q        real 1.8 Å 2mFo-DFc density of D2Q in 3NZD, model minus D2Q
  hemes      the real 3.2 Å EMD-3488 map, its model 5NI1 minus the hemes, four copies placed at
             once, scored against 5NI1's hemes (and, as a second row set, the 5ME2 crystal structure's)
  real-decoys  the real 3.2 Å EMD-21457 spike NTD segment with 6VYB's model (gaps of 2–22 residues,
             glycans removed), and the ligand-free crops of EMD-20026 (apoferritin, 1.75 Å) and EMD-2566
             (ribosomal protein, 3.2 Å) with their deposited models; every site the density supports
             (copies auto), for nine ligands that are not there (the EM boxes' seven, ATP, heme: "no
             convincing density" is right); and EMD-21457's N-glycans (NAG, bonded to asparagine) as one case more

    python benchmarks/ligand_placement.py --quick          # CI-sized
    python benchmarks/ligand_placement.py --sets real-decoys
    python benchmarks/ligand_placement.py --entries 100    # a random sample of entries
    python benchmarks/ligand_placement.py                  # everything (hours on 2 cores)

Prints a Markdown table and writes one CSV row per case (default benchmarks/results/).
RMSD is spyrmsd's symmetry-corrected heavy-atom RMSD without superposition, matching atoms by
graph (elements and connectivity), so protonation and bond-order differences do not matter.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rdkit import Chem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import (  # noqa: E402
    LIGAND_FREE_CROPS,
    Case,
    data_root,
    em_ligand_boxes,
    hemoglobin_hemes,
    ligand_free_crop,
    sample_entries,
    simulated_case,
    spike_ntd,
    xray_d2q,
)
from ligfit.pipeline import AUTO_COPIES  # noqa: E402

SUCCESS_RMSD = 2.0


def ligand_rmsd(pose: Chem.Mol, reference: Chem.Mol) -> float:
    """Symmetry-corrected heavy-atom RMSD (Å) without superposition (spyrmsd)."""
    from spyrmsd import rmsd

    return float(
        rmsd.symmrmsd(
            reference.GetConformer().GetPositions(),
            pose.GetConformer().GetPositions(),
            [a.GetAtomicNum() for a in reference.GetAtoms()],
            [a.GetAtomicNum() for a in pose.GetAtoms()],
            Chem.GetAdjacencyMatrix(reference),
            Chem.GetAdjacencyMatrix(pose),
        )
    )


def run_case(
    case: Case,
    kind: str,
    copies: int | str = 1,
    references: list[Chem.Mol] | None = None,
    other_references: dict[str, list[Chem.Mol]] | None = None,
) -> list[dict]:
    """Run ligfit on one case and score it; one row per reference ligand (per reference set)."""
    import ligfit

    started = time.perf_counter()
    result = ligfit.build(case.density, case.smiles, case.model, resolution=case.resolution, copies=copies)
    elapsed = time.perf_counter() - started
    memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference_sets = {"": references or [case.reference], **(other_references or {})}
    rows = []
    for label, references in reference_sets.items():
        rows += _score_rows(result, case, kind + (f" ({label})" if label else ""), references, copies, elapsed, memory_mb)
    return rows


def _score_rows(
    result, case: Case, kind: str, references: list[Chem.Mol], copies: int | str, elapsed: float, memory_mb: float
) -> list[dict]:
    from ligfit.ligand import heavy_atom_mol

    rows = []
    for index, reference in enumerate(references):
        row = {
            "set": kind,
            "case": case.name if len(references) == 1 else f"{case.name} #{index + 1}",
            "resolution": case.resolution,
            "heavy_atoms": reference.GetNumAtoms() if reference is not None else "",
            "found": result.found,
            "confidence": result.confidence,
            "rmsd": "",
            "cc": "",
            "seconds": round(elapsed, 2),
            "peak_memory_mb": round(memory_mb),
            "message": result.message,
        }
        if result.found and reference is not None:
            distances = [ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference) for pose in result.placements]
            best = int(np.argmin(distances)) if copies != 1 else 0
            row.update(
                rmsd=round(distances[best], 3), cc=round(result.placements[best].cc, 3), confidence=result.placements[best].confidence
            )
        rows.append(row)
    return rows


def _simulated_job(args: tuple) -> list[dict]:
    root, entry, resolution, decoy = args
    import torch

    torch.set_num_threads(1)
    case = simulated_case(root, entry, resolution, with_ligand=not decoy)
    return run_case(case, "decoy" if decoy else "simulated")


def run_simulated(root: Path, entries: list[str], resolutions: list[float], decoy: bool, jobs: int, writer) -> list[dict]:
    tasks = [(root, entry, resolution, decoy) for resolution in resolutions for entry in entries]
    rows = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for result in pool.map(_simulated_job, tasks):
                rows.extend(_emit(result, writer))
    else:
        for task in tasks:
            rows.extend(_emit(_simulated_job(task), writer))
    return rows


#: Ligands that are in none of the real-decoys maps: the EM boxes' seven, ATP and heme.
REAL_DECOY_EXTRA = ("ccd:ATP", "ccd:HEM")


def run_real_decoys(root: Path, writer) -> list[dict]:
    """Real maps whose unexplained density is protein, glycans and more: ligands not there must get no placement.

    EMD-21457 with 6VYB's model (glycans removed), and the two ligand-free crops of ``LIGAND_FREE_CROPS`` (EMD-20026,
    EMD-2566) with their deposited models, each built as a whole map is (``copies="auto"``), for each ligand of the EM
    boxes, ATP and heme: "no convincing density" is right. EMD-21457's glycans (NAG, bonded to asparagine) are one case
    more ("em-glycans"), measured beside them.
    """
    density, model, glycans = spike_ntd(root)
    ligands = [(case.name.split()[-1], case.smiles) for case in em_ligand_boxes(root)]
    ligands += [(source.split(":")[1], source) for source in REAL_DECOY_EXTRA]
    rows = []
    maps_used = [("EMD-21457", density, model, 3.2)] + [(name, *ligand_free_crop(root, name)) for name in LIGAND_FREE_CROPS]
    for name, crop_density, crop_model, resolution in maps_used:
        for code, smiles in ligands:
            case = Case(f"{name} {code}", crop_density, crop_model, smiles, None, resolution)
            rows += _emit(run_case(case, "real-decoy", copies=AUTO_COPIES), writer)
    glycan = Case("EMD-21457 NAG", density, model, Chem.MolToSmiles(glycans[0]), glycans[0], 3.2)
    rows += _emit(run_case(glycan, "em-glycans", copies=AUTO_COPIES, references=glycans), writer)
    return rows


def _emit(rows: list[dict], writer) -> list[dict]:
    for row in rows:
        writer.writerow(row)
        status = f"rmsd {row['rmsd']}" if row["found"] else "not found"
        print(f"  {row['set']:9s} {row['case']:22s} {status:14s} {row['seconds']:6.1f} s", file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict]) -> str:
    """Markdown table: one line per set and resolution."""
    lines = [
        "| set | resolution (Å) | cases | success (≤ 2 Å) | median RMSD (Å) | median time (s) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        simulated = row["set"] in ("simulated", "decoy")
        resolution = f"{float(row['resolution']):g}" if simulated else "as deposited"
        if row["set"] == "real-decoy":  # one line per map
            resolution = f"{row['case'].split()[0]}, {float(row['resolution']):g}"
        groups.setdefault((row["set"], resolution), []).append(row)
    for (kind, resolution), group in sorted(groups.items()):
        times = [r["seconds"] for r in group]
        memory = max(r["peak_memory_mb"] for r in group)
        if kind in ("decoy", "real-decoy"):
            rejected = sum(not r["found"] for r in group)
            success = f"{rejected}/{len(group)} rejected ({100 * rejected / len(group):.0f}%)"
            median = "–"
        else:
            rmsds = np.array([float(r["rmsd"]) if r["found"] and r["rmsd"] != "" else np.inf for r in group])
            good = int(np.sum(rmsds <= SUCCESS_RMSD))
            success = f"{good}/{len(group)} ({100 * good / len(group):.0f}%)"
            median = f"{np.median(rmsds):.2f}" if np.isfinite(np.median(rmsds)) else "–"
        lines.append(f"| {kind} | {resolution} | {len(group)} | {success} | {median} | {np.median(times):.1f} | {memory} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized: 6 entries at 3 and 4 Å, 4 decoys, the real sets")
    parser.add_argument("--entries", type=int, help="random sample of this many PoseBusters entries (default: all)")
    parser.add_argument("--resolutions", type=float, nargs="+", default=[2.5, 3.0, 3.5, 4.0])
    parser.add_argument("--decoys", type=int, default=None, help="decoy maps (default: as many as entries, at 3 Å)")
    parser.add_argument("--sets", nargs="+", default=["simulated", "decoy", "em-boxes", "d2q", "hemes"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the entry sample")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes for the simulated sets (timings then share cores)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ligand_placement.csv")
    args = parser.parse_args(argv)

    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    resolutions = [3.0, 4.0] if args.quick else args.resolutions
    sample = sample_entries(root, 6 if args.quick else args.entries or None, args.seed)
    decoys = sample[: (4 if args.quick else args.decoys if args.decoys is not None else len(sample))]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_FIELDS)
        writer.writeheader()
        if "simulated" in args.sets:
            rows += run_simulated(root, sample, resolutions, False, args.jobs, writer)
        if "decoy" in args.sets:
            rows += run_simulated(root, decoys, [3.0], True, args.jobs, writer)
        if "em-boxes" in args.sets:
            for case in em_ligand_boxes(root):
                rows += _emit(run_case(case, "em-box"), writer)
        if "d2q" in args.sets:
            rows += _emit(run_case(xray_d2q(root), "xray-d2q"), writer)
        if "hemes" in args.sets:
            density, model, hemes = hemoglobin_hemes(root)
            case = Case("EMD-3488 HEM", density, model, "ccd:HEM", hemes["5NI1"][0], 3.2)
            rows += _emit(
                run_case(case, "em-hemes", copies=4, references=hemes["5NI1"], other_references={"vs 5ME2": hemes["5ME2"]}), writer
            )
        if "real-decoys" in args.sets:
            rows += run_real_decoys(root, writer)
    scope = "quick" if args.quick else f"{len(sample)} entries" if "simulated" in args.sets else "real sets"
    print(f"ligfit ligand placement benchmark ({scope}, sets: {' '.join(args.sets)}, seed {args.seed}); rows in {args.out}")
    print(summarise(rows))
    return 0


_FIELDS = ["set", "case", "resolution", "heavy_atoms", "found", "confidence", "rmsd", "cc", "seconds", "peak_memory_mb", "message"]

if __name__ == "__main__":
    sys.exit(main())
