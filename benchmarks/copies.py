"""``build --copies auto``: every copy of the ligand the density supports, without counting them.

Cases (each run in its own process, so its peak memory is its own):
- ``emd3488``: the real 3.2 Å map EMD-3488 with 5NI1 (hemes and waters removed), ccd:HEM, ``--copies auto``
  beside ``--copies 4`` (the user counting them). Truth: 5NI1's four hemes.
- ``assembly``: two haemoglobin tetramers 65 Å apart (5NI1 twice: 8 chains, 8 hemes) simulated at 3.5 Å in
  a 250³ box of 1 Å voxels with noise; the model without hemes, ``--copies auto``. Beside it the
  same build in a 40 Å box around one heme (the whole model given; the user's alternative of
  boxing each site), so the whole-map run can be judged against eight boxed runs.
- ``assembly-decoy``: the same 250³ map simulated without hemes: every placement is wrong.

A heme counts as found when a placement lies within 2 Å of it (symmetry-corrected RMSD); a
placement more than 2 Å from every heme is a false placement.

    python benchmarks/copies.py                  # all cases
    python benchmarks/copies.py --cases emd3488  # one case
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("emd3488", "assembly", "assembly-decoy")
SHIFT = 65.0  # Å between the two tetramers (as benchmarks/fit_predicted.simulated_complex)


def _score(result, references) -> dict:
    """Hemes found (a placement within 2 Å), false placements, each placement's confidence."""
    from benchmarks.ligand_placement import ligand_rmsd
    from ligfit.ligand import heavy_atom_mol

    placed = [heavy_atom_mol(result.ligand, pose.coordinates) for pose in result.placements] if result.found else []
    table = np.array([[ligand_rmsd(pose, reference) for reference in references] for pose in placed]).reshape(len(placed), len(references))
    found = int((table.min(axis=0) <= 2.0).sum()) if len(placed) else 0
    false = int((table.min(axis=1) > 2.0).sum()) if len(references) else len(placed)
    return {
        "placed": len(placed),
        "found": f"{found}/{len(references)}",
        "false placements": false,
        "confidences": " ".join(f"{pose.confidence:.2f}" for pose in result.placements),
        "rmsd": " ".join(f"{value:.2f}" for value in table.min(axis=1)) if len(placed) and len(references) else "",
    }


def run_case(name: str) -> list[dict]:
    """One case in this process; rows with time and this process's peak memory."""
    import ligfit
    from benchmarks.cases import data_root, hemoglobin_hemes, residues_as_mols, with_shifted_copy
    from ligfit import io, maps

    root = data_root()
    density, model, hemes = hemoglobin_hemes(root)
    rows = []

    def build(label: str, density_map, copies, references) -> None:
        started = time.perf_counter()
        result = ligfit.build(density_map, "ccd:HEM", model, resolution=resolution, copies=copies)
        seconds = time.perf_counter() - started
        rows.append({"case": label, "copies": copies, **_score(result, references), "seconds": round(seconds, 1)})
        print(rows[-1], flush=True)

    if name == "emd3488":
        resolution = 3.2
        build("EMD-3488 + 5NI1 (real, 3.2 Å)", density, "auto", hemes["5NI1"])
        build("EMD-3488 + 5NI1 (real, 3.2 Å)", density, 4, hemes["5NI1"])
        return rows
    resolution = 3.5
    deposited = io.read_structure(root / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin" / "5ni1_updated.cif")
    deposited.remove_waters()
    pair = with_shifted_copy(deposited, SHIFT)  # hemes kept
    references = residues_as_mols(pair, "HEM")
    model = pair.clone()
    io.remove_residues(model, "HEM")
    model.remove_empty_chains()
    truth = pair if name == "assembly" else model
    centre = io.heavy_atoms(pair).coordinates.mean(axis=0)
    like = maps.DensityMap(np.zeros((250, 250, 250), np.float32), 1.0, centre - 125.0)
    simulated = maps.simulate(truth, resolution, like=like, noise=0.2, seed=3)
    label = "2×Hb, 8 hemes, 250³ (simulated 3.5 Å)" if name == "assembly" else "2×Hb without hemes, 250³ (decoy)"
    build(label, simulated, "auto", references if name == "assembly" else [])
    if name == "assembly":
        heme = references[0].GetConformer().GetPositions().mean(axis=0)
        box = maps.box(simulated, heme, 40.0)
        build("one 40 Å box around a heme (the same map)", box, 1, references[:1])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)  # run one case in this process (JSON on the last line)
    args = parser.parse_args(argv)
    if args.one:
        rows = run_case(args.one)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(json.dumps([{**row, "peak GB": round(peak, 2)} for row in rows]))
        return 0
    from benchmarks.cases import data_root

    if data_root() is None:
        print("benchmarks/copies.py: the shared data (../shared/data) is not available", file=sys.stderr)
        return 1
    rows = []
    for case in args.cases:
        done = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    columns = ["case", "copies", "placed", "found", "false placements", "confidences", "rmsd", "seconds", "peak GB"]
    print(f"\npython benchmarks/copies.py --cases {' '.join(args.cases)}\n")
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(column, "")) for column in columns) + " |")
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "copies.json", "w") as handle:
        json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
