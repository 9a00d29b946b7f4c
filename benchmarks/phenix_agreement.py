"""ligfit's map–model CCs and Q-score against cctbx/mmtbx's own (the code behind phenix.map_model_cc).

For each case, ``ligfit evaluate``'s CC_mask, CC_box, CC_volume, CC_peaks (whole model, and each
ligand in its phenix.map_box box with the 3 Å cushion) and Q-scores are compared with
``mmtbx.maps.map_model_cc`` (five_cc) on the same map — per ligand after ``map_box``'s boxing
(``box_all_maps_around_model_and_shift_origin``, box_cushion 3) — and with
``cctbx.maptbx.qscore.calc_qscore`` (shells 0–2 Å in 0.1 Å steps, 32 probes). Cases: the 3.2 Å
haemoglobin map EMD-3488 with 5ME2 (whole model and each heme), the EMDB ligand boxes of
../shared/data/em/ligand_boxes (the ligand is the whole model), and the 1.8 Å 2mFo-DFc map of
3NZD (whole model, D2Q and NDP) on the map's own grid of its R3 cell (non-orthogonal: γ = 120°).

cctbx must be imported before gemmi in a process (the other order segfaults), so the mmtbx side
runs in its own interpreter: ``python benchmarks/phenix_agreement.py --mmtbx SPEC.json``.

    python benchmarks/phenix_agreement.py --quick     # EMD-3488 only
    python benchmarks/phenix_agreement.py --xray      # 3NZD only
    python benchmarks/phenix_agreement.py             # every case; CSV in benchmarks/results/
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CCS = ("cc_mask", "cc_box", "cc_volume", "cc_peaks")
#: Radial shells (Å) and probes per shell for cctbx's Q-score: MapQ's shells, 32 probes (8 is noisy).
Q_SHELLS = [round(0.1 * i, 1) for i in range(21)]
Q_PROBES = 32
#: phenix.map_box's default cushion (Å).
BOX_CUSHION = 3.0


# --------------------------------------------------------------------------- the mmtbx side (cctbx process)


def mmtbx_scores(spec: dict) -> dict:
    """mmtbx's five CCs (and cctbx's Q-scores) for one case; runs where cctbx is imported before gemmi.

    ``spec``: map, model, resolution, whole (bool), q (bool), shift (Å added to the model: −ORIGIN
    when cctbx's reader ignores an ORIGIN that is off the grid), ligands (label → atom selection).
    """
    from cctbx.maptbx import qscore as cctbx_qscore
    from iotbx.data_manager import DataManager
    from iotbx.map_model_manager import map_model_manager
    from libtbx.utils import null_out
    from mmtbx.maps import map_model_cc
    from scitbx.array_family import flex

    data = DataManager()
    map_manager = data.get_real_map(_plain_map(spec["map"]))
    model = data.get_model(spec["model"])
    model = model.select(~model.selection("element H or element D"))
    if any(spec.get("shift", [0, 0, 0])):
        model.set_sites_cart(model.get_sites_cart() + flex.vec3_double([tuple(spec["shift"])] * model.get_number_of_atoms()))
    result = {"model": {}, "ligands": {}}
    whole = map_model_manager(model=model.deep_copy(), map_manager=map_manager.deep_copy(), ignore_symmetry_conflicts=True)
    q = _qscore(whole, cctbx_qscore, null_out, spec.get("q_probes", Q_PROBES)) if spec.get("q", True) else None
    if spec.get("whole", True):
        result["model"] = _five_cc(whole, spec["resolution"], map_model_cc)
        if q is not None:
            protein = whole.model().selection("protein").as_numpy_array()
            result["model"]["q_score"] = float(np.nanmean(q[protein] if protein.any() else q))
    for label, selection in spec.get("ligands", {}).items():
        ligand = model.select(model.selection(selection))
        manager = map_model_manager(model=ligand, map_manager=map_manager.deep_copy(), ignore_symmetry_conflicts=True)
        manager.box_all_maps_around_model_and_shift_origin(box_cushion=BOX_CUSHION)
        result["ligands"][label] = _five_cc(manager, spec["resolution"], map_model_cc)
        if spec.get("exact"):  # five_cc fed Fcalc summed directly, not cctbx's FFT approximation of it
            result["ligands"][label]["exact"] = _five_cc_exact(manager, spec["resolution"])
        if q is not None:
            result["ligands"][label]["q_score"] = float(np.nanmean(q[whole.model().selection(selection).as_numpy_array()]))
    return result


def _five_cc(manager, resolution: float, map_model_cc) -> dict:
    params = map_model_cc.master_params().extract().map_model_cc
    params.resolution = resolution
    for name in ("cc_per_chain", "cc_per_residue", "fsc"):
        setattr(params.compute, name, False)
    calculator = map_model_cc.map_model_cc(manager.map_data(), manager.model().get_hierarchy(), manager.crystal_symmetry(), params)
    calculator.validate()
    calculator.run()
    outcome = calculator.get_results()
    return {name: float(getattr(outcome, name)) for name in CCS}


def _five_cc_exact(manager, resolution: float) -> dict:
    """mmtbx's five_cc with the model map from structure factors summed atom by atom (algorithm "direct")."""
    from cctbx import maptbx, miller
    from mmtbx.maps import correlation

    structure = manager.model().get_xray_structure()
    structure.scattering_type_registry(table="electron")
    f_calc = structure.structure_factors(d_min=resolution, algorithm="direct").f_calc()
    gridding = maptbx.crystal_gridding(
        unit_cell=structure.unit_cell(),
        space_group_info=structure.space_group_info(),
        pre_determined_n_real=manager.map_data().accessor().all(),
        symmetry_flags=maptbx.use_space_group_symmetry,
    )
    map_calc = miller.fft_map(crystal_gridding=gridding, fourier_coefficients=f_calc).real_map_unpadded()
    outcome = correlation.five_cc(
        map=manager.map_data(), xray_structure=structure, d_min=resolution, map_calc=map_calc, compute_cc_box=True
    ).result
    return {name: float(getattr(outcome, name)) for name in CCS}


def _qscore(manager, cctbx_qscore, null_out, probes: int) -> np.ndarray:
    """cctbx's Q-score of every atom (its ``selection`` argument fails on a flex.bool in 2025.11)."""
    scores = cctbx_qscore.calc_qscore(manager, shells=Q_SHELLS, n_probes=probes, rtol=0.9, log=null_out())
    return np.array(scores["qscore_per_atom"], dtype=float)


def _plain_map(path: str) -> str:
    """cctbx reads no gzipped maps: unpack one into a temporary file."""
    if not path.endswith(".gz"):
        return path
    target = Path(tempfile.mkdtemp(prefix="ligfit-mmtbx-")) / Path(path).stem
    with gzip.open(path, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return str(target)


def run_mmtbx(specs: list[dict]) -> list[dict]:
    """mmtbx's scores for each spec, computed in a fresh interpreter that imports cctbx first."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "specs.json"
        path.write_text(json.dumps(specs))
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--mmtbx", str(path)], capture_output=True, text=True, env=_env()
        )
        if completed.returncode != 0:
            raise RuntimeError(f"the mmtbx reference failed:\n{completed.stderr[-3000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# --------------------------------------------------------------------------- the ligfit side


def mrc_origin(path: Path) -> np.ndarray:
    """The MRC ORIGIN record (Å): header words 50–52."""
    with open(path, "rb") as handle:
        header = handle.read(1024)
    return np.frombuffer(header[196:208], dtype="<f4").astype(float)


def cases(root: Path, quick: bool) -> list[dict]:
    """The comparison cases: map, model, resolution, ligands (label → cctbx selection), whole-model flag."""
    hemoglobin = root / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"
    found = [
        {
            "name": "EMD-3488 / 5ME2",
            "map": str(hemoglobin / "emd_3488.mrc"),
            "model": str(hemoglobin / "5me2.pdb"),
            "resolution": 3.2,
            "whole": True,
            "ligands": {f"{c}:HEM {n}": f"chain {c} and resseq {n} and resname HEM" for c, n in _hemes(hemoglobin / "5me2.pdb")},
        }
    ]
    if quick:
        return found
    with open(root / "em" / "index.csv") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] != "ligand_box":
                continue
            folder = root / row["dir"]
            map_path = folder / row["map"]
            code = row["ligand_ccd"]
            found.append(
                {
                    "name": f"{row['pdb']} {code} box",
                    "map": str(map_path),
                    "model": str(folder / row["model"]),
                    "resolution": float(row["resolution_A"].split()[0]),
                    "whole": True,
                    "shift": (-mrc_origin(map_path)).tolist(),  # cctbx ignores an ORIGIN that is off the grid
                    "ligands": {code: f"resname {code}"},
                }
            )
    xray = root / "xray" / "3NZD"
    found.append(
        {
            "name": "3NZD 2mFo-DFc",
            "map": str(xray / "3nzd.ccp4.gz"),
            "model": str(xray / "3nzd.cif"),
            "resolution": 1.8,
            "whole": True,
            "ligands": {"D2Q": "resname D2Q", "NDP": "resname NDP"},
        }
    )
    return found


def _hemes(path: Path) -> list[tuple[str, int]]:
    seen = []
    for line in path.read_text().splitlines():
        if line.startswith("HETATM") and line[17:20] == "HEM":
            key = (line[21], int(line[22:26]))
            if key not in seen:
                seen.append(key)
    return seen


def ligfit_scores(case: dict) -> tuple[dict, float]:
    """ligfit's CCs and Q-scores for a case (as ``ligfit evaluate`` reports them) and the evaluation time (s)."""
    from ligfit.evaluate import evaluate_model

    names = {selection.split("resname ")[-1].split()[0] for selection in case["ligands"].values()}
    started = time.perf_counter()
    evaluation = evaluate_model(case["model"], case["map"], case["resolution"], ligands=names, whole_model=case["whole"])
    elapsed = time.perf_counter() - started
    scores = {"model": {k: evaluation.model.get(k) for k in (*CCS, "q_score")} if case["whole"] else {}, "ligands": {}}
    for ligand in evaluation.ligands:
        label = ligand["ligand"]
        key = label if label in case["ligands"] else label.split(":")[-1].split()[0]
        scores["ligands"][key] = {k: ligand.get(k) for k in (*CCS, "q_score")}
    return scores, elapsed


def compare(case: dict, ours: dict, theirs: dict) -> list[dict]:
    """One row per scored object: ligfit, mmtbx and their difference for each CC and Q."""
    rows = []
    objects = [("model", ours["model"], theirs["model"])] if case["whole"] else []
    objects += [(label, ours["ligands"].get(label, {}), theirs["ligands"].get(label, {})) for label in case["ligands"]]
    for label, mine, reference in objects:
        row = {"case": case["name"], "object": label}
        for name in (*CCS, "q_score"):
            a, b = mine.get(name), reference.get(name)
            row[f"{name}_ligfit"] = _round(a)
            row[f"{name}_mmtbx"] = _round(b)
            row[f"{name}_diff"] = _round(a - b) if a is not None and b is not None else None
            exact = reference.get("exact", {}).get(name)
            if name != "q_score":
                row[f"{name}_exact_diff"] = _round(a - exact) if a is not None and exact is not None else None
        rows.append(row)
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="EMD-3488 only")
    parser.add_argument("--xray", action="store_true", help="3NZD only")
    parser.add_argument("--mmtbx", metavar="SPECS_JSON", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.mmtbx:  # the cctbx process: nothing of ligfit (gemmi) imported here
        specs = json.loads(Path(arguments.mmtbx).read_text())
        print(json.dumps([mmtbx_scores(spec) for spec in specs]))
        return

    sys.path.insert(0, str(REPO))
    from benchmarks.cases import data_root

    root = data_root()
    if root is None:
        sys.exit("../shared/data is not available")
    chosen = cases(root, arguments.quick)
    if arguments.xray:
        chosen = chosen[-1:]
    references = run_mmtbx([{**case, "exact": True} for case in chosen])
    rows, timing = [], []
    for case, reference in zip(chosen, references):
        ours, elapsed = ligfit_scores(case)
        rows += compare(case, ours, reference)
        timing.append((case["name"], elapsed))
    header = f"{'case':<22}{'object':<12}" + "".join(f"{n.replace('_score', ''):>24}" for n in (*CCS, "q_score"))
    print(header + "\n" + " " * 34 + "".join(f"{'ligfit  mmtbx   diff':>24}" for _ in range(5)))
    print("-" * len(header))
    for row in rows:
        cells = "".join(
            f"{_f(row[n + '_ligfit']):>8}{_f(row[n + '_mmtbx']):>8}{_f(row[n + '_diff'], signed=True):>8}" for n in (*CCS, "q_score")
        )
        print(f"{row['case']:<22}{row['object']:<12}{cells}")
    worst = max(abs(row[f"{n}_diff"]) for row in rows for n in CCS if row[f"{n}_diff"] is not None)
    worst_q = max((abs(row["q_score_diff"]) for row in rows if row["q_score_diff"] is not None), default=float("nan"))
    exact = [abs(row[f"{n}_exact_diff"]) for row in rows for n in CCS if row.get(f"{n}_exact_diff") is not None]
    print(f"\nlargest |ligfit − mmtbx|: CCs {worst:.4f}, Q-score {worst_q:.4f}")
    print(f"largest |ligfit − mmtbx five_cc given Fcalc summed directly| (ligands): CCs {max(exact, default=float('nan')):.4f}")
    print("ligfit evaluation time (s, machine shared): " + ", ".join(f"{n} {t:.1f}" for n, t in timing))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "phenix_agreement.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


if __name__ == "__main__":
    main()
