"""Speed per blob: where ``build``'s time goes when it docks and refines a ligand in one blob.

Runs ``ligfit.build`` (templates, docking, OpenMM refinement, Q-scores: everything the pipeline
does per blob) under cProfile on real and simulated cases, and splits its time into stages by
the cumulative time of the functions that do them (see ``STAGES``):

  em-box    AGS (31 heavy atoms) in the real EMD-21553 box of 6W6E (no protein)
  hemes     EMD-3488 with 5NI1 minus its hemes: 1 heme (1 blob), and 2 and 4 copies (blob scaling)
  ligand    simulated PoseBusters pockets at 3 Å with ligands of 10 / 21 / 29 / 40 heavy atoms
  box       the 21-atom pocket simulated in boxes with 4 / 10 / 16 Å margins around the pocket
  voxel     the 21-atom pocket simulated at 0.5 / 0.75 / 1.0 Å voxels

    python benchmarks/blob_speed.py --quick     # AGS box, one heme, the 10- and 40-atom pockets
    python benchmarks/blob_speed.py             # every case above (about 10 min on 2 idle cores)

    python benchmarks/blob_speed.py --quick --device cuda   # the docking search on a CUDA GPU (one untimed warm-up build first)

Prints a Markdown table (seconds per stage, RMSD to the deposited pose) and writes CSV rows to
benchmarks/results/blob_speed.csv. Times are wall seconds of one process with torch on
``--threads`` threads (OpenMM's from OPENMM_CPU_THREADS, else every core); the profiler adds ~10 % to Python-heavy stages.
Stages that run in threads of their own (blobs docked side by side, the ligand's parameters) are counted in
thread-seconds: two blobs docked at once for 3 s each count 6 s. On a shared machine
compare before/after as paired ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import pstats
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import Case, data_root, em_ligand_boxes, hemoglobin_hemes, simulated_case, with_overrides  # noqa: E402
from benchmarks.ligand_placement import ligand_rmsd  # noqa: E402
from ligfit.dock import DockingOptions  # noqa: E402
from ligfit.refine import RefinementOptions  # noqa: E402

#: Stage → (module path ending, function name[, caller function name]): its time is that function's cumulative time
#: (when called from that caller). Stages inside "docking" and "refinement" are parts of them.
STAGES: dict[str, tuple[str, ...]] = {
    "ligand": ("ligfit/ligand.py", "load_ligand"),
    "segmentation": ("ligfit/pipeline.py", "_unexplained_density"),
    "templates": ("ligfit/templates/transplant.py", "seeds_for_build"),
    "docking": ("ligfit/dock/place.py", "dock"),
    "  site grids": ("ligfit/dock/search.py", "around"),
    "  conformer search": ("ligfit/dock/search.py", "optimise", "conformer_search"),
    "  anchor+grow": ("ligfit/dock/grow.py", "grow_poses"),
    "  refine+hops": ("ligfit/dock/place.py", "_refine"),
    "  MMFF+score": ("ligfit/dock/place.py", "_final_pose"),
    "refinement": ("ligfit/pipeline.py", "refine_placements"),
    "  parameters": ("ligfit/refine/parameters.py", "get"),  # in a thread beside the pocket's protein
    "  pocket protein": ("ligfit/refine/system.py", "build_pocket_protein"),
    "  system": ("ligfit/refine/system.py", "build_system"),
    "  map term": ("ligfit/refine/protocol.py", "_add_map_term"),
    "  MD starts": ("ligfit/refine/protocol.py", "_refine_starts"),
    "  anneal": ("ligfit/refine/protocol.py", "_anneal"),  # part of "MD starts": dynamics + the minimisation after it
    "  metrics": ("ligfit/refine/metrics.py", "pose_metrics"),
    "q-scores": ("ligfit/pipeline.py", "ligand_fit"),
}

#: PoseBusters entries by ligand heavy atoms (rotatable bonds): 10 (3), 21 (3), 29 (7), 40 (9).
LIGAND_SIZES = {10: "6T88_MWQ", 21: "7F5D_EUO", 29: "6TW7_NZB", 40: "7BTT_F8R"}
BOX_MARGINS = (4.0, 10.0, 16.0)  # Å of map around the pocket (the benchmark's default is 4)
VOXEL_SIZES = (0.5, 0.75, 1.0)  # Å


@dataclass(frozen=True)
class SpeedCase:
    """A placement problem and the build settings it is run with."""

    group: str
    label: str
    case: Case
    references: list[Chem.Mol]
    copies: int = 1


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each stage in ``STAGES`` (0 where it did not run)."""
    seconds = dict.fromkeys(STAGES, 0.0)
    for (filename, _, name), (_, _, _, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
        path = filename.replace("\\", "/")
        for stage, (suffix, function, *caller) in STAGES.items():
            if name != function or not path.endswith(suffix):
                continue
            if caller:
                cumulative = sum(edge[3] for (_, _, caller_name), edge in callers.items() if caller_name == caller[0])
            seconds[stage] += cumulative
    return seconds


@contextlib.contextmanager
def _profiling_threads(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """Every Python thread started meanwhile runs under a cProfile of its own, appended to ``profiles``.

    Docking runs blobs side by side and its searches in lanes, in threads of their own: their stages are counted in
    thread-seconds (two blobs docked at once for 3 s each count 6 s), the stages of the calling thread in wall seconds.
    """
    original = threading.Thread.run

    def profiled(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(original, thread)

    threading.Thread.run = profiled  # type: ignore[method-assign]
    try:
        yield
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]


def run(
    speed_case: SpeedCase,
    profile: bool,
    dump: Path | None = None,
    refinement: RefinementOptions | None = None,
    device: str = DockingOptions.device,
) -> dict:
    """Build once (under cProfile when ``profile``) and return the row: seconds per stage, RMSD, verdict.

    ``refinement``: the refinement's options (None: the defaults); ``device``: where the docking search runs.
    """
    import ligfit
    from ligfit.ligand import heavy_atom_mol

    case = speed_case.case
    profiler = cProfile.Profile() if profile else None
    thread_profiles: list[cProfile.Profile] = []
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    with _profiling_threads(thread_profiles) if profiler else contextlib.nullcontext():
        result = ligfit.build(
            case.density,
            case.smiles,
            case.model,
            resolution=case.resolution,
            copies=speed_case.copies,
            max_blobs=max(3, speed_case.copies),
            refinement=refinement,
            docking=DockingOptions(device=device),
        )
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - started
    if profiler:
        stats = pstats.Stats(profiler)
        for thread_profile in thread_profiles:
            stats.add(thread_profile)
        seconds = stage_seconds(stats)
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(dump / f"{speed_case.label.split(' (')[0].replace(' ', '_')}.prof")
    else:
        seconds = dict.fromkeys(STAGES, 0.0) | {k: v for k, v in result.timings.items() if k in STAGES}
    # Each placement against its nearest deposited copy; the worst placement is reported.
    rmsds = [
        min(ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference) for reference in speed_case.references)
        for pose in result.placements
    ]
    blobs = len({pose.blob_rank for pose in result.poses})
    return {
        "group": speed_case.group,
        "case": speed_case.label,
        "heavy_atoms": result.ligand.heavy_atom_count,
        "rotatable": len(result.ligand.rotatable_bonds),
        "map_grid": "x".join(map(str, case.density.shape)),
        "voxel_A": round(float(np.mean(case.density.voxel_size)), 3),
        "blobs_docked": blobs,
        "placed": len(result.placements),
        "wall": round(wall, 2),
        **{stage.strip(): round(value, 2) for stage, value in seconds.items()},
        "per_blob": round((seconds["docking"] + seconds["refinement"]) / max(blobs, 1), 2),
        "rmsd": round(max(rmsds), 2) if rmsds else "",
        "status": result.status,
    }


def speed_cases(root: Path, quick: bool, only: list[str] | None = None) -> list[SpeedCase]:
    """The cases of the module docstring (a subset with ``quick``; with ``only``, those whose label holds one of its words)."""

    def wanted(label: str) -> bool:
        return not only or any(word in label for word in only)

    cases = []
    if wanted("6W6E AGS"):
        boxes = {case.name: case for case in em_ligand_boxes(root)}
        ags = boxes["6W6E AGS"]
        cases.append(SpeedCase("em-box", "6W6E AGS", ags, [ags.reference]))
    heme_copies = [copies for copies in ((1,) if quick else (1, 2, 4)) if wanted(f"EMD-3488 {copies} heme(s)")]
    if heme_copies:
        density, model, hemes = hemoglobin_hemes(root)
    for copies in heme_copies:
        case = Case("EMD-3488 HEM", density, model, "ccd:HEM", hemes["5NI1"][0], 3.2)
        cases.append(SpeedCase("hemes", f"EMD-3488 {copies} heme(s)", case, hemes["5NI1"], copies))
    sizes = (10, 40) if quick else tuple(LIGAND_SIZES)
    for heavy in sizes:
        entry = LIGAND_SIZES[heavy]
        if wanted(f"{entry} ({heavy} atoms)"):
            case = simulated_case(root, entry, 3.0)
            cases.append(SpeedCase("ligand", f"{entry} ({heavy} atoms)", case, [case.reference]))
    if not quick:
        entry = LIGAND_SIZES[21]
        for margin in BOX_MARGINS[1:]:
            case = _simulated_with_grid(root, entry, 3.0, margin=margin, voxel=None)
            cases.append(SpeedCase("box", f"{entry} margin {margin:g} Å", case, [case.reference]))
        for voxel in VOXEL_SIZES:
            case = _simulated_with_grid(root, entry, 3.0, margin=4.0, voxel=voxel)
            cases.append(SpeedCase("voxel", f"{entry} voxel {voxel:g} Å", case, [case.reference]))
    return cases


def _simulated_with_grid(root: Path, entry: str, resolution: float, margin: float, voxel: float | None) -> Case:
    """``simulated_case`` re-simulated on another grid (margin around the pocket, voxel size)."""
    from benchmarks import cases as case_module
    from ligfit import maps

    original = maps.grid_around

    def grid_around(coordinates, voxel_size, padding):
        return original(coordinates, voxel if voxel is not None else voxel_size, margin)

    case_module.maps.grid_around = grid_around  # the one place simulated_case chooses its grid
    try:
        case = simulated_case(root, entry, resolution)
    finally:
        case_module.maps.grid_around = original
    return case


def table(rows: list[dict]) -> str:
    """Markdown: one line per case, seconds per stage."""
    stages = [stage.strip() for stage in STAGES]
    header = ["group", "case", "atoms (rot)", "grid", "voxel Å", "blobs", *stages, "wall", "per blob", "RMSD Å", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row["group"],
            row["case"],
            f"{row['heavy_atoms']} ({row['rotatable']})",
            row["map_grid"],
            row["voxel_A"],
            row["blobs_docked"],
            *[f"{row[stage]:.1f}" for stage in stages],
            f"{row['wall']:.1f}",
            f"{row['per_blob']:.1f}",
            row["rmsd"],
            row["status"],
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="AGS box, one heme, the 10- and 40-atom pockets")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (default 2: the target's 2 cores; OpenMM: OPENMM_CPU_THREADS)"
    )
    parser.add_argument("--no-profile", action="store_true", help="no cProfile: the pipeline's own stage timer (fewer stages)")
    parser.add_argument("--dump", type=Path, help="write each case's cProfile stats into this folder (for pstats/snakeviz)")
    parser.add_argument("--only", nargs="+", help="run only the cases whose label contains one of these")
    parser.add_argument("--cutoff", type=float, help="override RefinementOptions.cutoff (Å), to time it against the default")
    parser.add_argument("--set", nargs="+", metavar="NAME=VALUE", help="override any RefinementOptions field, e.g. anneal_steps=300")
    parser.add_argument(
        "--device", default=DockingOptions.device, help="where the docking search runs: auto, cpu, cuda (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "blob_speed.csv")
    args = parser.parse_args(argv)
    refinement = None
    if args.cutoff is not None or args.set:
        refinement = with_overrides(RefinementOptions() if args.cutoff is None else RefinementOptions(cutoff=args.cutoff), args.set)

    root = data_root()
    if root is None:
        print("../shared/data is not available; nothing to benchmark", file=sys.stderr)
        return 0
    import torch

    from ligfit.runtime import torch_device

    torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    cases = [c for c in speed_cases(root, args.quick, args.only) if not args.only or any(word in c.label for word in args.only)]
    if device.type == "cuda" and cases:  # the CUDA context and kernels load on first use: not a blob's time
        run(cases[0], profile=False, device=args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out, "w", newline="") as handle:
        writer = None
        for speed_case in cases:
            row = run(speed_case, profile=not args.no_profile, dump=args.dump, refinement=refinement, device=args.device)
            writer = writer or csv.DictWriter(handle, fieldnames=list(row))
            if handle.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            rows.append(row)
            print(
                f"  {row['case']:28s} docking {row['docking']:6.1f} s  refinement {row['refinement']:6.1f} s  rmsd {row['rmsd']}",
                file=sys.stderr,
                flush=True,
            )
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"ligfit speed per blob ({'quick' if args.quick else 'full'}, torch/OpenMM threads {args.threads}, docking on {where}); rows in {args.out}"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
