"""How fast the evaluation harness is: one ligand model against a 200³ map, and a small challenge.

1. The real 3.2 Å haemoglobin map EMD-3488 (100³ voxels of 1.05 Å) resampled to 200³ voxels of
   0.52 Å, scored against 5ME2 (4468 heavy atoms, 4 hemes) with 5NI1 as reference: every metric,
   then the ligands-only mode (``whole_model=False``).
2. A challenge built from PoseBusters complexes in ../shared/data: per target, the pocket with
   its deposited ligand simulated at 2.5 Å with noise, the deposited model as reference, and
   submissions whose ligand is moved rigidly by 0–3 Å and turned by 0–40°; evaluated in parallel
   with ``run_challenge``. The table also reports how well the composite ranks the submissions
   (Spearman correlation with the true displacement, per target; −1 is a perfect ranking).

    python benchmarks/evaluation_speed.py --quick     # 2 targets × 3 submissions
    python benchmarks/evaluation_speed.py             # 6 targets × 10 submissions = 60 models
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import data_root  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.evaluate import evaluate_model, run_challenge  # noqa: E402

TARGETS = ["7RC3_SAH", "7OFF_VCB", "5S8I_2LY", "6M2B_EZO", "7XEK_9YX", "8ERS_WQO"]


def single_model(root: Path) -> list[dict]:
    folder = root / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"
    original = maps.read_map(folder / "emd_3488.mrc")
    density = maps.resample(original, original.extent / 199.0)  # 200 voxels along each axis, ~0.52 Å
    if density.shape != (200, 200, 200):
        raise RuntimeError(f"resampled map is {density.shape}, not 200³")
    rows = []
    for whole_model in (True, False):
        started = time.perf_counter()
        evaluation = evaluate_model(folder / "5me2.pdb", density, 3.2, reference_model=folder / "5ni1_updated.cif", whole_model=whole_model)
        elapsed = time.perf_counter() - started
        stages = ", ".join(f"{k} {v:.2f}" for k, v in evaluation.timings.items())
        rows.append(
            {
                "case": f"5ME2 vs 200³ map, {'whole model' if whole_model else 'ligands only'}",
                "models": 1,
                "ligands": len(evaluation.ligands),
                "wall_s": round(elapsed, 2),
                "per_model_s": round(elapsed, 2),
                "detail": stages,
            }
        )
    return rows


def build_challenge(root: Path, folder: Path, targets: list[str], per_target: int, seed: int = 0) -> dict[tuple[str, str], float]:
    """Write maps, references, submissions and the CSV; return the true ligand displacement (Å RMSD) per (target, group)."""
    rng = np.random.default_rng(seed)
    truth = {}
    rows = []
    for entry in targets:
        pocket = io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb")
        from rdkit import Chem

        mol = Chem.MolFromMolFile(str(root / "complexes" / entry / f"{entry}_ligand.sdf"))
        xyz = mol.GetConformer().GetPositions()
        elements = [a.GetSymbol() for a in mol.GetAtoms()]
        names = [f"{e}{i + 1}" for i, e in enumerate(elements)]
        code = entry.split("_")[1]
        deposited = io.add_ligand(pocket, elements, names, xyz, residue_name=code)
        io.write_structure(deposited, folder / f"{entry}_reference.cif")
        density = maps.simulate(deposited, 2.5, voxel_size=0.8, margin=4.0, use_b_factors=True, noise=0.2, seed=seed)
        maps.write_map(density, folder / f"{entry}.mrc")
        for k in range(per_target):
            fraction = k / max(per_target - 1, 1)
            rotation = Rotation.from_rotvec(np.radians(40 * fraction) * _unit(rng))
            centre = xyz.mean(axis=0)
            moved = rotation.apply(xyz - centre) + centre + 3.0 * fraction * _unit(rng)
            group = f"g{k:02d}"
            io.write_structure(io.add_ligand(pocket, elements, names, moved, residue_name=code), folder / f"{entry}_{group}.cif")
            truth[entry, group] = float(np.sqrt(((moved - xyz) ** 2).sum(1).mean()))
            rows.append([entry, f"{entry}.mrc", "2.5", f"{entry}_reference.cif", f"{entry}_{group}.cif", group, code])
    with open(folder / "submissions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["target", "map", "resolution", "reference", "model", "group", "ligand"])
        writer.writerows(rows)
    return truth


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def challenge(root: Path, targets: list[str], per_target: int, workers: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        truth = build_challenge(root, folder, targets, per_target)
        started = time.perf_counter()
        result = run_challenge(folder / "submissions.csv", folder / "results", workers=workers)
        elapsed = time.perf_counter() - started
        resumed_start = time.perf_counter()
        run_challenge(folder / "submissions.csv", folder / "results", workers=workers)
        resumed = time.perf_counter() - resumed_start
    scores = [s for s in result.scores if s["status"] == "ok"]
    correlations = []
    for target in targets:
        lines = [s for s in scores if s["target"] == target]
        correlations.append(spearmanr([truth[target, s["group"]] for s in lines], [s["composite"] for s in lines]).statistic)
    models = len(result.records)
    return [
        {
            "case": f"challenge: {len(targets)} targets × {per_target} models, {workers} workers",
            "models": models,
            "ligands": len(scores),
            "wall_s": round(elapsed, 1),
            "per_model_s": round(elapsed / models, 2),
            "detail": f"failed {len(result.failed)}, bugs {len(result.bugs)}; resume of a finished run {resumed:.1f} s; "
            f"Spearman(composite, true RMSD) per target: {', '.join(f'{c:.2f}' for c in correlations)}",
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 targets × 3 submissions instead of 6 × 10")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes for the challenge")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    root = data_root()
    if root is None:
        sys.exit("../shared/data is not available: nothing to measure")
    targets, per_target = (TARGETS[:2], 3) if args.quick else (TARGETS, 10)
    rows = single_model(root) + challenge(root, targets, per_target, args.workers)
    print(f"command: python benchmarks/evaluation_speed.py {' '.join(sys.argv[1:])}".rstrip())
    print("| case | models | ligands | wall s | s per model | detail |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['models']} | {row['ligands']} | {row['wall_s']} | {row['per_model_s']} | {row['detail']} |")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
