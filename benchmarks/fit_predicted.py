"""Benchmark: fitting models that are not placed in the map (ligfit fit).

Cases:
- EMD-3488 (3.2 Å) with the chains of 5ME2 (and, in full mode, 5NI1) each moved to a random
  orientation and up to 15 Å away: fraction of Cα back within 3 Å of a deposited chain of the
  same sequence, CC_mask of the fitted vs the deposited model, time.
- EMD-1461 and EMD-2513 with their unfitted AlphaFold2 models: CC_mask, mean Q-score of the
  fitted model, time (no deposited model in the files; the resolution is not in the files either:
  --resolution-af2, default 4 Å).
- Time: the TYK2 model of examples/ (290 residues) moved, into a simulated 200³ map.
- Full mode: a simulated 4 Å map (250³ voxels of 1 Å) of two hemoglobin tetramers (8 chains),
  every chain moved at random; and the ligand: ``ligfit build`` of ccd:HEM (4 copies) on EMD-3488
  with 5ME2 moved at random and given pLDDT-like B-factors (fitted by the build), against the same
  build with the deposited 5ME2: hemes within 2 Å of 5NI1's and of 5ME2's.

Every fit is followed by the flexible whole-model refinement (ligfit.refine.refine_whole_model):
CC_mask after the rigid/domain fit and after the flexible one, the target (deposited − 0.02),
the mean per-residue CC gain, bond/angle RMSD against Amber14, and the time of each step.

    python benchmarks/fit_predicted.py --quick     # 5ME2 on EMD-3488, the Tyk2 timing, the two AF2 maps
    python benchmarks/fit_predicted.py             # + 5NI1, the simulated 8-chain case and the hemes
    python benchmarks/fit_predicted.py --only hemes  # one case (names: 5me2 5ni1 tyk2 1461 2513 8-chains hemes)

Prints a table; writes one CSV row per case (default benchmarks/results/fit_predicted.csv).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import data_root  # noqa: E402
from ligfit import io, maps  # noqa: E402
from ligfit.measures import expected_q_score, q_scores  # noqa: E402
from ligfit.predicted import FitResult, fit_model, plddt, score  # noqa: E402
from ligfit.refine import WholeModelOptions, WholeModelRefinement, refine_whole_model  # noqa: E402
from ligfit.refine.whole_model import WHOLE_MODEL_SOLVENT_MODELS  # noqa: E402

#: The exhaustive rigid fit that the AlphaFold models' flexible fit is compared with (the default search: 25°, 20 peaks).
EXHAUSTIVE_SPACING, EXHAUSTIVE_CANDIDATES = 10.0, 60

FIELDS = [
    "case",
    "chains",
    "resolution",
    "ca_within_3A",
    "cc_mask_rigid",
    "cc_mask_exhaustive_rigid",
    "cc_mask_flexible",
    "cc_mask_deposited",
    "cc_mask_target",
    "residue_cc_gain",
    "q_score_rigid",
    "q_score_flexible",
    "q_score_deposited",
    "q_score_expected",
    "bond_angle_rmsd",
    "domains",
    "seconds_fit",
    "seconds_flexible",
    "seconds_build",
    "hemes_within_2A",
]


def moved_chains(structure: gemmi.Structure, seed: int, max_shift: float = 15.0) -> gemmi.Structure:
    """Every chain rotated at random about its centroid and shifted up to ``max_shift`` Å."""
    rng = np.random.default_rng(seed)
    moved = structure.clone()
    for chain in moved[0]:
        atoms = [atom for residue in chain for atom in residue]
        xyz = np.array([atom.pos.tolist() for atom in atoms])
        centre = xyz.mean(axis=0)
        rotation = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
        shift = rng.uniform(-1, 1, 3)
        shift *= rng.uniform(0, max_shift) / np.linalg.norm(shift)
        for atom, position in zip(atoms, (xyz - centre) @ rotation.T + centre + shift):
            atom.pos = gemmi.Position(*position)
    return moved


def _ca_by_chain(structure: gemmi.Structure) -> dict[str, tuple[str, np.ndarray]]:
    result = {}
    for chain in structure[0]:
        residues = [r for r in chain if r.find_atom("CA", "*")]
        result[chain.name] = (gemmi.one_letter_code([r.name for r in residues]), np.array([r["CA"][0].pos.tolist() for r in residues]))
    return result


def ca_recovered(fitted: gemmi.Structure, deposited: gemmi.Structure) -> float:
    """Fraction of fitted Cα within 3 Å of the same Cα in some deposited chain of the same sequence."""
    truth = _ca_by_chain(deposited)
    hits, total = 0, 0
    for sequence, ca in _ca_by_chain(fitted).values():
        total += len(ca)
        same = [xyz for seq, xyz in truth.values() if seq == sequence and len(xyz) == len(ca)]
        hits += max((int(np.sum(np.linalg.norm(ca - xyz, axis=1) < 3.0)) for xyz in same), default=0)
    return hits / max(total, 1)


def model_cc(density: maps.DensityMap, structure: gemmi.Structure, resolution: float) -> float:
    atoms = io.heavy_atoms(structure).coordinates
    return score.cc_mask(density, atoms, np.ones(len(atoms)), resolution)[0]


def mean_q(density: maps.DensityMap, structure: gemmi.Structure) -> float:
    return float(np.nanmean(q_scores(density, io.heavy_atoms(structure).coordinates)))


def protein_only(structure: gemmi.Structure) -> gemmi.Structure:
    copy = structure.clone()
    copy.remove_ligands_and_waters()
    copy.remove_hydrogens()
    copy.remove_empty_chains()
    return copy


def flexible_fit(result: FitResult, density: maps.DensityMap, resolution: float, options: WholeModelOptions) -> WholeModelRefinement:
    """The flexible whole-model refinement as ``ligfit fit`` runs it after the rigid/domain fit."""
    return refine_whole_model(result.structure, density, resolution, confidence=plddt(result.structure), options=options)


def fit_columns(density: maps.DensityMap, result: FitResult, flexible: WholeModelRefinement, resolution: float, seconds: float) -> dict:
    after = flexible.geometry_after
    return {
        "chains": len(result.placements),
        "resolution": resolution,
        "cc_mask_rigid": round(model_cc(density, result.structure, resolution), 3),
        "cc_mask_flexible": round(model_cc(density, flexible.structure, resolution), 3),
        "residue_cc_gain": round(flexible.residue_cc_gain, 3),
        "q_score_rigid": round(mean_q(density, result.structure), 3),
        "q_score_flexible": round(mean_q(density, flexible.structure), 3),
        "q_score_expected": round(expected_q_score(resolution), 3),
        "bond_angle_rmsd": "" if after is None else f"{after.bond_rmsd:.3f}/{after.angle_rmsd:.2f}",
        "domains": "/".join(str(p.domains) for p in result.placements),
        "seconds_fit": round(seconds, 1),
        "seconds_flexible": round(flexible.seconds, 1),
    }


def known_case(
    name: str, density: maps.DensityMap, deposited: gemmi.Structure, resolution: float, seed: int, flexible_options: WholeModelOptions
) -> dict:
    deposited = protein_only(deposited)
    start = time.perf_counter()
    result = fit_model(moved_chains(deposited, seed), density, resolution, seed=seed)
    seconds = time.perf_counter() - start
    flexible = flexible_fit(result, density, resolution, replace(flexible_options, seed=seed))
    deposited_cc = model_cc(density, deposited, resolution)
    return {
        "case": name,
        "ca_within_3A": f"{ca_recovered(result.structure, deposited):.3f} → {ca_recovered(flexible.structure, deposited):.3f}",
        "cc_mask_deposited": round(deposited_cc, 3),
        "cc_mask_target": round(deposited_cc - 0.02, 3),
        "q_score_deposited": round(mean_q(density, deposited), 3),
        **fit_columns(density, result, flexible, resolution, seconds),
    }


def af2_case(root: Path, entry: str, resolution: float, flexible_options: WholeModelOptions) -> dict:
    """No deposited model: the flexible fit is judged against the same model rigidly fitted by an exhaustive search
    (EXHAUSTIVE_SPACING° rotation grid, EXHAUSTIVE_CANDIDATES peaks refined rigidly and by domains: what a careful rigid
    hand fit reaches) and the Q-score MapQ expects at this resolution."""
    folder = root / "em" / "maps_with_unfitted_af2" / f"EMD-{entry}"
    density = maps.read_map(folder / f"emd_{entry}.mrc")
    predicted = io.read_structure(folder / f"emd_{entry}_af2_model.pdb")
    start = time.perf_counter()
    result = fit_model(predicted, density, resolution)
    seconds = time.perf_counter() - start
    flexible = flexible_fit(result, density, resolution, replace(flexible_options, seed=0))
    exhaustive = fit_model(predicted, density, resolution, angular_spacing=EXHAUSTIVE_SPACING, candidates=EXHAUSTIVE_CANDIDATES)
    return {
        "cc_mask_exhaustive_rigid": round(model_cc(density, exhaustive.structure, resolution), 3),
        "case": f"EMD-{entry} AF2 ({len(result.trimmed)} trimmed; {', '.join(p.source_chain for p in result.placements)})",
        "ca_within_3A": "",
        "cc_mask_deposited": "",
        "cc_mask_target": "",
        "q_score_deposited": "",
        **fit_columns(density, result, flexible, resolution, seconds),
    }


def heme_case(root: Path, seed: int) -> list[dict]:
    """``ligfit build`` of four hemes on EMD-3488 with 5ME2 as deposited and with 5ME2 moved (pLDDT-like B-factors)."""
    import ligfit
    from benchmarks.cases import hemoglobin_hemes
    from benchmarks.ligand_placement import ligand_rmsd
    from ligfit.ligand import heavy_atom_mol

    density, deposited, hemes = hemoglobin_hemes(root, "5ME2")
    deposited = protein_only(deposited)
    predicted = moved_chains(deposited, seed)
    for index, residue in enumerate(r for chain in predicted[0] for r in chain):
        for atom in residue:
            atom.b_iso = 85.0 + 10.0 * np.sin(index)  # one pLDDT-like value per residue
    rows = []
    for label, model in (("deposited 5ME2", deposited), ("5ME2 moved, pLDDT B-factors (fitted by build)", predicted)):
        start = time.perf_counter()
        result = ligfit.build(density, "ccd:HEM", model, resolution=3.2, copies=4, seed=seed)
        seconds = time.perf_counter() - start
        within = {}
        for name, references in hemes.items():
            poses = [heavy_atom_mol(result.ligand, p.coordinates) for p in result.placements] if result.found else []
            best = [min((ligand_rmsd(pose, ref) for pose in poses), default=float("inf")) for ref in references]
            within[name] = f"{sum(b < 2.0 for b in best)}/{len(references)} ({', '.join(f'{b:.2f}' for b in best)})"
        fit = result.inputs.get("model_fit") if hasattr(result, "inputs") else None
        flexible = (fit or {}).get("flexible") or {}
        rows.append(
            {
                "case": f"EMD-3488 build ccd:HEM ×4, {label}",
                "chains": len(deposited[0]),
                "resolution": 3.2,
                "cc_mask_flexible": flexible.get("cc_mask_after", ""),
                "seconds_flexible": flexible.get("seconds", ""),
                "seconds_build": round(seconds, 1),
                "hemes_within_2A": f"vs 5NI1 {within['5NI1']}; vs 5ME2 {within['5ME2']}",
            }
        )
    return rows


def simulated_complex(deposited: gemmi.Structure, resolution: float) -> tuple[maps.DensityMap, gemmi.Structure]:
    """Two copies of the tetramer 65 Å apart in a 250³ box of 1 Å voxels, simulated at ``resolution`` Å with noise."""
    from benchmarks.cases import with_shifted_copy

    pair = with_shifted_copy(protein_only(deposited), 65.0)
    centre = io.heavy_atoms(pair).coordinates.mean(axis=0)
    like = maps.DensityMap(np.zeros((250, 250, 250), np.float32), 1.0, centre - 125.0)
    return maps.simulate(pair, resolution, like=like, noise=0.2, seed=3), pair


def timing_case(seed: int, flexible_options: WholeModelOptions) -> dict:
    """The time target: the 290-residue TYK2 kinase model (examples/) moved, into a simulated 3.5 Å map of 200³ voxels (1.05 Å)."""
    deposited = io.read_structure(Path(__file__).resolve().parent.parent / "examples" / "tyk2" / "protein.pdb")
    centre = io.heavy_atoms(deposited).coordinates.mean(axis=0)
    like = maps.DensityMap(np.zeros((200, 200, 200), np.float32), 1.05, centre - 105.0 + np.array([20.0, -15.0, 10.0]))
    return known_case(
        "simulated 3.5 Å, TYK2 (290 res), 200³",
        maps.simulate(deposited, 3.5, like=like, noise=0.2, seed=0),
        deposited,
        3.5,
        seed,
        flexible_options,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5ME2 on EMD-3488, the Tyk2 timing and the two AF2 maps only")
    parser.add_argument("--only", nargs="+", help="run only these cases: 5me2 5ni1 tyk2 1461 2513 8-chains hemes")
    parser.add_argument("--resolution-af2", type=float, default=4.0, help="resolution (Å) assumed for EMD-1461 and EMD-2513")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cutoff", type=float, help="override WholeModelOptions.cutoff (Å) of the flexible refinement")
    parser.add_argument(
        "--solvent", choices=WHOLE_MODEL_SOLVENT_MODELS, help="override WholeModelOptions.solvent of the flexible refinement"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fit_predicted.csv")
    args = parser.parse_args(argv)
    flexible_options = WholeModelOptions()
    if args.cutoff is not None:
        flexible_options = replace(flexible_options, cutoff=args.cutoff)
    if args.solvent is not None:
        flexible_options = replace(flexible_options, solvent=args.solvent)
    root = data_root()
    if root is None:
        print("../shared/data is not available", file=sys.stderr)
        return 1
    hemoglobin = root / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"

    def density() -> maps.DensityMap:
        return maps.read_map(hemoglobin / "emd_3488.mrc")

    def simulated() -> dict:
        simulated_map, pair = simulated_complex(io.read_structure(hemoglobin / "5me2.pdb"), 4.0)
        return known_case("simulated 4 Å, 2×Hb (8 chains), 250³", simulated_map, pair, 4.0, args.seed, flexible_options)

    jobs = {
        "5me2": (
            True,
            lambda: known_case(
                "EMD-3488 5ME2 moved", density(), io.read_structure(hemoglobin / "5me2.pdb"), 3.2, args.seed, flexible_options
            ),
        ),
        "5ni1": (
            False,
            lambda: known_case(
                "EMD-3488 5NI1 moved", density(), io.read_structure(hemoglobin / "5ni1_updated.cif"), 3.2, args.seed, flexible_options
            ),
        ),
        "tyk2": (True, lambda: timing_case(args.seed, flexible_options)),
        "1461": (True, lambda: af2_case(root, "1461", args.resolution_af2, flexible_options)),
        "2513": (True, lambda: af2_case(root, "2513", args.resolution_af2, flexible_options)),
        "8-chains": (False, simulated),
        "hemes": (False, lambda: heme_case(root, args.seed)),
    }
    chosen = args.only or [name for name, (quick, _) in jobs.items() if quick or not args.quick]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, restval="")
        writer.writeheader()
        for name in chosen:
            produced = jobs[name][1]()
            for row in produced if isinstance(produced, list) else [produced]:
                rows.append(row)
                writer.writerow(row)
                handle.flush()
                print(" | ".join(str(row.get(field, "")) for field in FIELDS), flush=True)
    print()
    print("| " + " | ".join(FIELDS) + " |")
    print("|" + "---|" * len(FIELDS))
    for row in rows:
        print("| " + " | ".join(str(row.get(field, "")) for field in FIELDS) + " |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
