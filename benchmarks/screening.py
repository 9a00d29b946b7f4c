"""Screening benchmark: does the true ligand come first, does a decoy-only library say "none fits",
how fast is it, and does identification name the right CCD code on real maps?

    python benchmarks/screening.py --quick          # 3 pockets x 2 resolutions, 9 decoys each; heme + 3NZD + AGS identification
    python benchmarks/screening.py --entries 20 --decoys 99
    python benchmarks/screening.py --real-blobs --decoys 20 --workers 1   # real maps' ligand blobs against size-matched decoys
    python benchmarks/screening.py --macrocycles --decoys 20 --seed 1 --workers 1 --skip speed identify   # the ten macrocycles

Simulated cases: a PoseBusters pocket with its deposited ligand simulated at 3.0 and 3.5 Å
(benchmarks/cases.py: B-factor blur, occupancy 0.6–1.0, noise); the screen sees the pocket
alone. No part of the screen is trained, so every pocket is held out. Decoys are other
PoseBusters ligands within ±25% of the true ligand's heavy-atom count (property-matched by
size), none of them an analog of it (its skeleton: the screen's own "one answer"). The
decoy-only verdict is ranking.call_hits over the decoy rows of the same run (each
ligand is docked and scored on its own; only the library-relative hit call changes without the
true ligand). "before" columns: the former absolute rule (fit ≥ HIT_SCORE) on the same rows.
--dump-rows keeps every row; --rows-from judges a dump again without docking (docs/benchmarks.md, "None of these explains the density").
Speed: the first case is screened with 1 and with 2 workers back to back (a paired measurement
on a machine shared with other jobs); the two rankings must be identical.
Writes benchmarks/results/screening*.csv.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem
from rdkit.DataStructs import TanimotoSimilarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import (  # noqa: E402
    ccd_smiles,
    complex_entries,
    data_root,
    em_ligand_boxes,
    hemoglobin_hemes,
    residues_as_mols,
    simulated_case,
    xray_3nzd,
)
from benchmarks.flexible_ligands import macrocycle_entries  # noqa: E402
from ligfit.dock import DockingOptions  # noqa: E402
from ligfit.maps import DensityMap  # noqa: E402
from ligfit.screen import HIT_SCORE, QUICK_SCREEN_DOCKING, SCREEN_DOCKING, ScreenOptions, run_identify, run_screen  # noqa: E402
from ligfit.screen.ranking import ANALOG_SIMILARITY, call_hits, in_rank_order, skeleton_fingerprint  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


#: search effort per ligand: the screen's default (build's full search) or ``ligfit screen --quick``'s
DOCKING: dict[str, DockingOptions] = {"full": SCREEN_DOCKING, "quick": QUICK_SCREEN_DOCKING}


def decoys_for(rows: list[dict], entry: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Other PoseBusters ligands within ±25% of the true ligand's heavy-atom count (widened if too few), none of them an
    analog of it.

    An analog (the same generic skeleton: ``ranking.ANALOG_SIMILARITY``, the screen's own "one answer") is not a decoy:
    GCP fits GDP's blob because it is GDP's chemistry, and a benchmark that counts it as a wrong hit measures nothing
    (DUD-E's decoys are topologically unlike the actives for the same reason). Analogs drawn are replaced by further draws
    from the same pool, so a library that drew none is the one earlier runs screened.
    """
    true = next(row for row in rows if row["entry"] == entry)
    rng = np.random.default_rng([seed, sum(map(ord, entry))])
    return size_matched_decoys(rows, true["lig_smiles"], int(true["lig_heavy_atoms"]), true["ligand_ccd"], count, rng)


def size_matched_decoys(rows: list[dict], smiles: str, size: int, ccd: str, count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` PoseBusters ligands drawn by ``rng`` within ±25 % of ``size`` heavy atoms (widened if too few), none of
    them ``ccd``, ``smiles`` or an analog of it (:func:`decoys_for`)."""
    others = [row for row in rows if row["ligand_ccd"] != ccd and row["lig_smiles"] != smiles]
    for width in (0.25, 0.4, 0.6, 10.0):
        pool = [row for row in others if abs(int(row["lig_heavy_atoms"]) - size) <= width * size]
        if len(pool) >= count:
            break
    chosen = [int(i) for i in rng.choice(len(pool), size=min(count, len(pool)), replace=False)]
    skeleton = skeleton_fingerprint(smiles)

    def analog(i: int) -> bool:
        other = skeleton_fingerprint(pool[i]["lig_smiles"])
        return skeleton is not None and other is not None and TanimotoSimilarity(skeleton, other) >= ANALOG_SIMILARITY

    kept = [i for i in chosen if not analog(i)]
    if len(kept) < len(chosen):
        drawn = set(chosen)
        spare = [i for i in range(len(pool)) if i not in drawn and not analog(i)]
        if spare:
            kept += [int(i) for i in rng.choice(spare, size=min(len(chosen) - len(kept), len(spare)), replace=False)]
    return [(f"decoy_{pool[i]['ligand_ccd']}", pool[i]["lig_smiles"]) for i in sorted(kept)]


def dump_rows(dump: Path, rows: list[dict], **case) -> None:
    """Append a library's rows (with their poses) to the JSON-lines file ``dump``, each with ``case``'s fields and
    whether it is the true ligand: what ``--rows-from`` judges again."""
    dump.parent.mkdir(parents=True, exist_ok=True)
    with open(dump, "a") as handle:
        for row in rows:
            handle.write(json.dumps({**case, "true": row["name"] == "TRUE", **row}, default=str) + "\n")


def screen_case(
    root: Path,
    rows: list[dict],
    entry: str,
    resolution: float,
    decoys: int,
    seed: int,
    workers: int,
    dump: Path | None = None,
    docking: DockingOptions = SCREEN_DOCKING,
) -> dict:
    case = simulated_case(root, entry, resolution, seed=seed)
    true_smiles = next(row["lig_smiles"] for row in rows if row["entry"] == entry)
    library = [("TRUE", true_smiles), *decoys_for(rows, entry, decoys, seed)]
    start = time.perf_counter()
    result = run_screen(
        case.density, case.model, library, ScreenOptions(resolution=resolution, seed=seed, docking=docking), workers=workers
    )
    wall = time.perf_counter() - start
    docked = sum(1 for row in result.rows if row.get("status") == "ok")
    if dump is not None:  # every row with its pose, for designing the "none fits" rule offline (--rows-from)
        dump_rows(dump, result.rows, case=case.name, entry=entry, resolution=resolution, seed=seed)
    return {
        "case": case.name,
        "ligands": len(result.rows),
        "docked": docked,
        **judge(result.rows),
        "cpu_s": round(sum(row.get("time_s") or 0.0 for row in result.rows), 1),
        "wall_s": round(wall, 1),
        "workers": workers,
        "status": "" if result.rows else "empty",
    }


def judge(rows: list[dict]) -> dict:
    """Where the true ligand ranks, whether it is a hit, and whether the decoys alone are answered "none fits".

    ``rows`` in the screen's order (docked ligands first, best first). The true ligand's rank counts docked ligands
    only: not docked (too big for its blob, no blob at all), it has none, a miss. Hits are called by ranking.call_hits
    (relative to the library), so the decoy-only answer is the call over copies of the decoy rows alone; "_before"
    columns are the former absolute rule (fit ≥ HIT_SCORE).
    """
    rows = [dict(row) for row in rows]
    ranked = [row["name"] for row in rows if row.get("status") == "ok"]  # a ligand not docked (filtered, no blob) has no rank
    rank = ranked.index("TRUE") + 1 if "TRUE" in ranked else None
    call_hits(rows)
    decoy_rows = call_hits([dict(row) for row in rows if row["name"] != "TRUE"])
    true_row = next((row for row in rows if row["name"] == "TRUE"), {})
    best_decoy = max((row.get("fit_score") or 0.0 for row in decoy_rows), default=0.0)
    true_fit = true_row.get("fit_score")
    claim, decoy_claim = best_hit(rows), best_hit(decoy_rows)
    return {
        "claim": None if claim is None else claim["name"],
        "claim_confidence": None if claim is None else claim.get("confidence"),
        "claim_right": claim is not None and claim["name"] == "TRUE",
        "decoy_claim": None if decoy_claim is None else decoy_claim["name"],
        "decoy_claim_confidence": None if decoy_claim is None else decoy_claim.get("confidence"),
        "true_rank": rank,
        "true_hit": bool(true_row.get("hit")),
        "true_fit": true_fit,
        "true_margin": true_row.get("margin"),
        "best_decoy_fit": best_decoy,
        "best_decoy_margin": max((row.get("margin") or -1.0 for row in decoy_rows), default=None),
        "decoys_only_none_fits": not any(row.get("hit") for row in decoy_rows),
        "true_hit_before": true_fit is not None and true_fit >= HIT_SCORE,
        "none_fits_before": best_decoy < HIT_SCORE,
    }


def best_hit(rows: list[dict]) -> dict | None:
    """The library's answer: its best-fitting hit (rows called by ranking.call_hits), or None for "none fits"."""
    return max((row for row in rows if row.get("hit")), key=lambda row: row["fit_score"], default=None)


#: confidence bins of the reliability table: of the answers called this sure, how many name the true ligand.
RELIABILITY_BINS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0))


def reliability(cases: list[dict]) -> list[dict]:
    """The screen's confidence against outcomes: every library's answer (its best hit) is a claim, right when it names
    the true ligand; a decoy-only library's answer is always wrong. One row per confidence bin with claims in it."""
    claims = [(c["claim_confidence"], c["claim_right"]) for c in cases if c.get("claim_confidence") is not None]
    claims += [(c["decoy_claim_confidence"], False) for c in cases if c.get("decoy_claim_confidence") is not None]
    table = []
    for low, high in RELIABILITY_BINS:
        inside = [(p, right) for p, right in claims if low <= p < high or (high == 1.0 and p == 1.0)]
        if inside:
            table.append(
                {
                    "bin": f"{low:.1f}–{high:.1f}",
                    "claims": len(inside),
                    "mean_confidence": sum(p for p, _ in inside) / len(inside),
                    "right": sum(1 for _, right in inside if right),
                }
            )
    return table


def print_reliability(cases: list[dict]) -> None:
    libraries = 2 * len(cases)
    table = reliability(cases)
    claims = sum(row["claims"] for row in table)
    print(f"\nconfidence against outcomes: {claims} answers named a hit in {libraries} libraries (with the true ligand, and decoys only)")
    print("| confidence of the answer | answers | mean confidence | right |")
    print("|---|---|---|---|")
    for row in table:
        share = 100 * row["right"] / row["claims"]
        print(f"| {row['bin']} | {row['claims']} | {row['mean_confidence']:.2f} | {row['right']}/{row['claims']} ({share:.0f} %) |")


def split_order(rows: list[dict], seed: int, exclude: list[str]) -> list[str]:
    """The entries in the order a split of this seed draws them, those in ``exclude`` left out."""
    excluded = set(exclude)
    return [str(e) for e in np.random.default_rng(seed).permutation([r["entry"] for r in rows]) if str(e) not in excluded]


#: The pockets each reported split drew, by seed (seeds 1–24: 12 each, screened with 20 decoys; 25–36: 8 each, with 99),
#: as :func:`split_order` drew them. ``--disjoint`` leaves all of them out of a later split, whatever ``--entries`` it
#: has, and draws a recorded seed as recorded (docs/benchmarks.md, "Splits that were not disjoint"). Add each new
#: split's pockets here when it is reported (the next seed is the one after the last recorded).
SPLITS_FILE = Path(__file__).resolve().parent / "screening_splits.json"


def recorded_splits() -> dict[int, list[str]]:
    """:data:`SPLITS_FILE`: the pockets of each reported split, by seed."""
    return {int(seed): entries for seed, entries in json.loads(SPLITS_FILE.read_text()).items()}


def earlier_splits(rows: list[dict], seed: int, count: int) -> list[str]:
    """The entries of the splits of seeds 1 … ``seed`` − 1 (``--disjoint``): each recorded one as it was drawn, each
    other one as ``count`` entries drawn disjoint from all before it."""
    recorded = recorded_splits()
    taken: list[str] = []
    for earlier in range(1, seed):
        taken += recorded[earlier] if earlier in recorded else split_order(rows, earlier, taken)[:count]
    return taken


def cases_from_rows(path: Path, docking_choice: bool = False) -> list[dict]:
    """Judge again the cases dumped by --dump-rows (no docking): for changing the "none fits" rule.

    ``docking_choice``: rank each ligand by the fit of docking's own best pose (``docking_choice_fit``), as the screen did
    before it took each ligand's best-fitting pose (docs/benchmarks.md, "The pose the ranking judges").
    """
    by_case: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if docking_choice and record.get("docking_choice_fit") is not None:
            record["fit_score"] = record["docking_choice_fit"]
        by_case.setdefault(record["case"], []).append(record)
    for case, group in by_case.items():  # ranked as the screen ranks (ranking.in_rank_order), then the rest
        group.sort(key=lambda r: r.get("status") != "ok")
        by_case[case] = in_rank_order(call_hits(group))
    return [
        {"split": "rows", "case": name, "ligands": len(group), "docked": sum(1 for r in group if r.get("status") == "ok"), **judge(group)}
        for name, group in by_case.items()
    ]


def speedup(
    root: Path, rows: list[dict], entry: str, resolution: float, decoys: int, seed: int, docking: DockingOptions = SCREEN_DOCKING
) -> dict:
    case = simulated_case(root, entry, resolution, seed=seed)
    true_smiles = next(row["lig_smiles"] for row in rows if row["entry"] == entry)
    library = [("TRUE", true_smiles), *decoys_for(rows, entry, decoys, seed)]
    options = ScreenOptions(resolution=resolution, seed=seed, prefilter=False, docking=docking)  # every ligand docked: a fair load
    times, tables, stages = {}, {}, {}
    for workers in (1, 2):
        start = time.perf_counter()
        result = run_screen(case.density, case.model, library, options, workers=workers)
        times[workers] = time.perf_counter() - start
        stages[workers] = result.timings
        tables[workers] = [(row["name"], row.get("fit_score"), row.get("blob")) for row in result.rows]
    return {
        "case": case.name,
        "ligands": len(library),
        "wall_1_worker_s": round(times[1], 1),
        "wall_2_workers_s": round(times[2], 1),
        "speedup": round(times[1] / times[2], 2),
        "stages_1_worker_s": stages[1],
        "stages_2_workers_s": stages[2],
        "identical": tables[1] == tables[2],
        "ligands_per_hour_per_core": round(len(library) / times[1] * 3600, 0),
    }


@dataclasses.dataclass(frozen=True)
class RealSite:
    """A ligand's blob in a real map: the map, the model without the ligand (None for an EM box), the ligand, and where
    the screen looks (``blob`` or ``site`` keywords of ScreenOptions)."""

    name: str
    code: str
    smiles: str
    density: DensityMap
    model: gemmi.Structure | None
    resolution: float
    where: dict


def real_sites(root: Path, chosen: set[str]) -> Iterator[RealSite]:
    """EMD-3488's heme blobs (``heme1`` … ``heme4``; 5NI1 without its hemes), 3NZD's NADP(H) and D2Q sites (``3nzd``;
    1.8 Å X-ray, both ligands removed) and the EM ligand boxes (``em``; no model), those in ``chosen``."""
    hemes = [b for b in (1, 2, 3, 4) if f"heme{b}" in chosen]
    if hemes:
        density, structure, _ = hemoglobin_hemes(root)
        heme = ccd_smiles("HEM")
        for blob in hemes:
            yield RealSite(f"EMD-3488 heme blob {blob}", "HEM", heme, density, structure, 3.2, {"blob": blob, "max_blobs": 1})
    if "3nzd" in chosen:
        deposited, model, xray = xray_3nzd(root, ("NDP", "D2Q"))
        centres = {
            code: np.mean(
                [atom.pos.tolist() for chain in deposited[0] for residue in chain if residue.name == code for atom in residue], axis=0
            )
            for code in ("NDP", "D2Q")
        }
        smiles = {"NDP": ccd_smiles("NDP"), "D2Q": Chem.MolToSmiles(residues_as_mols(deposited, "D2Q")[0])}  # as xray_d2q's
        names = {"NDP": "3NZD NADP(H)", "D2Q": "3NZD D2Q"}
        for code, centre in centres.items():
            site = ",".join(f"{v:.2f}" for v in centre)
            yield RealSite(names[code], code, smiles[code], xray, model, 1.8, {"site": site, "max_blobs": 1})
    for case in em_ligand_boxes(root) if "em" in chosen else []:  # no model: no size estimate, so every ligand is docked (slow)
        centre = Chem.RemoveHs(case.reference).GetConformer().GetPositions().mean(axis=0)
        site = ",".join(f"{v:.2f}" for v in centre)
        yield RealSite(f"{case.name} (EM box)", case.name.split()[1], case.smiles, case.density, None, case.resolution, {"site": site})


def real_blobs(
    root: Path, rows: list[dict], decoys: int, seed: int, workers: int, docking: DockingOptions, dump: Path | None
) -> list[dict]:
    """Every real site of :func:`real_sites` screened with its true ligand + ``decoys`` size-matched PoseBusters decoys
    (:func:`size_matched_decoys`), judged as the simulated cases are (:func:`judge`)."""
    cases = []
    for site in real_sites(root, {"heme1", "heme2", "heme3", "heme4", "3nzd", "em"}):
        name = f"{site.name}@{site.resolution:g}"  # split by resolution in the table, as the simulated cases are
        size = Chem.MolFromSmiles(site.smiles).GetNumHeavyAtoms()
        rng = np.random.default_rng([seed, sum(map(ord, site.name))])
        library = [("TRUE", site.smiles), *size_matched_decoys(rows, site.smiles, size, site.code, decoys, rng)]
        start = time.perf_counter()
        options = ScreenOptions(resolution=site.resolution, seed=seed, docking=docking, **site.where)
        result = run_screen(site.density, site.model, library, options, workers=workers)
        if dump is not None:
            dump_rows(dump, result.rows, case=name, entry=site.code, resolution=site.resolution, seed=seed)
        case = {"case": name, "ligands": len(result.rows), "wall_s": round(time.perf_counter() - start, 1), **judge(result.rows)}
        print(
            f"  {name}: true rank {case['true_rank']} (fit {case['true_fit']}, margin {case['true_margin']}, hit {case['true_hit']}); "
            f"decoys alone: best fit {case['best_decoy_fit']:.2f}, none fits {case['decoys_only_none_fits']}; {case['wall_s']} s",
            flush=True,
        )
        cases.append(case)
    return cases


def identification(
    root: Path,
    quick: bool,
    workers: int,
    cases: list[str] | None = None,
    dump: Path | None = None,
    docking: DockingOptions = SCREEN_DOCKING,
) -> list[dict]:
    """Right CCD code in the top 3? Hemes of EMD-3488, NADP of 3NZD, the EM ligand boxes whose ligand is in the library.

    3NZD's other ligand, the inhibitor D2Q, is not in the library (nor a common ligand), so only its
    NADPH site is asked; of the EM boxes only 6W6E's AGS is in the library. ``cases`` (heme1…heme4,
    3nzd, em) runs only those, in that order of kinds.
    """
    chosen = set(cases or (["heme1", "3nzd"] if quick else ["heme1", "heme2", "heme3", "heme4", "3nzd", "em"]))
    results = []

    clock = [time.perf_counter()]

    def record(name: str, code: str, result) -> None:
        codes = [row.get("code") or row["name"] for row in result.rows if row.get("status") == "ok"]
        rank = codes.index(code) + 1 if code in codes else None
        wall = round(time.perf_counter() - clock[0], 1)
        docked = sum(1 for row in result.rows if row.get("status") == "ok")
        fits = {row.get("code") or row["name"]: row.get("fit_score") for row in result.rows if row.get("status") == "ok"}
        true_row = next((row for row in result.rows if (row.get("code") or row["name"]) == code), {})
        if dump is not None:
            dump.parent.mkdir(parents=True, exist_ok=True)
            with open(dump, "a") as handle:
                for row in result.rows:
                    handle.write(json.dumps({"case": name, "true": (row.get("code") or row["name"]) == code, **row}, default=str) + "\n")
        results.append(
            {
                "case": name,
                "true_code": code,
                "rank": rank,
                "top3": codes[:3],
                "top3_fit": [fits[c] for c in codes[:3]],
                "true_fit": fits.get(code),
                "in_top3": rank is not None and rank <= 3,
                "group": true_row.get("group"),  # 1: among the best ligand's analogs (one answer, ranking.call_hits)
                "none_fits": result.none_fits,
                "hits": " ".join(row.get("code") or row["name"] for row in result.hits),
                "true_hit": bool(true_row.get("hit")),
                "true_margin": true_row.get("margin"),
                "none_fits_before": max((f or 0.0 for f in fits.values()), default=0.0) < HIT_SCORE,
                "verdict": result.verdict,
                "docked": docked,
                "wall_s": wall,
                "prefilter": " | ".join(result.prefilter_lines()),
            }
        )
        print(
            f"  {name}: {code} ranked {rank} (fit {fits.get(code)}), analog group {true_row.get('group')}; top 3 {codes[:3]}; "
            f"{docked} docked; {wall} s",
            flush=True,
        )
        print(f"    verdict: {result.verdict}", flush=True)
        for line in result.prefilter_lines():
            print(f"    {line}", flush=True)
        clock[0] = time.perf_counter()

    library_codes = {
        row.split(",")[0]
        for row in (Path(__file__).resolve().parent.parent / "ligfit/screen/common_ligands.csv").read_text().splitlines()[1:]
    }
    for site in real_sites(root, chosen):
        if site.code not in library_codes:  # D2Q, 3NZD's inhibitor, and most EM boxes' ligands are not common ligands
            continue
        options = ScreenOptions(resolution=site.resolution, docking=docking, **site.where)
        record(site.name, site.code, run_identify(site.density, site.model, options, workers=workers))
    return results


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def summarise(cases: list[dict]) -> dict:
    n = len(cases)
    return {
        "cases": n,
        "top1": sum(1 for c in cases if c["true_rank"] == 1),
        "top5": sum(1 for c in cases if c["true_rank"] is not None and c["true_rank"] <= 5),
        "true_hit": sum(1 for c in cases if c["true_hit"]),
        "none_fits": sum(1 for c in cases if c["decoys_only_none_fits"]),
        "true_hit_before": sum(1 for c in cases if c["true_hit_before"]),
        "none_fits_before": sum(1 for c in cases if c["none_fits_before"]),
        "ligands": sum(c["ligands"] for c in cases),
        "cpu_s": sum(c.get("cpu_s", 0.0) for c in cases),
    }


def print_table(groups: list[tuple[str, list[dict]]], library: str) -> None:
    """Per split and resolution: top-1, top-5, and the hit / none-fits rates before (fit ≥ HIT_SCORE) and after (call_hits)."""
    print(
        "\n| split | resolution | cases | library | top-1 | top-5 | true a hit (before → after) | decoy-only 'none fits' (before → after) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, group in groups:
        resolutions = sorted({c["case"].split("@")[1] for c in group})
        for resolution, part in [(r, [c for c in group if c["case"].split("@")[1] == r]) for r in resolutions] + [("all", group)]:
            if not part:
                continue
            s = summarise(part)
            n = s["cases"]
            print(
                f"| {label} | {resolution} | {n} | {library} | {s['top1']}/{n} | {s['top5']}/{n} | {s['true_hit_before']}/{n} → "
                f"{s['true_hit']}/{n} | {s['none_fits_before']}/{n} → {s['none_fits']}/{n} |"
            )


def run_cases(root: Path, rows: list[dict], entries: list[str], resolutions: list[float], args, label: str, decoys: int) -> list[dict]:
    cases = []
    for resolution in resolutions:
        for entry in entries:
            row = {
                "split": label,
                **screen_case(root, rows, entry, resolution, decoys, args.seed, args.workers, args.dump_rows, args.docking_options),
            }
            cases.append(row)
            print(
                f"  [{label}] {row['case']}: true rank {row['true_rank']} (fit {row['true_fit']}, best decoy {row['best_decoy_fit']:.2f}), "
                f"{row['docked']}/{row['ligands']} docked, {row['wall_s']} s wall, {row['cpu_s']} s summed",
                flush=True,
            )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 pockets at 3.0 and 3.5 Å with 9 decoys, 1 heme, 3NZD")
    parser.add_argument("--entries", type=int, default=20, help="PoseBusters pockets reported (default 20)")
    parser.add_argument(
        "--macrocycles", action="store_true", help="the pockets whose true ligand is a macrocycle (is_macrocycle: 10), not a seed's draw"
    )
    parser.add_argument("--calibration-entries", type=int, default=0, help="more pockets, screened and reported as a separate split")
    parser.add_argument("--calibration-decoys", type=int, default=0, help="decoys per calibration library (default: --decoys)")
    parser.add_argument("--identify-all", action="store_true", help="identification on all 4 hemes and the EM boxes too (slow)")
    parser.add_argument("--identify-cases", nargs="+", choices=["heme1", "heme2", "heme3", "heme4", "3nzd", "em"], help="only these")
    parser.add_argument("--decoys", type=int, default=99, help="decoys per library (default 99)")
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0, 3.5])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["screen", "speed", "identify"])
    parser.add_argument("--exclude", nargs="*", default=[], help="entries never used (e.g. the design set of a rule)")
    parser.add_argument(
        "--disjoint",
        action="store_true",
        help="also exclude the entries of every lower seed's split (seeds 1 … SEED−1, each drawn this way): a split no earlier one holds",
    )
    parser.add_argument("--dump-rows", type=Path, help="append every ranked row (with its pose) of every case to this JSON-lines file")
    parser.add_argument(
        "--rows-from", type=Path, nargs="+", help="judge the cases of --dump-rows files again (no docking) and print the tables"
    )
    parser.add_argument(
        "--docking-choice",
        action="store_true",
        help="with --rows-from: rank by the fit of docking's own best pose (the screen before 2026-12-05)",
    )
    parser.add_argument("--identify", action="store_true", help="only the identification part (real maps)")
    parser.add_argument("--docking", choices=sorted(DOCKING), default="full", help="search effort per ligand (default: %(default)s)")
    parser.add_argument(
        "--device", default=DockingOptions.device, help="where each ligand's docking search runs: auto, cpu, cuda (default: %(default)s)"
    )
    parser.add_argument("--workers-ratio", action="store_true", help="only the paired 1- vs 2-worker timing on one library")
    parser.add_argument(
        "--real-blobs",
        action="store_true",
        help="only the real maps' ligand blobs (hemes, 3NZD, EM boxes), each screened with its ligand + --decoys size-matched decoys",
    )
    args = parser.parse_args()
    args.docking_options = docking = dataclasses.replace(DOCKING[args.docking], device=args.device)
    root = data_root()
    if root is None:
        sys.exit("../shared/data is not available")
    rows = complex_entries(root)
    count, args.decoys_used = (3, 9) if args.quick else (args.entries, args.decoys)
    exclude = list(args.exclude) + (earlier_splits(rows, args.seed, count) if args.disjoint else [])
    order = split_order(rows, args.seed, exclude)
    recorded = recorded_splits().get(args.seed) if args.disjoint and not args.exclude else None
    if recorded is not None and len(recorded) == count:  # a reported split, drawn again as it was
        order = recorded + [entry for entry in order if entry not in recorded]
    entries = macrocycle_entries(root) if args.macrocycles else order[:count]
    calibration = order[count : count + args.calibration_entries]  # disjoint from the reported entries
    suffix = "_quick" if args.quick else ""
    skip = set(args.skip)
    if args.identify:
        skip |= {"screen", "speed"}
    if args.workers_ratio:
        skip |= {"screen", "identify"}

    if args.real_blobs:
        real = real_blobs(root, rows, args.decoys, args.seed, args.workers, docking, args.dump_rows)
        write_csv(RESULTS / "screening_real_blobs.csv", real)
        print(f"\nreal blobs, true ligand + {args.decoys} size-matched decoys (the decoy-only verdict from the same rows):")
        print_table([("real blobs", real)], f"true + {args.decoys}")
        print_reliability(real)
        return

    if args.rows_from is not None:
        groups = [(path.name, cases_from_rows(path, args.docking_choice)) for path in args.rows_from]
        for _, again in groups:
            for case in again:
                print(
                    f"  {case['case']}: true rank {case['true_rank']} (fit {case['true_fit']}, margin {case['true_margin']}, hit {case['true_hit']}); "
                    f"decoys alone: best fit {case['best_decoy_fit']:.2f}, margin {case['best_decoy_margin']}, none fits {case['decoys_only_none_fits']}"
                )
        if len(groups) > 1:
            groups.append(("all", [case for _, again in groups for case in again]))
        print_table(groups, "as dumped")
        print_reliability(groups[-1][1])
        return

    if "screen" not in skip:
        held_out = []
        if calibration:
            held_out = run_cases(
                root, rows, calibration, args.resolutions, args, "calibration", args.calibration_decoys or args.decoys_used
            )
        cases = run_cases(root, rows, entries, args.resolutions, args, "reported", args.decoys_used)
        write_csv(RESULTS / f"screening{suffix}.csv", held_out + cases)
        print(f"\nreported entries: {', '.join(entries)}; calibration entries: {', '.join(calibration) or 'none'}")
        print_table([("calibration", held_out), ("reported", cases)], f"true + {args.decoys_used}")
        print_reliability(held_out + cases)
        speed_cases = held_out + cases
        cpu = sum(c["cpu_s"] for c in speed_cases)
        print(f"ligands/hour/core: {sum(c['ligands'] for c in speed_cases) / max(cpu, 1e-9) * 3600:.0f} (summed per-ligand time)")

    if "speed" not in skip:
        ligands = 9 if args.quick else args.decoys
        speed = speedup(root, rows, entries[0], args.resolutions[0], ligands, args.seed, docking)
        write_csv(RESULTS / f"screening_speed{suffix}.csv", [speed])
        print("\n| case | ligands | 1 worker (s) | 2 workers (s) | speed-up (paired) | identical ranking | ligands/hour/core (1 worker) |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {speed['case']} | {speed['ligands']} | {speed['wall_1_worker_s']} | {speed['wall_2_workers_s']} | {speed['speedup']}x | "
            f"{speed['identical']} | {speed['ligands_per_hour_per_core']:.0f} |"
        )
        print(f"workers ratio: {speed['speedup']}; stages 1 worker {speed['stages_1_worker_s']}, 2 workers {speed['stages_2_workers_s']}")

    if "identify" not in skip:
        found = identification(root, not args.identify_all, args.workers, args.identify_cases, args.dump_rows, docking)
        write_csv(RESULTS / f"screening_identify{suffix}.csv", found)
        print("\n| blob | true CCD | rank | analog group | top 3 (fit score) | hits | 'none fits' (before → after) | docked | time (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in found:
            top3 = ", ".join(f"{c} ({f:.2f})" for c, f in zip(row["top3"], row["top3_fit"]))
            print(
                f"| {row['case']} | {row['true_code']} | {row['rank']} | {row['group']} | {top3} | {row['hits'] or '-'} | "
                f"{row['none_fits_before']} → {row['none_fits']} | {row['docked']} | {row['wall_s']} |"
            )
        print(f"right code in the top 3: {sum(r['in_top3'] for r in found)}/{len(found)}")
        print(f"right code among the best ligand's analogs (group 1): {sum(r['group'] == 1 for r in found)}/{len(found)}")


if __name__ == "__main__":
    main()
