"""Ligand placement without a protein model: ``build --sequence`` (trace, thread, then fit) vs the deposited model.

Held-out test pockets of the backbone network's split (never in its training, nor the residue-type
classifier's), simulated at 3 Å with their ligand like ``benchmarks/ligand_placement.py``; each is
built from the map and the sequence alone (``build --sequence``: the traced model, searched with
its side chains stopped at Cβ), and once with the deposited pocket as the model. Success: the top pose
within 2 Å of the deposited ligand (symmetry-corrected RMSD). Templates and refinement are off so
that only the protein model differs.

    python benchmarks/de_novo_build.py --entries 8
    python benchmarks/de_novo_build.py --haemoglobin            # real EMD-3488, ccd:HEM, 4 copies
    python benchmarks/de_novo_build.py --haemoglobin --trace joined      # … with joined chains
    python benchmarks/de_novo_build.py --haemoglobin --trace compete     # … uncertain fragments compete with the ligand
    python benchmarks/de_novo_build.py --haemoglobin --max-blobs 12      # … docking 12 blobs, not 4

``--haemoglobin``: the real 3.2 Å map EMD-3488 built with ``--ligand ccd:HEM --copies 4`` from the
sequences of 5NI1 alone, and with 5NI1 (hemes removed) as the model; each deposited heme's
distance to the nearest placed heme (iron to iron, and centroid to centroid). Refinement and
templates are off here too. Below the table: per deposited heme, the traced fragments with atoms
within 2 Å of it (in the search model, side chains to Cβ), their length, the evidence that placed
their sequence, whether they are uncertain (``ligfit.trace.certainty``) and how many of their Cα
lie within 2 Å of a deposited Cα (true protein).
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
from ligfit import api, io  # noqa: E402
from ligfit.backbone.data import read_split, residue_table  # noqa: E402
from ligfit.backbone.infer import WEIGHTS_DIR  # noqa: E402
from ligfit.errors import LigfitError  # noqa: E402
from ligfit.ligand import heavy_atom_mol  # noqa: E402
from ligfit.trace import BUILD_TRACE, COMPETING_TRACE, FRAGMENT_TRACE, JOINED_BUILD_TRACE, build_structure, residue_keys, uncertain_chains  # noqa: E402


def placed_rmsd(result, reference) -> float:
    poses = result.docking.poses
    return ligand_rmsd(heavy_atom_mol(result.ligand, poses[0].coordinates), reference) if poses else float("inf")


HAEMOGLOBIN = ("em/maps_with_models/EMD-3488_5ME2_hemoglobin/emd_3488.mrc", "em/maps_with_models/EMD-3488_5ME2_hemoglobin/5ni1_updated.cif")
TRACERS = {"build": BUILD_TRACE, "fragments": FRAGMENT_TRACE, "joined": JOINED_BUILD_TRACE, "compete": COMPETING_TRACE}


def fragments_on_hemes(traced, hemes: list[np.ndarray], reference_ca: np.ndarray) -> list[str]:
    """Per deposited heme: the traced fragments with search-model atoms within 2 Å of it, their evidence and truth."""
    from scipy.spatial import cKDTree

    flags = uncertain_chains(traced, max(traced.options.compete_below, 6))
    reference = cKDTree(reference_ca)
    lines = []
    for number, heme in enumerate(hemes, start=1):
        tree = cKDTree(heme)
        found = []
        for index, (chain, uncertain) in enumerate(zip(traced.chains, flags)):
            atoms = io.heavy_atoms(build_structure([chain], side_chains_as="cb")).coordinates
            touching = int((tree.query(atoms)[0] < 2.0).sum())
            if touching:
                true = int((reference.query(chain.ca)[0] < 2.0).sum())
                label = "uncertain" if uncertain else "confident"
                found.append(
                    f"#{index}: {touching} atoms, {len(chain.ca)} residues, {chain.evidence}, {label}, {true}/{len(chain.ca)} Cα true"
                )
        lines.append(f"heme {number}: " + ("; ".join(found) if found else "no traced fragment"))
    return lines


def removed_residues(traced, model, reference_ca: np.ndarray) -> str:
    """How many traced residues build removed from the written model (uncertain ones a ligand displaced), and how many were protein."""
    from scipy.spatial import cKDTree

    kept = {(ch.name, r.seqid.num, r.seqid.icode) for ch in model[0] for r in ch}
    removed = [ca for chain, keys in zip(traced.chains, residue_keys(traced.chains)) for ca, key in zip(chain.ca, keys) if key not in kept]
    true = int((cKDTree(reference_ca).query(np.array(removed))[0] < 2.0).sum()) if removed else 0
    return f"removed from the model: {len(removed)} residues, {true} of them with a Cα within 2 Å of a deposited Cα"


def haemoglobin(root: Path, tracer: str, max_blobs: int) -> int:
    """EMD-3488 with ccd:HEM, 4 copies: de novo (``tracer``) vs the deposited protein; distances to the deposited hemes."""
    map_path, model_path = (root / p for p in HAEMOGLOBIN)
    structure = io.read_structure(model_path)
    hemes = [np.array([a.pos.tolist() for a in r]) for ch in structure[0] for r in ch if r.name == "HEM"]
    irons = np.array([[a.pos.tolist() for a in r if a.element.name == "Fe"][0] for ch in structure[0] for r in ch if r.name == "HEM"])
    protein = io.read_structure(model_path)
    protein.remove_ligands_and_waters()
    sequences = chain_sequences(residue_table(protein))
    reference_ca = np.array([a.pos.tolist() for ch in structure[0] for r in ch for a in r if a.name == "CA"])
    print(f"python benchmarks/de_novo_build.py --haemoglobin --trace {tracer} --max-blobs {max_blobs}\n")
    print("| model | placed | per deposited heme: Fe–Fe Å (centroid Å) | ≤ 2 Å | seconds | protein model |\n|---|---|---|---|---|---|")
    for name, kwargs in (
        ("deposited 5NI1", {"model": protein}),
        (f"de novo ({tracer})", {"sequence": sequences, "trace": TRACERS[tracer]}),
    ):
        started = time.perf_counter()
        result = api.build(map_path, "ccd:HEM", resolution=3.2, copies=4, max_blobs=max_blobs, use_templates=False, refine=False, **kwargs)
        seconds = time.perf_counter() - started
        placed = [pose.coordinates for pose in result.placements]
        elements = np.array([atom.GetSymbol() for atom in result.ligand.mol.GetAtoms()])
        placed_irons = np.array([c[elements == "Fe"][0] for c in placed]) if placed else np.zeros((0, 3))
        placed_centres = np.array([c[elements != "H"].mean(axis=0) for c in placed]) if placed else np.zeros((0, 3))
        cells, good = [], 0
        for iron, heme in zip(irons, hemes):
            if len(placed):
                fe = float(np.linalg.norm(placed_irons - iron, axis=1).min())
                centre = float(np.linalg.norm(placed_centres - heme.mean(axis=0), axis=1).min())
                good += centre <= 2.0
                cells.append(f"{fe:.1f} ({centre:.1f})")
            else:
                cells.append("–")
        summary = result.report["inputs"].get("protein_model") or {}
        message = summary.get("message", "given") if "sequence" in kwargs else "given"
        if "uncertain_residues" in summary:
            message += f"; {summary['uncertain_residues']} uncertain residues, {summary['uncertain_residues_removed']} removed"
        if "blobs_docked" in summary:
            message += (
                f"; {summary['blobs_docked']} blobs docked ({summary['freed_blobs']} freed), {summary['poses_given_way']} poses gave way"
            )
        print(f"| {name} | {len(placed)} | {', '.join(cells)} | {good}/4 | {seconds:.0f} | {message} |", flush=True)
        if result.traced is not None:
            print("\n" + "\n".join(fragments_on_hemes(result.traced, hemes, reference_ca)))
            print(removed_residues(result.traced, result.model, reference_ca))
            print(f"\nbuild: {result.message}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=12, help="the first N test pockets (sorted by name)")
    parser.add_argument("--resolution", type=float, default=3.0)
    parser.add_argument("--haemoglobin", action="store_true", help="the real EMD-3488 map with ccd:HEM, 4 copies (see above)")
    parser.add_argument("--trace", choices=sorted(TRACERS), default="build", help="the de novo tracer")
    parser.add_argument("--max-blobs", type=int, default=3, help="--haemoglobin: blobs docked at least (copies 4: 4)")
    args = parser.parse_args(argv)
    root = data_root()
    if root is None:
        print("benchmarks/de_novo_build.py: the shared data (../shared/data) is not available", file=sys.stderr)
        return 1
    if args.haemoglobin:
        return haemoglobin(root, args.trace, args.max_blobs)
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
            result = api.build(
                case.density,
                case.smiles,
                sequence=sequences,
                trace=TRACERS[args.trace],
                resolution=case.resolution,
                use_templates=False,
                refine=False,
            )
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
