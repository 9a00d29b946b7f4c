"""Refinement benchmark: does OpenMM refinement against the map make docked poses better and chemically sound?

For each case ligfit docks the ligand (``ligfit.build``, as in benchmarks/ligand_placement.py),
then ``ligfit.refine.refine`` refines the top poses of the chosen blob with their pocket. Before
and after refinement it measures: the PoseBusters checks (``posebusters``, config "dock" with
the pocket as the protein, "mol" where there is no protein; a pose passes when every check
does), protein–ligand heavy-atom pairs closer than 2.2 Å, the symmetry-corrected heavy-atom
RMSD to the deposited ligand (spyrmsd), the ligand's CC with the map, and the refinement time.

Sets (all from ../shared/data; see benchmarks/cases.py):
  simulated  PoseBusters pockets + deposited ligand simulated at 3 and 4 Å (B-factor blur, occupancy
             0.6–1.0, coloured noise); ligfit gets the pocket and the SMILES
  perturbed  the same maps, starting from the deposited pose moved by ~2 Å (20° about the
             centroid + 1.5 Å): the convergence radius of refinement alone
  em-boxes   the seven real EMDB ligand boxes (no protein)
  d2q        real 1.8 Å 2mFo-DFc density of D2Q in 3NZD, model minus D2Q (NADPH kept, fixed)
  hemes      the real 3.2 Å EMD-3488 map, 5NI1 minus hemes (Fe: no force field → docked pose kept)

    python benchmarks/refinement.py --quick            # CI-sized: 6 entries at 3 and 4 Å + the real sets
    python benchmarks/refinement.py --entries 40       # a random sample
    python benchmarks/refinement.py                    # every entry (hours on 2 cores)
    python benchmarks/refinement.py --summarise a.csv b.csv   # one table from runs made in parallel

Prints a Markdown table, then each of the issue's targets with its measured value, and writes one
CSV row per case (default benchmarks/results/refinement.csv).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rdkit import Chem
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import (  # noqa: E402
    Case,
    data_root,
    em_ligand_boxes,
    hemoglobin_hemes,
    sample_entries,
    simulated_case,
    with_overrides,
    xray_d2q,
)
from benchmarks.ligand_placement import ligand_rmsd  # noqa: E402
from ligfit import io  # noqa: E402
from ligfit.ligand import posed_mol  # noqa: E402
from ligfit.measures import close_contacts as metric_close_contacts  # noqa: E402

WORSE_BY = 0.3  # Å of RMSD


def posebusters_pass(ligand, coordinates: np.ndarray, protein_pdb: Path | None) -> tuple[bool, str]:
    """Whether the pose passes every PoseBusters check ("dock" with a protein, "mol" without); the failed checks."""
    from posebusters import PoseBusters

    mol = posed_mol(ligand, coordinates)
    config = "dock" if protein_pdb is not None else "mol"
    frame = PoseBusters(config=config).bust([mol], mol_cond=str(protein_pdb) if protein_pdb else None)
    row = frame.iloc[0]
    failed = [str(name) for name, value in row.items() if isinstance(value, (bool, np.bool_)) and not value]
    return not failed, ";".join(failed)


def close_contacts(ligand, coordinates: np.ndarray, protein: io.AtomTable | None) -> int:
    """Protein–ligand heavy-atom pairs < 2.2 Å, metal coordination excepted (ligfit.measures.close_contacts)."""
    heavy = ligand.heavy_atom_count
    return metric_close_contacts(coordinates[:heavy], ligand.elements[:heavy], protein)


def deposited_pose(ligand, reference: Chem.Mol) -> np.ndarray:
    """The ligand (all atoms, its order) with heavy atoms on the deposited ones and hydrogens placed by MMFF."""
    from ligfit.refine.posing import pose_from_atoms

    elements = [atom.GetSymbol() for atom in reference.GetAtoms()]
    return pose_from_atoms(ligand, elements, reference.GetConformer().GetPositions(), label="the deposited ligand")


def perturb(coordinates: np.ndarray, heavy: int, seed: int, degrees: float = 20.0, shift: float = 1.5) -> np.ndarray:
    """Rotate by ``degrees`` about the heavy-atom centroid and translate by ``shift`` Å, in random directions."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    direction = rng.normal(size=3)
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(degrees)).as_matrix()
    centre = coordinates[:heavy].mean(axis=0)
    return (coordinates - centre) @ rotation.T + centre + direction / np.linalg.norm(direction) * shift


def run_case(
    case: Case, kind: str, options, perturbed_start: bool = False, references: list[Chem.Mol] | None = None, copies: int = 1
) -> list[dict]:
    """Dock (or perturb the deposited pose), refine, and score; one row per reference ligand."""
    import ligfit
    from ligfit import io
    from ligfit.ligand import heavy_atom_mol, load_ligand
    from ligfit.refine import LigandParameterCache, refine

    started = time.perf_counter()
    references = references or [case.reference]
    cache = LigandParameterCache(method=options.ligand_force_field)
    if perturbed_start:
        ligand = load_ligand(case.smiles)
        start = perturb(deposited_pose(ligand, case.reference), ligand.heavy_atom_count, seed=sum(map(ord, case.name)))
        placements = [(start, [start])]
        docking_seconds = 0.0
    else:
        # Dock only: the refinement under test runs below ("refine" is absent from builds that predate it).
        no_refine = {"refine": False} if "refine" in inspect.signature(ligfit.build).parameters else {}
        built = ligfit.build(case.density, case.smiles, case.model, resolution=case.resolution, copies=copies, **no_refine)
        docking_seconds = time.perf_counter() - started
        ligand = built.ligand
        if not built.found:
            return [
                _row(case, kind, index, ligand, None, None, None, f"docking: {built.message}", docking_seconds)
                for index in range(len(references))
            ]
        docked = getattr(built, "docked_placements", built.placements)
        placements = [(p.coordinates, [q.coordinates for q in built.poses if q.blob_rank == p.blob_rank]) for p in docked]
    rows = []
    model = case.model
    refined_poses = []
    for docked, poses in placements:
        result = refine(model, ligand, poses, case.density, case.resolution, options=options, cache=cache)
        model = result.model if result.model is not None and case.model is not None else model
        refined_poses.append((docked, result))
    protein = None if case.model is None else io.heavy_atoms(model)
    with tempfile.TemporaryDirectory() as folder:
        before_pdb = after_pdb = None
        if case.model is not None:
            before_pdb, after_pdb = Path(folder) / "before.pdb", Path(folder) / "after.pdb"
            io.write_structure(case.model, before_pdb)
            io.write_structure(model, after_pdb)
        before_protein = None if case.model is None else io.heavy_atoms(case.model)
        for index, reference in enumerate(references):
            docked, result = _nearest(refined_poses, ligand, reference)
            row = _row(
                case, kind, index if len(references) > 1 else None, ligand, docked, result, reference, result.message, docking_seconds
            )
            row["pb_before"], row["pb_failed_before"] = posebusters_pass(ligand, docked, before_pdb)
            row["pb_after"], row["pb_failed_after"] = posebusters_pass(ligand, result.coordinates, after_pdb)
            row["close_before"] = close_contacts(ligand, docked, before_protein)
            row["close_after"] = close_contacts(ligand, result.coordinates, protein)
            row["rmsd_before"] = round(ligand_rmsd(heavy_atom_mol(ligand, docked), reference), 3)
            row["rmsd_after"] = round(ligand_rmsd(heavy_atom_mol(ligand, result.coordinates), reference), 3)
            row["rare_torsions_deposited"] = deposited_rare_torsions(reference)
            rows.append(row)
    return rows


def deposited_rare_torsions(reference: Chem.Mol) -> int:
    """Torsions of the deposited ligand far up their crystal-structure potential (what a refined pose is compared with)."""
    from ligfit.measures.torsions import TorsionPreferences

    heavy = Chem.RemoveHs(reference)
    return TorsionPreferences.of(heavy).rare(heavy.GetConformer().GetPositions())


def _nearest(refined_poses: list, ligand, reference: Chem.Mol):
    """The placement (docked pose, refinement result) closest to this reference ligand (hemes: four copies)."""
    from ligfit.ligand import heavy_atom_mol

    if len(refined_poses) == 1:
        return refined_poses[0]
    return min(refined_poses, key=lambda pair: ligand_rmsd(heavy_atom_mol(ligand, pair[0]), reference))


def _row(case: Case, kind: str, index, ligand, docked, result, reference, message: str, docking_seconds: float) -> dict:
    row = {field: "" for field in _FIELDS}
    row.update(
        set=kind,
        case=case.name if index is None else f"{case.name} #{index + 1}",
        resolution=case.resolution,
        heavy_atoms=ligand.heavy_atom_count,
        docking_seconds=round(docking_seconds, 2),
        message=message,
    )
    if result is not None:
        row.update(
            refined=result.refined,
            force_field=result.ligand_force_field or "",
            cc_before=round(result.before.ligand_cc, 3),
            cc_after=round(result.after.ligand_cc, 3),
            q_before="" if result.before.q_score is None else round(result.before.q_score, 3),
            q_after="" if result.after.q_score is None else round(result.after.q_score, 3),
            strain_before="" if result.before.strain is None else round(result.before.strain, 1),
            strain_after="" if result.after.strain is None else round(result.after.strain, 1),
            rare_torsions_before=result.before.rare_torsions,
            rare_torsions_after=result.after.rare_torsions,
            refine_seconds=round(result.seconds, 2),
            map_weight="" if result.map_weight is None else round(result.map_weight, 2),
        )
    return row


def _emit(rows: list[dict], writer: csv.DictWriter, handle) -> list[dict]:
    for row in rows:
        writer.writerow(row)
        if row["rmsd_before"] == "":
            status = row["message"][:60]
        else:
            status = (
                f"rmsd {row['rmsd_before']:.2f} → {row['rmsd_after']:.2f}  PB {_mark(row['pb_before'])}→{_mark(row['pb_after'])}  "
                f"<2.2 Å {row['close_before']}→{row['close_after']}  {row['refine_seconds']} s"
            )
        print(f"  {row['set']:9s} {row['case']:24s} {status}", file=sys.stderr, flush=True)
    handle.flush()  # rows survive an interrupted run
    return rows


def _mark(value) -> str:
    return "pass" if value is True else "fail"


def summarise(rows: list[dict]) -> str:
    """Markdown table: one line per set and resolution."""
    lines = [
        "| set | resolution (Å) | cases | PoseBusters pass before → after | with a pair < 2.2 Å before → after | "
        "median RMSD before → after (Å) | worse by > 0.3 Å | with a rare torsion before → after (deposited) | "
        "median refinement time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        simulated = row["set"] in ("simulated", "perturbed")
        groups.setdefault((row["set"], f"{float(row['resolution']):g}" if simulated else "as deposited"), []).append(row)
    for (kind, resolution), group in sorted(groups.items()):
        scored = [r for r in group if r["rmsd_before"] != ""]
        if not scored:
            lines.append(f"| {kind} | {resolution} | {len(group)} | – | – | – | – | – | – |")
            continue
        count = len(scored)
        pb = f"{sum(r['pb_before'] is True for r in scored)}/{count} → {sum(r['pb_after'] is True for r in scored)}/{count}"
        close = f"{sum(r['close_before'] > 0 for r in scored)} → {sum(r['close_after'] > 0 for r in scored)}"
        before = np.median([r["rmsd_before"] for r in scored])
        after = np.median([r["rmsd_after"] for r in scored])
        worse = sum(r["rmsd_after"] > r["rmsd_before"] + WORSE_BY for r in scored)
        seconds = np.median([r["refine_seconds"] for r in scored])
        rare_before, rare_after, rare_deposited = (
            sum(_count(r.get(f"rare_torsions_{when}")) > 0 for r in scored) for when in ("before", "after", "deposited")
        )
        rare = f"{rare_before} → {rare_after} ({rare_deposited})"
        unscored = "" if count == len(group) else f" (+{len(group) - count} not docked)"
        lines.append(
            f"| {kind} | {resolution} | {count}{unscored} | {pb} | {close} | {before:.2f} → {after:.2f} | {worse} | {rare} | {seconds:.1f} |"
        )
    return "\n".join(lines)


def _count(value) -> int:
    """A count from a row (an int, a CSV string, or "" where it was not measured)."""
    return int(value) if value not in ("", None) else 0


def targets(rows: list[dict]) -> str:
    """The issue's targets over the docked cases (not the perturbed starts), each with its measured value and whether it is met."""
    scored = [r for r in rows if r["rmsd_before"] != "" and r["set"] != "perturbed"]
    if not scored:
        return "no scored cases"
    passed = sum(r["pb_after"] is True for r in scored)
    close = sum(r["close_after"] > 0 for r in scored)
    worse = [r["case"] for r in scored if r["rmsd_after"] > r["rmsd_before"] + WORSE_BY]
    before, after = np.median([r["rmsd_before"] for r in scored]), np.median([r["rmsd_after"] for r in scored])
    refined = [r["refine_seconds"] for r in scored if r["refined"] is True]
    seconds = float(np.median(refined)) if refined else float("nan")
    checks = [
        (
            "PoseBusters checks pass after refinement ≥ 98%",
            f"{passed}/{len(scored)} ({100 * passed / len(scored):.1f}%)",
            passed >= 0.98 * len(scored),
        ),
        ("cases with a protein–ligand pair < 2.2 Å after = 0", str(close), close == 0),
        (f"poses made worse by > {WORSE_BY} Å RMSD = 0", f"{len(worse)}" + (f" ({', '.join(worse)})" if worse else ""), not worse),
        ("median RMSD after < before", f"{after:.2f} < {before:.2f} Å", after < before),
        ("median refinement time ≤ 30 s", f"{seconds:.1f} s over {len(refined)} refined", seconds <= 30.0),
    ]
    return "\n".join(f"- {'met ' if ok else 'MISSED'}  {name}: {value}" for name, value, ok in checks)


def read_rows(paths: list[Path]) -> list[dict]:
    """Rows of earlier runs' CSV files, typed as ``run_case`` makes them (to merge runs made in parallel)."""
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                for key in ("pb_before", "pb_after", "refined"):
                    row[key] = {"True": True, "False": False}.get(row.get(key, ""), "")
                for key in ("rmsd_before", "rmsd_after", "refine_seconds", "resolution"):
                    row[key] = float(row[key]) if row.get(key, "") != "" else ""
                for key in ("close_before", "close_after"):
                    row[key] = int(row[key]) if row.get(key, "") != "" else 0
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    from ligfit.refine import RefinementOptions
    from ligfit.refine.options import SOLVENT_MODELS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized: 6 entries at 3 and 4 Å (docked and perturbed), the real sets")
    parser.add_argument("--entries", type=int, help="random sample of this many PoseBusters entries (default: all)")
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0, 4.0])
    parser.add_argument("--sets", nargs="+", default=["simulated", "perturbed", "em-boxes", "d2q", "hemes"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the entry sample")
    parser.add_argument("--skip", type=int, default=0, help="skip this many entries of the sample (e.g. to calibrate on others)")
    parser.add_argument("--weight-scale", type=float, help="override RefinementOptions.weight_scale")
    parser.add_argument("--solvent", choices=SOLVENT_MODELS, help="override RefinementOptions.solvent")
    parser.add_argument("--cutoff", type=float, help="override RefinementOptions.cutoff (Å)")
    parser.add_argument("--refine-seed", type=int, help="override RefinementOptions.seed (the anneal's velocities)")
    parser.add_argument("--set", nargs="+", metavar="NAME=VALUE", help="override any RefinementOptions field, e.g. anneal_steps=300")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "refinement.csv")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="CSV", help="print the table of earlier runs' CSV files and stop")
    args = parser.parse_args(argv)
    if args.summarise:
        rows = read_rows(args.summarise)
        print(f"ligfit refinement benchmark: {len(rows)} rows from {' '.join(map(str, args.summarise))}")
        print(summarise(rows))
        print(targets(rows))
        return 0
    logging.basicConfig(level=logging.ERROR)

    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    options = RefinementOptions()
    if args.weight_scale is not None:
        options = replace(options, weight_scale=args.weight_scale)
    if args.solvent is not None:
        options = replace(options, solvent=args.solvent)
    if args.cutoff is not None:
        options = replace(options, cutoff=args.cutoff)
    if args.refine_seed is not None:
        options = replace(options, seed=args.refine_seed)
    options = with_overrides(options, args.set)
    count = 6 if args.quick else args.entries or None
    sample = sample_entries(root, None if count is None else count + args.skip, args.seed)[args.skip :]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_FIELDS)
        writer.writeheader()
        for kind in ("simulated", "perturbed"):
            if kind in args.sets:
                for resolution in args.resolutions:
                    for entry in sample:
                        case = simulated_case(root, entry, resolution)
                        rows += _emit(run_case(case, kind, options, perturbed_start=kind == "perturbed"), writer, handle)
        if "em-boxes" in args.sets:
            for case in em_ligand_boxes(root):
                rows += _emit(run_case(case, "em-box", options), writer, handle)
        if "d2q" in args.sets:
            rows += _emit(run_case(xray_d2q(root), "xray-d2q", options), writer, handle)
        if "hemes" in args.sets:
            density, model, hemes = hemoglobin_hemes(root)
            case = Case("EMD-3488 HEM", density, model, "ccd:HEM", hemes["5NI1"][0], 3.2)
            rows += _emit(run_case(case, "em-hemes", options, references=hemes["5NI1"], copies=4), writer, handle)
    scope = "quick" if args.quick else f"{len(sample)} entries"
    print(f"ligfit refinement benchmark ({scope}, sets: {' '.join(args.sets)}, seed {args.seed}, {options}); rows in {args.out}")
    print(summarise(rows))
    print(targets(rows))
    return 0


_FIELDS = [
    "set", "case", "resolution", "heavy_atoms", "refined", "force_field", "rmsd_before", "rmsd_after", "pb_before", "pb_after",
    "pb_failed_before", "pb_failed_after", "close_before", "close_after", "cc_before", "cc_after", "q_before", "q_after", "strain_before", "strain_after",
    "rare_torsions_before", "rare_torsions_after", "rare_torsions_deposited", "map_weight", "docking_seconds", "refine_seconds", "message",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
