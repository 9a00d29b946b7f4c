"""Ligand placement without a protein model: ``build --sequence`` (trace, thread, then fit) vs the deposited model.

Held-out test pockets of the backbone network's split (never in its training, nor the residue-type
classifier's), simulated at 3 Å with their ligand like ``benchmarks/ligand_placement.py``; each is
built from the map and the sequence alone (``build --sequence``: the traced model, searched with
its side chains stopped at Cβ), and once with the deposited pocket as the model. Success: the top pose
within 2 Å of the deposited ligand (symmetry-corrected RMSD). Templates and refinement are off so
that only the protein model differs.

    python benchmarks/de_novo_build.py --entries 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.backbone import chain_sequences  # noqa: E402
from benchmarks.cases import data_root, simulated_case  # noqa: E402
from benchmarks.ligand_placement import ligand_rmsd  # noqa: E402
from ligfit import api  # noqa: E402
from ligfit.backbone.data import read_split, residue_table  # noqa: E402
from ligfit.backbone.infer import WEIGHTS_DIR  # noqa: E402
from ligfit.errors import LigfitError  # noqa: E402
from ligfit.ligand import heavy_atom_mol  # noqa: E402


def placed_rmsd(result, reference) -> float:
    poses = result.docking.poses
    return ligand_rmsd(heavy_atom_mol(result.ligand, poses[0].coordinates), reference) if poses else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=12, help="the first N test pockets (sorted by name)")
    parser.add_argument("--resolution", type=float, default=3.0)
    args = parser.parse_args(argv)
    root = data_root()
    if root is None:
        print("benchmarks/de_novo_build.py: the shared data (../shared/data) is not available", file=sys.stderr)
        return 1
    entries = read_split(WEIGHTS_DIR / "split.json").entries("test")[: args.entries]
    rows = []
    for entry in entries:
        case = simulated_case(root, entry, args.resolution)
        sequences = chain_sequences(residue_table(case.model))
        row = {"case": case.name}
        started = time.perf_counter()
        deposited = api.build(case.density, case.smiles, model=case.model, resolution=case.resolution, use_templates=False, refine=False)
        row["deposited model"] = placed_rmsd(deposited, case.reference)
        row["deposited s"] = time.perf_counter() - started
        started = time.perf_counter()
        try:
            result = api.build(case.density, case.smiles, sequence=sequences, resolution=case.resolution, use_templates=False, refine=False)
            row["de novo model"] = placed_rmsd(result, case.reference)
            row["threaded"] = "yes" if "sequence threaded" in result.report["inputs"]["protein_model"]["message"] else "no"
        except LigfitError as error:
            row["de novo model"] = float("inf")
            row["threaded"] = f"error: {error}"[:60]
        row["de novo s"] = time.perf_counter() - started
        rows.append(row)
        print(" | ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    columns = list(rows[0])
    print(f"\npython benchmarks/de_novo_build.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns) + " |")
    summary = ["| success (≤ 2 Å) |"]
    for column in columns[1:]:
        values = [r[column] for r in rows]
        if all(isinstance(v, float) for v in values) and not column.endswith(" s"):
            summary.append(f" {sum(v <= 2.0 for v in values)}/{len(values)} (median {np.median(values):.2f} Å) |")
        else:
            summary.append(" |")
    print("".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
