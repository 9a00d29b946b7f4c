"""Screening benchmark: does the true ligand come first, does a decoy-only library say "none fits",
how fast is it, and does identification name the right CCD code on real maps?

    python benchmarks/screening.py --quick          # 3 pockets x 2 resolutions, 9 decoys each; heme + 3NZD + AGS identification
    python benchmarks/screening.py --entries 20 --decoys 99

Simulated cases: a PoseBusters pocket with its deposited ligand simulated at 3.0 and 3.5 Å
(benchmarks/cases.py: B-factor blur, occupancy 0.6–1.0, noise); the screen sees the pocket
alone. No part of the screen is trained, so every pocket is held out. Decoys are other
PoseBusters ligands within ±25% of the true ligand's heavy-atom count (property-matched by
size). The decoy-only verdict is the screen's answer over the decoy rows of the same run (each
ligand is scored on its own, so dropping the true ligand changes nothing else).
Speed: the first case is screened with 1 and with 2 workers back to back (a paired measurement
on a machine shared with other jobs); the two rankings must be identical.
Writes benchmarks/results/screening*.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
from rdkit import Chem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import complex_entries, data_root, em_ligand_boxes, hemoglobin_hemes, simulated_case  # noqa: E402
from ligfit import io  # noqa: E402
from ligfit.screen import ScreenOptions, run_identify, run_screen  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def decoys_for(rows: list[dict], entry: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Other PoseBusters ligands within ±25% of the true ligand's heavy-atom count (widened if too few)."""
    true = next(row for row in rows if row["entry"] == entry)
    size = int(true["lig_heavy_atoms"])
    rng = np.random.default_rng([seed, sum(map(ord, entry))])
    others = [row for row in rows if row["ligand_ccd"] != true["ligand_ccd"] and row["lig_smiles"] != true["lig_smiles"]]
    for width in (0.25, 0.4, 0.6, 10.0):
        pool = [row for row in others if abs(int(row["lig_heavy_atoms"]) - size) <= width * size]
        if len(pool) >= count:
            break
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return [(f"decoy_{pool[i]['ligand_ccd']}", pool[i]["lig_smiles"]) for i in sorted(chosen)]


def screen_case(root: Path, rows: list[dict], entry: str, resolution: float, decoys: int, seed: int, workers: int) -> dict:
    case = simulated_case(root, entry, resolution, seed=seed)
    true_smiles = next(row["lig_smiles"] for row in rows if row["entry"] == entry)
    library = [("TRUE", true_smiles), *decoys_for(rows, entry, decoys, seed)]
    start = time.perf_counter()
    result = run_screen(case.density, case.model, library, ScreenOptions(resolution=resolution, seed=seed), workers=workers)
    wall = time.perf_counter() - start
    names = [row["name"] for row in result.rows]
    rank = names.index("TRUE") + 1 if "TRUE" in names else None
    decoy_rows = [row for row in result.rows if row["name"] != "TRUE"]
    true_row = next((row for row in result.rows if row["name"] == "TRUE"), {})
    docked = sum(1 for row in result.rows if row.get("status") == "ok")
    return {
        "case": case.name,
        "ligands": len(result.rows),
        "docked": docked,
        "true_rank": rank,
        "true_hit": bool(true_row.get("hit")),
        "true_fit": true_row.get("fit_score"),
        "best_decoy_fit": max((row.get("fit_score") or 0.0 for row in decoy_rows), default=0.0),
        "decoys_only_none_fits": not any(row.get("hit") for row in decoy_rows),
        "cpu_s": round(sum(row.get("time_s") or 0.0 for row in result.rows), 1),
        "wall_s": round(wall, 1),
        "workers": workers,
        "status": "" if result.rows else "empty",
    }


def speedup(root: Path, rows: list[dict], entry: str, resolution: float, decoys: int, seed: int) -> dict:
    case = simulated_case(root, entry, resolution, seed=seed)
    true_smiles = next(row["lig_smiles"] for row in rows if row["entry"] == entry)
    library = [("TRUE", true_smiles), *decoys_for(rows, entry, decoys, seed)]
    options = ScreenOptions(resolution=resolution, seed=seed, prefilter=False)  # every ligand docked: a fair load
    times, tables = {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        result = run_screen(case.density, case.model, library, options, workers=workers)
        times[workers] = time.perf_counter() - start
        tables[workers] = [(row["name"], row.get("fit_score"), row.get("blob")) for row in result.rows]
    return {
        "case": case.name,
        "ligands": len(library),
        "wall_1_worker_s": round(times[1], 1),
        "wall_2_workers_s": round(times[2], 1),
        "speedup": round(times[1] / times[2], 2),
        "identical": tables[1] == tables[2],
        "ligands_per_hour_per_core": round(len(library) / times[1] * 3600, 0),
    }


def identification(root: Path, quick: bool, workers: int) -> list[dict]:
    """Right CCD code in the top 3? Hemes of EMD-3488, NADP of 3NZD, the EM ligand boxes whose ligand is in the library."""
    results = []

    def record(name: str, code: str, result) -> None:
        codes = [row.get("code") or row["name"] for row in result.rows if row.get("status") == "ok"]
        rank = codes.index(code) + 1 if code in codes else None
        results.append({"case": name, "true_code": code, "rank": rank, "top3": codes[:3], "in_top3": rank is not None and rank <= 3})
        print(f"  {name}: {code} ranked {rank}; top 3 {codes[:3]}", flush=True)

    density, structure, _ = hemoglobin_hemes(root)
    for blob in (1,) if quick else (1, 2, 3, 4):
        result = run_identify(density, structure, ScreenOptions(resolution=3.2, blob=blob, max_blobs=1), workers=workers)
        record(f"EMD-3488 heme blob {blob}", "HEM", result)

    folder = root / "xray" / "3NZD"
    model = io.read_structure(folder / "3nzd.cif")
    ndp = [residue for chain in model[0] for residue in chain if residue.name == "NDP"][0]
    centre = np.mean([atom.pos.tolist() for atom in ndp], axis=0)
    for name in ("NDP", "D2Q"):
        io.remove_residues(model, name)
    model.remove_waters()
    model.remove_empty_chains()
    from ligfit import maps

    xray = maps.read_map(folder / "3nzd.ccp4.gz", around=io.heavy_atoms(model).coordinates)
    site = ",".join(f"{v:.2f}" for v in centre)
    record("3NZD NADP(H)", "NDP", run_identify(xray, model, ScreenOptions(resolution=1.8, site=site, max_blobs=1), workers=workers))

    library_codes = {
        row.split(",")[0]
        for row in (Path(__file__).resolve().parent.parent / "ligfit/screen/common_ligands.csv").read_text().splitlines()[1:]
    }
    for case in [] if quick else em_ligand_boxes(root):  # no model: no size estimate, so every ligand is docked (slow)
        code = case.name.split()[1]
        if code not in library_codes:
            continue
        centre = Chem.RemoveHs(case.reference).GetConformer().GetPositions().mean(axis=0)
        site = ",".join(f"{v:.2f}" for v in centre)
        record(
            f"{case.name} (EM box)",
            code,
            run_identify(case.density, None, ScreenOptions(resolution=case.resolution, site=site), workers=workers),
        )
    return results


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 pockets at 3.0 and 3.5 Å with 9 decoys, 1 heme, 3NZD, the AGS box")
    parser.add_argument("--entries", type=int, default=20, help="PoseBusters pockets (default 20)")
    parser.add_argument("--decoys", type=int, default=99, help="decoys per library (default 99)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["screen", "speed", "identify"])
    args = parser.parse_args()
    root = data_root()
    if root is None:
        sys.exit("../shared/data is not available")
    rows = complex_entries(root)
    count, decoys = (3, 9) if args.quick else (args.entries, args.decoys)
    entries = [str(e) for e in np.random.default_rng(args.seed).choice([r["entry"] for r in rows], size=count, replace=False)]
    suffix = "_quick" if args.quick else ""

    if "screen" not in args.skip:
        cases = []
        for resolution in (3.0, 3.5):
            for entry in entries:
                row = screen_case(root, rows, entry, resolution, decoys, args.seed, args.workers)
                cases.append(row)
                print(
                    f"  {row['case']}: true rank {row['true_rank']} (fit {row['true_fit']}, best decoy {row['best_decoy_fit']:.2f}), "
                    f"decoys only → none fits: {row['decoys_only_none_fits']}, {row['docked']}/{row['ligands']} docked, "
                    f"{row['wall_s']} s",
                    flush=True,
                )
        write_csv(RESULTS / f"screening{suffix}.csv", cases)
        n = len(cases)
        top1 = sum(1 for c in cases if c["true_rank"] == 1)
        top5 = sum(1 for c in cases if c["true_rank"] is not None and c["true_rank"] <= 5)
        none = sum(1 for c in cases if c["decoys_only_none_fits"])
        cpu = sum(c["cpu_s"] for c in cases)
        ligands = sum(c["ligands"] for c in cases)
        print("\n| cases | library | top-1 | top-5 | decoy-only 'none fits' | ligands/hour/core (sum of per-ligand times) |")
        print("|---|---|---|---|---|---|")
        print(f"| {n} | true + {decoys} | {top1}/{n} | {top5}/{n} | {none}/{n} | {ligands / max(cpu, 1e-9) * 3600:.0f} |")

    if "speed" not in args.skip:
        speed = speedup(root, rows, entries[0], 3.0, 9 if args.quick else 19, args.seed)
        write_csv(RESULTS / f"screening_speed{suffix}.csv", [speed])
        print("\n| case | ligands | 1 worker (s) | 2 workers (s) | speed-up (paired, shared machine) | identical ranking |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {speed['case']} | {speed['ligands']} | {speed['wall_1_worker_s']} | {speed['wall_2_workers_s']} | {speed['speedup']}x | {speed['identical']} |"
        )

    if "identify" not in args.skip:
        found = identification(root, args.quick, args.workers)
        write_csv(RESULTS / f"screening_identify{suffix}.csv", found)
        print("\n| blob | true CCD | rank | top 3 |")
        print("|---|---|---|---|")
        for row in found:
            print(f"| {row['case']} | {row['true_code']} | {row['rank']} | {' '.join(row['top3'])} |")
        print(f"right code in the top 3: {sum(r['in_top3'] for r in found)}/{len(found)}")


if __name__ == "__main__":
    main()
