"""Flexible-ligand placement benchmark: PoseBusters entries whose ligand has ≥ 12 rotatable bonds (CoA, FAD, NAD…).

    python benchmarks/flexible_ligands.py --quick                 # 7D0P (propionyl-CoA) at 3 and 3.5 Å
    python benchmarks/flexible_ligands.py --resolutions 3.0       # the eight DEFAULT_ENTRIES at 3 Å
    python benchmarks/flexible_ligands.py --all                   # every entry with ≥ 12 rotatable bonds (37)
    python benchmarks/flexible_ligands.py --macrocycles --resolutions 3.0 3.5   # every macrocycle (a flexible ring of ≥ 12 atoms: 10)

Runs ``ligfit.build`` on each simulated pocket exactly as benchmarks/ligand_placement.py does (deposited protein
model, SMILES, symmetry-corrected RMSD to the deposited ligand), prints a Markdown table and writes a CSV to
benchmarks/results/flexible_ligands.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import complex_entries, data_root, simulated_case  # noqa: E402
from benchmarks.ligand_placement import _FIELDS, SUCCESS_RMSD, run_case  # noqa: E402

#: Entries with ≥ 12 rotatable bonds (ligfit.ligand.rotatable_bonds) and ≥ 40 heavy atoms: four CoA thioesters,
#: a dinucleotide, two UDP-sugars, FAD.
DEFAULT_ENTRIES = ["7D0P_1VU", "7S45_ACO", "7PT3_3KK", "7MSR_DCA", "7PK0_BYC", "8DP2_UMA", "8E77_ULP", "7F8T_FAD"]


def flexible_entries(root: Path, min_rotatable: int = 12) -> list[str]:
    """Every PoseBusters entry whose ligand has at least ``min_rotatable`` rotatable bonds."""
    from rdkit import Chem

    from ligfit.ligand import parse_ligand, rotatable_bonds

    return [
        row["entry"] for row in complex_entries(root) if len(rotatable_bonds(Chem.AddHs(parse_ligand(row["lig_smiles"])))) >= min_rotatable
    ]


def macrocycle_entries(root: Path) -> list[str]:
    """Every PoseBusters entry whose ligand is a macrocycle (``ligfit.ligand.is_macrocycle``: a flexible ring of ≥ 12 atoms)."""
    from ligfit.ligand import is_macrocycle, parse_ligand

    return [row["entry"] for row in complex_entries(root) if is_macrocycle(parse_ligand(row["lig_smiles"]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="7D0P_1VU at 3 and 3.5 Å only")
    parser.add_argument("--entries", nargs="+", default=None)
    parser.add_argument("--all", action="store_true", help="every PoseBusters entry with ≥ 12 rotatable bonds")
    parser.add_argument("--macrocycles", action="store_true", help="every PoseBusters entry whose ligand has a flexible ring of ≥ 12 atoms")
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0])
    parser.add_argument("--seed", type=int, default=3, help="seed of the simulated map (3: the screening split where 7D0P failed)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "flexible_ligands.csv")
    args = parser.parse_args(argv)
    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    if args.quick:
        entries = ["7D0P_1VU"]
    elif args.all:
        entries = flexible_entries(root)
    elif args.macrocycles:
        entries = macrocycle_entries(root)
    else:
        entries = args.entries or DEFAULT_ENTRIES
    resolutions = [3.0, 3.5] if args.quick else args.resolutions
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_FIELDS)
        writer.writeheader()
        for resolution in resolutions:
            for entry in entries:
                row = run_case(simulated_case(root, entry, resolution, seed=args.seed), "flexible")[0]
                writer.writerow(row)
                handle.flush()
                rows.append(row)
                print(
                    f"  {row['case']:16s} rmsd {row['rmsd']!s:8s} cc {row['cc']!s:6s} {row['seconds']:6.1f} s", file=sys.stderr, flush=True
                )
    print("| case | heavy atoms | found | RMSD (Å) | CC | time (s) |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['heavy_atoms']} | {row['found']} | {row['rmsd']} | {row['cc']} | {row['seconds']} |")
    good = sum(1 for row in rows if row["rmsd"] != "" and float(row["rmsd"]) <= SUCCESS_RMSD)
    print(f"\nsuccess (≤ {SUCCESS_RMSD} Å): {good}/{len(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
