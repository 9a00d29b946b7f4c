"""Template benchmark: leave-one-out ligand placement with and without template seeds.

Sets:
  congeneric   the shipped library's series (openmmforcefields JACS systems: 8 targets, 199
               ligands): a map simulated from the target's pocket (residues within 10 Å) and
               the ligand; the library holds every other template (the ligand itself left out)
  posebusters  the PoseBusters pockets (../shared/data/complexes, simulated as in
               ligand_placement.py); the library, built on the fly from all 427 entries into
               benchmarks/results/, holds every other entry (the entry and every entry with
               the same PDB ID left out)
  em-boxes     the real EMDB ligand boxes (no protein: templates ranked by blob shape), with the
               PoseBusters library (entries with the box's PDB ID left out)

Each case runs segmentation once, then docking without seeds and docking with the template
seeds (the same call when no template qualifies: nothing changes, only the search time is
added). Success: symmetry-corrected heavy-atom RMSD ≤ 2 Å to the deposited ligand (spyrmsd).

    python benchmarks/templates.py --quick      # 2 ligands per target, 6 PoseBusters entries, EM boxes; 3 and 4 Å
    python benchmarks/templates.py --per-target 5 --entries 30 --jobs 2   # docs/benchmarks.md's sample (~50 min on 2 busy cores)
    python benchmarks/templates.py              # everything (hours on 2 cores)
    python benchmarks/templates.py --summarise benchmarks/results/templates.csv   # the tables of an earlier run

Samples (seeded): ``--per-target N`` ligands of each of the 8 targets; ``--entries N`` PoseBusters
entries, half with a ligand of Tanimoto ≥ 0.5 under another PDB ID and half without.

Prints Markdown tables (all cases; the same-target-template and no-template subsets; the issue's
targets with the measured values) and writes one CSV row per case (default
benchmarks/results/templates.csv). Each case is timed single-threaded (torch.set_num_threads(1));
``--jobs`` runs that many cases side by side, so times also reflect the machine's load.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import re
import sys
import time
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import BENCHMARK_NOISE, Case, complex_entries, data_root, em_ligand_boxes, simulated_case  # noqa: E402
from benchmarks.ligand_placement import SUCCESS_RMSD, ligand_rmsd  # noqa: E402
from ligfit import io, maps, segment  # noqa: E402
from ligfit.dock import DockingOptions, dock  # noqa: E402
from ligfit.ligand import heavy_atom_mol, load_ligand  # noqa: E402
from ligfit.records import LigandShape  # noqa: E402
from ligfit.templates import TemplateLibrary, TemplateOptions, build_library, load_library, shipped_library_path, template_seeds  # noqa: E402
from ligfit.templates.errors import TemplateLibraryError  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CONGENERIC_POCKET = 10.0  # Å: residues with an atom this close to the ligand form the model
SAME_TARGET_IDENTITY = 0.9  # pocket identity above which a PoseBusters template counts as the same target


@dataclass(frozen=True)
class TemplateCase:
    """A placement case and the library that may be used for it (its own complex left out)."""

    case: Case
    set: str
    library: TemplateLibrary
    group: str = ""  # the query's target, where known (congeneric series)


# --------------------------------------------------------------------------- cases


def congeneric_case(library: TemplateLibrary, template_id: str, resolution: float, seed: int = 0) -> TemplateCase:
    """A map simulated from the template's own target pocket + ligand; the library without this template."""
    import openmmforcefields

    position = int(np.flatnonzero(library.index.id == template_id)[0])
    record = library.record(position)
    # The shipped library names its source files relative to the folder openmmforcefields is installed in.
    source = next(s for s in library.manifest["sources"] if s["group"] == record.group)
    installed = Path(openmmforcefields.__file__).resolve().parent.parent
    rng = np.random.default_rng([seed, int(resolution * 10), sum(map(ord, template_id))])
    protein = io.read_structure(installed / source["files"][0])
    protein.remove_hydrogens()
    reference = record.ligand
    ligand_xyz = reference.GetConformer().GetPositions()
    pocket = _residues_near(protein, ligand_xyz, CONGENERIC_POCKET)
    complex_structure = io.add_ligand(
        pocket, [a.GetSymbol() for a in reference.GetAtoms()], [f"X{i}" for i in range(reference.GetNumAtoms())], ligand_xyz
    )
    _set_ligand_occupancy(complex_structure, float(rng.uniform(0.6, 1.0)))
    coordinates = io.heavy_atoms(pocket).coordinates
    grid = maps.grid_around(coordinates, min(1.0, resolution / 3), 4.0)
    density = maps.simulate(complex_structure, resolution, like=grid, noise=BENCHMARK_NOISE, seed=int(rng.integers(2**31)))
    case = Case(f"{template_id}@{resolution:g}", density, pocket, Chem.MolToSmiles(reference), reference, resolution)
    return TemplateCase(case, "congeneric", library.without(ids=[template_id]), record.group)


def _residues_near(structure: gemmi.Structure, points: np.ndarray, radius: float) -> gemmi.Structure:
    """A copy holding only the residues with an atom within ``radius`` Å of ``points``."""
    pocket = structure.clone()
    for chain in pocket[0]:
        for index in reversed(range(len(chain))):
            xyz = np.array([atom.pos.tolist() for atom in chain[index]])
            if np.linalg.norm(xyz[:, None] - points[None], axis=-1).min() > radius:
                del chain[index]
    pocket.remove_empty_chains()
    return pocket


def _set_ligand_occupancy(structure: gemmi.Structure, occupancy: float) -> None:
    for chain in structure[0]:
        for residue in chain:
            if residue.name == "LIG":
                for atom in residue:
                    atom.occ = occupancy


def posebusters_library(root: Path, rebuild: bool = False) -> TemplateLibrary:
    """All PoseBusters entries as a template library (built once into benchmarks/results/)."""
    folder = RESULTS / "templates-posebusters"
    entries = [row["entry"] for row in complex_entries(root)]
    if not rebuild:
        try:
            library = load_library(folder)
            if len(library.manifest["sources"]) == len(entries):
                return library
        except TemplateLibraryError:
            pass
    print(f"building the PoseBusters template library in {folder} ...", file=sys.stderr, flush=True)
    sources = [str(root / "complexes" / entry) for entry in entries]
    return build_library(sources, folder, force=True, root=root, rebuild="python benchmarks/templates.py --rebuild-library")


# --------------------------------------------------------------------------- running


def run_case(item: TemplateCase, options: TemplateOptions, docking: DockingOptions) -> dict:
    """Segment once, dock without and with template seeds, and score both against the deposited ligand."""
    case = item.case
    started = time.perf_counter()
    ligand = load_ligand(case.smiles, seed=0)
    protein = io.heavy_atoms(case.model) if case.model is not None else None
    difference = segment.difference_map(case.density, case.model, case.resolution)
    heavy_xyz = ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]
    shape = LigandShape.from_conformers(heavy_xyz)
    blobs = segment.select_blobs(segment.find_blobs(difference, shape, None if protein is None else protein.coordinates), 3)
    shared = time.perf_counter() - started

    started = time.perf_counter()
    plain = dock(ligand, difference.difference, blobs, case.resolution, protein, docking)
    plain_seconds = time.perf_counter() - started

    found = template_seeds(item.library, ligand, blobs, protein, options)
    if found.seeds:
        started = time.perf_counter()
        seeded = dock(ligand, difference.difference, blobs, case.resolution, protein, docking, seeds=found.seeds)
        seeded_seconds = time.perf_counter() - started
    else:
        seeded, seeded_seconds = plain, plain_seconds

    seed_rmsd = min((ligand_rmsd(heavy_atom_mol(ligand, s.coordinates), case.reference) for s in found.seeds), default=None)
    best = found.matches[0] if found.matches else None
    return {
        "set": item.set,
        "case": case.name,
        "resolution": case.resolution,
        "heavy_atoms": case.reference.GetNumAtoms(),
        "library_size": len(item.library),
        "template": best.record.id if best else "",
        "same_target": _same_target(item, best),
        "template_pocket_identity": "" if best is None or best.pocket is None else round(best.pocket.identity, 3),
        "template_tanimoto": round(best.ligand.tanimoto, 3) if best else "",
        "template_common_fraction": round(best.ligand.common_fraction, 3) if best else "",
        "seeds": len(found.seeds),
        "seed_rmsd": "" if seed_rmsd is None else round(seed_rmsd, 3),
        "rmsd_without": _rmsd(plain, ligand, case.reference),
        "rmsd_with": _rmsd(seeded, ligand, case.reference),
        "score_without": "" if plain.best is None else round(plain.best.score, 4),
        "score_with": "" if seeded.best is None else round(seeded.best.score, 4),
        "won_by_seed": bool(seeded.best is not None and seeded.best.source.startswith("seed")),
        "seconds_without": round(shared + plain_seconds, 2),
        "seconds_with": round(shared + found.seconds + seeded_seconds, 2),
        "template_seconds": round(found.seconds, 2),
    }


def _same_target(item: TemplateCase, best) -> bool | str:
    """Whether the best template comes from the query's own target.

    Congeneric: the template's group is the query's target. PoseBusters: its pocket superposes
    with ≥ 90% identical residues (the same protein under another PDB ID). EM boxes: unknown
    (no model to compare pockets with).
    """
    if best is None:
        return False
    if item.set == "congeneric":
        return bool(best.record.group == item.group)
    if best.pocket is not None:
        return bool(best.pocket.identity >= SAME_TARGET_IDENTITY)
    return ""


def _rmsd(result, ligand, reference: Chem.Mol) -> float | str:
    if result.best is None:
        return ""
    return round(ligand_rmsd(heavy_atom_mol(ligand, result.best.coordinates), reference), 3)


def summarise(rows: list[dict]) -> str:
    """Markdown tables: every case per set and resolution; the same-target and no-template subsets; the targets."""
    header = (
        "| set | resolution (Å) | cases | with a template | success without | success with | gain (points) "
        "| median RMSD without / with (Å) | lost (≤ 2 Å → > 2 Å) | best seed ≤ 2 Å (before docking) | median time without / with (s) |"
    )
    lines = ["All cases", "", header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, resolution), group in _groups(rows).items():
        without, with_ = _rmsds(group, "rmsd_without"), _rmsds(group, "rmsd_with")
        templated = sum(int(r["seeds"]) > 0 for r in group)
        seeded = [float(r["seed_rmsd"]) for r in group if r["seed_rmsd"] != ""]
        good_seeds = sum(value <= SUCCESS_RMSD for value in seeded)
        times_without = [float(r["seconds_without"]) for r in group]
        times_with = [float(r["seconds_with"]) for r in group]
        lines.append(
            f"| {kind} | {resolution} | {len(group)} | {templated} | {_rate(without)} | {_rate(with_)} | {_gain(without, with_)} "
            f"| {_median(without)} / {_median(with_)} | {_lost(without, with_)} | {good_seeds}/{templated} "
            f"| {np.median(times_without):.1f} / {np.median(times_with):.1f} |"
        )
    lines += [
        "",
        "Subsets: the best template from the same target (congeneric: same series; PoseBusters: pocket ≥ 90% identical); "
        "no template similar enough to seed (nothing changes by construction: same docking call)",
        "",
        "| set | resolution (Å) | subset | cases | success without | success with | median RMSD without / with (Å) | lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (kind, resolution), group in _groups(rows).items():
        for name, subset in (
            ("same-target template", [r for r in group if str(r["same_target"]) == "True"]),
            ("no template", [r for r in group if int(r["seeds"]) == 0]),
        ):
            if subset:
                without, with_ = _rmsds(subset, "rmsd_without"), _rmsds(subset, "rmsd_with")
                lines.append(
                    f"| {kind} | {resolution} | {name} | {len(subset)} | {_rate(without)} | {_rate(with_)} "
                    f"| {_median(without)} / {_median(with_)} | {_lost(without, with_)} |"
                )
    return "\n".join(lines + ["", *_targets(rows)])


def _targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with the measured value."""
    same = [r for r in rows if str(r["same_target"]) == "True" and r["set"] != "em-boxes"]
    at = {resolution: [r for r in same if float(r["resolution"]) == resolution] for resolution in (3.0, 4.0)}
    congeneric4 = [r for r in rows if r["set"] == "congeneric" and float(r["resolution"]) == 4.0]
    untemplated = [r for r in rows if int(r["seeds"]) == 0]
    lines = ["Targets (simulated maps; same-target = congeneric + PoseBusters same-target subsets)", ""]
    if at[4.0]:
        rate = _fraction(_rmsds(at[4.0], "rmsd_with"))
        lines.append(f"- same-target template, success at 4.0 Å ≥ 95%: {100 * rate:.0f}% of {len(at[4.0])} → {_verdict(rate >= 0.95)}")
    if at[3.0]:
        median = float(np.median(_rmsds(at[3.0], "rmsd_with")))
        lines.append(f"- same-target template, median RMSD at 3.0 Å ≤ 1 Å: {median:.2f} Å over {len(at[3.0])} → {_verdict(median <= 1.0)}")
    if congeneric4:
        without, with_ = _rmsds(congeneric4, "rmsd_without"), _rmsds(congeneric4, "rmsd_with")
        gain = 100 * (_fraction(with_) - _fraction(without))
        lines.append(
            f"- congeneric at 4.0 Å, ≥ 10 points over density-only: {gain:+.0f} points "
            f"({100 * _fraction(without):.0f}% → {100 * _fraction(with_):.0f}%) → {_verdict(gain >= 10)}"
        )
    lost_anywhere = sum(_lost_count(_rmsds([r], "rmsd_without"), _rmsds([r], "rmsd_with")) for r in rows)
    lost_untemplated = sum(_lost_count(_rmsds([r], "rmsd_without"), _rmsds([r], "rmsd_with")) for r in untemplated)
    lines.append(
        f"- no loss when no template is similar: {lost_untemplated} lost of {len(untemplated)} cases without a template "
        f"→ {_verdict(lost_untemplated == 0)}; {lost_anywhere} lost of {len(rows)} cases in all"
    )
    return lines


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        resolution = f"{float(row['resolution']):g}" if row["set"] != "em-boxes" else "as deposited"
        groups.setdefault((row["set"], resolution), []).append(row)
    return dict(sorted(groups.items()))


def _rmsds(rows: list[dict], column: str) -> np.ndarray:
    """RMSDs (Å) of a column; a case with no supported pose counts as a failure (infinite)."""
    return np.array([float(r[column]) if r[column] != "" else np.inf for r in rows])


def _fraction(rmsds: np.ndarray) -> float:
    return float(np.mean(rmsds <= SUCCESS_RMSD)) if len(rmsds) else 0.0


def _rate(rmsds: np.ndarray) -> str:
    good = int(np.sum(rmsds <= SUCCESS_RMSD))
    return f"{good}/{len(rmsds)} ({100 * good / len(rmsds):.0f}%)"


def _gain(without: np.ndarray, with_: np.ndarray) -> str:
    return f"{100 * (_fraction(with_) - _fraction(without)):+.0f}"


def _lost_count(without: np.ndarray, with_: np.ndarray) -> int:
    return int(np.sum((without <= SUCCESS_RMSD) & (with_ > SUCCESS_RMSD)))


def _lost(without: np.ndarray, with_: np.ndarray) -> str:
    gained = int(np.sum((without > SUCCESS_RMSD) & (with_ <= SUCCESS_RMSD)))
    return f"{_lost_count(without, with_)} (gained {gained})"


def _median(rmsds: np.ndarray) -> str:
    value = np.median(rmsds)
    return f"{value:.2f}" if np.isfinite(value) else "–"


def _verdict(passed: bool) -> str:
    return "met" if passed else "NOT met"


def _congeneric_ids(library: TemplateLibrary, per_target: int | None, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    chosen = []
    for group in sorted(set(library.index.group)):
        ids = sorted(library.index.id[library.index.group == group])
        chosen += ids if per_target is None else list(rng.choice(ids, size=min(per_target, len(ids)), replace=False))
    return [str(i) for i in chosen]


def _interleave_targets(ids: list[str]) -> list[str]:
    """Template ids reordered round-robin over their targets (the text before the first - or _)."""
    by_target: dict[str, list[str]] = {}
    for identifier in ids:
        by_target.setdefault(re.split(r"[-_]", identifier)[0], []).append(identifier)
    return [i for batch in zip_longest(*by_target.values()) for i in batch if i is not None]


def _posebusters_entries(root: Path, library: TemplateLibrary, count: int | None, seed: int) -> list[str]:
    """All entries, or ``count``: half with a similar ligand under another PDB ID (Tanimoto ≥ 0.5), half without."""
    from ligfit.templates.library import ligand_fingerprint, tanimoto

    rows = complex_entries(root)
    entries = [row["entry"] for row in rows]
    if count is None:
        return entries
    similar = []
    for row in rows:
        others = library.index.pdb_id != row["pdb_id"].upper()
        similarity = tanimoto(ligand_fingerprint(Chem.MolFromSmiles(row["lig_smiles"])), library.index.fingerprint[others])
        similar.append(bool(similarity.max() >= 0.5))
    rng = np.random.default_rng(seed)
    with_similar = [e for e, s in zip(entries, similar) if s]
    without_similar = [e for e, s in zip(entries, similar) if not s]
    half = count // 2
    return list(rng.choice(with_similar, half, replace=False)) + list(rng.choice(without_similar, count - half, replace=False))


@dataclass(frozen=True)
class Job:
    """One benchmark case to run: set, what to run (template id, PoseBusters entry, EM box number) and resolution (Å)."""

    set: str
    name: str
    resolution: float | None = None


class Runner:
    """Builds the case of a job and runs it; opened libraries and loaded EM boxes are kept for the next job."""

    def __init__(self, root: Path | None, shipped: TemplateLibrary, posebusters: TemplateLibrary | None):
        self.root, self.shipped, self.posebusters = root, shipped, posebusters
        self._em_boxes: list[Case] | None = None

    def case(self, job: Job) -> TemplateCase:
        if job.set == "congeneric":
            return congeneric_case(self.shipped, job.name, job.resolution)
        if job.set == "posebusters":
            case = simulated_case(self.root, job.name, job.resolution)
            return TemplateCase(case, "posebusters", self.posebusters.without(pdb_ids=[job.name.split("_")[0]]))
        if self._em_boxes is None:
            self._em_boxes = em_ligand_boxes(self.root)
        case = self._em_boxes[int(job.name)]
        return TemplateCase(case, "em-boxes", self.posebusters.without(pdb_ids=[case.name.split()[0]]))

    def __call__(self, job: Job) -> dict:
        import torch

        torch.set_num_threads(1)
        return run_case(self.case(job), TemplateOptions(), DockingOptions())


_worker: Runner | None = None  # the runner of a worker process (set once by the pool initialiser)


def _start_worker(runner: Runner) -> None:
    global _worker
    _worker = runner


def _run_in_worker(job: Job) -> dict:
    return _worker(job)


def jobs_for(args: argparse.Namespace, root: Path | None, shipped: TemplateLibrary, posebusters: TemplateLibrary | None) -> list[Job]:
    """The cases to run."""
    per_target = args.per_target or (2 if args.quick else None)
    entries = args.entries or (6 if args.quick else None)
    jobs = []  # case-major (both resolutions of a case together), so that a cut-short run still compares them
    if "congeneric" in args.sets:
        ids = _congeneric_ids(shipped, per_target, args.seed)
        jobs += [Job("congeneric", i, r) for i in _interleave_targets(ids) for r in args.resolutions]
    if "posebusters" in args.sets and posebusters is not None:
        chosen = _posebusters_entries(root, posebusters, entries, args.seed)
        jobs += [Job("posebusters", e, r) for e in chosen for r in args.resolutions]
    if "em-boxes" in args.sets and posebusters is not None:
        with open(root / "em" / "index.csv") as handle:
            count = sum(1 for row in csv.DictReader(handle) if row["kind"] == "ligand_box")
        jobs += [Job("em-boxes", str(i)) for i in range(count)]
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 ligands per target, 6 PoseBusters entries, the EM boxes; 3 and 4 Å")
    parser.add_argument("--sets", nargs="+", default=["congeneric", "posebusters", "em-boxes"])
    parser.add_argument("--resolutions", type=float, nargs="+", default=[3.0, 4.0])
    parser.add_argument("--per-target", type=int, help="congeneric ligands per target (default: all; 2 with --quick)")
    parser.add_argument(
        "--entries", type=int, help="PoseBusters entries, half with a similar ligand elsewhere (default: all; 6 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once, one process each (each single-threaded)")
    parser.add_argument("--rebuild-library", action="store_true", help="rebuild the PoseBusters template library first")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="CSV", help="print the tables of earlier runs and stop")
    parser.add_argument("--out", type=Path, default=RESULTS / "templates.csv")
    args = parser.parse_args(argv)
    if args.summarise:
        rows = [row for path in args.summarise for row in csv.DictReader(open(path))]
        print(summarise(rows))
        return 0

    root = data_root()
    shipped = load_library(shipped_library_path())
    wanted = {"posebusters", "em-boxes"} & set(args.sets)
    posebusters = posebusters_library(root, args.rebuild_library) if root is not None and wanted else None
    if posebusters is not None:
        print(
            f"PoseBusters library: {len(posebusters)} templates; index loads in {_load_seconds(posebusters.folder) * 1000:.0f} ms",
            file=sys.stderr,
        )
    jobs = jobs_for(args, root, shipped, posebusters)
    runner = Runner(root, shipped, posebusters)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_FIELDS)
        writer.writeheader()
        if args.jobs > 1:
            pool = multiprocessing.get_context("fork").Pool(args.jobs, initializer=_start_worker, initargs=(runner,))
            results = pool.imap(_run_in_worker, jobs)
        else:
            pool, results = None, map(runner, jobs)
        for row in results:
            writer.writerow(row)
            handle.flush()
            rows.append(row)
            print(
                f"  {row['set']:11s} {row['case']:24s} seeds {row['seeds']:3d} (best {row['seed_rmsd'] or '–'})  "
                f"rmsd {row['rmsd_without'] or '–'} → {row['rmsd_with'] or '–'}  {row['seconds_without']:.1f} / {row['seconds_with']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        if pool is not None:
            pool.close()
            pool.join()
    mode = "quick" if args.quick else "full"
    print(f"ligfit template benchmark ({mode}, seed {args.seed}, {' '.join(sys.argv[1:]) or 'no options'}); rows in {args.out}")
    print(summarise(rows))
    return 0


def _load_seconds(folder: Path) -> float:
    started = time.perf_counter()
    load_library(folder)
    return time.perf_counter() - started


_FIELDS = [
    "set",
    "case",
    "resolution",
    "heavy_atoms",
    "library_size",
    "template",
    "same_target",
    "template_pocket_identity",
    "template_tanimoto",
    "template_common_fraction",
    "seeds",
    "seed_rmsd",
    "rmsd_without",
    "rmsd_with",
    "score_without",
    "score_with",
    "won_by_seed",
    "seconds_without",
    "seconds_with",
    "template_seconds",
]

if __name__ == "__main__":
    sys.exit(main())
