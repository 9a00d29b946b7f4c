"""The screen: dock every ligand of a library into the map's unexplained density and rank them.

Map and model are read, and the difference map and blobs computed, once (:func:`prepare_context`);
the context travels once to each worker (a file each local worker reads once, or a Dask broadcast),
and each task docks one ligand (:func:`screen_ligand`). Each ligand's result is written
atomically to ``out/ligands/<key>.json`` as it finishes, so an interrupted screen resumes
where it stopped; a ligand that crashes is recorded with its error and the rest go on.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ligfit import io, maps, segment
from ligfit.dock import DockingOptions, dock, pose_gap
from ligfit.errors import BadMapError, LigfitError
from ligfit.ligand import heavy_atom_mol, is_macrocycle, load_ligand
from ligfit.maps import DensityMap
from ligfit.measures import ligand_symmetry
from ligfit.measures.qscore import ReferenceGaussian, expected_q_score
from ligfit.pipeline import BuildOptions, MapInput, ModelInput, site_center
from ligfit.records import Blob, LigandShape
from ligfit.runtime import Progress, connect_scheduler, no_progress, torch_device, torch_thread_pool
from ligfit.screen import ranking
from ligfit.screen.library import Library, LibraryEntry, read_library
from ligfit.screen.ranking_html import MAX_PICTURED_HITS, build_ranking_html
from ligfit.trace.truncated import complete_side_chains

log = logging.getLogger(__name__)

#: The near-tie break within a blob that the screen's rankings were measured with (docs/benchmarks.md "Round 11":
#: 0.05 per σ, capped at ± 0.03), without the interaction tie-break. Build's stronger density one (Round 18) and its
#: interaction one (Round 19) were measured on build's maps, not on rankings across ligands.
SCREEN_TIE_BREAK = {"density_tie_break_weight": 0.05, "density_tie_break_cap": 0.03, "interaction_tie_break_weight": 0.0}

#: Docking settings for screening: ``build``'s full search per blob. On held-out PoseBusters pockets
#: (benchmarks/screening.py --docking full|quick, docs/benchmarks.md "Screening a library") the quarter search
#: below lost true ligands that the full one docks (7U3J, 7QHG, 7MGT at 3–3.5 Å: fit 0.25–0.33 → 0.51–0.69).
#: Without the starts at a long blob's ends (``blob_end_starts``): measured on build's maps, not on screening's
#: rankings, where a small ligand must not win by fitting one end of a big blob. 8 conformer-search starts kept per pose
#: refined, 64 refined and 16 scored per blob, as the rankings were measured (build: 4, 192 since Round 28, 32 since Round 21).
SCREEN_DOCKING = DockingOptions(blob_end_starts=False, refine_poses=64, survivors_per_candidate=8, scored_poses=16, **SCREEN_TIE_BREAK)

#: About a quarter of ``build``'s search per blob, about twice as fast per ligand (``ligfit screen --quick``,
#: ``identify --quick``). On the real identification blobs it ranked AGS 6th in its EM box, the full search 3rd.
QUICK_SCREEN_DOCKING = DockingOptions(
    **SCREEN_TIE_BREAK,
    blob_end_starts=False,
    random_orientations=6,
    smooth_steps=50,
    anchors=2,
    anchor_rotations=200,
    anchor_poses=8,
    beam_width=8,
    refine_poses=24,
    survivors_per_candidate=8,
    refine_steps=60,
    hops=1,
    hop_steps=40,
    scored_poses=6,
    final_poses=4,
)

#: molecules with more rotatable bonds than this count as flexible (``ScreenOptions.flexible_conformers``):
#: lipids, detergents, CoA and heme A's tail (14–82), not the dinucleotides NAD(P)(H) and FAD (11–13).
#: With the cut at 8, NADPH was docked into 3NZD's real 1.8 Å density with 3 conformers and missed
#: it (fit score 0.03, below ATP's 0.35); with the screen's 8 conformers it fits (0.42). Identification
#: on EMD-3488's first heme blob took about as long with the cut at 13 as at 8 (276 s, 279 s; 1 worker,
#: shared machine). A cut at 20 was not timed (an earlier note here said it doubled the time: that
#: was a measuring error, output held in a pipe's buffer).
FLEXIBLE_ROTORS = 13

#: molecules with more rotatable bonds than this, up to FLEXIBLE_ROTORS, are docked with at least
#: ``ScreenOptions.many_rotor_conformers`` conformers: eight left the search too little to start from (7ZZB's 51-atom
#: bis-adenosine, 11 rotatable bonds, at 3 Å: fit score 0.16, ranked 8th of 21; with 24 conformers 0.40, first).
#: Beyond FLEXIBLE_ROTORS the anchor-and-grow search explores the torsions, and 24 conformers did not help
#: (propionyl-CoA, 20: 0.63 → 0.35). docs/benchmarks.md, "Conformers by flexibility".
MANY_ROTORS = 8

#: conformers a macrocycle (``ligand.is_macrocycle``) is docked with at least (``ScreenOptions.macrocycle_conformers``):
#: docking turns rotatable bonds, not ring bonds, and RDKit's count leaves the ring out, so by it a macrocycle got 8. On the
#: ten PoseBusters macrocycles at 3.0 and 3.5 Å with 20 decoys each, 48 raised the true ligand's fit in 16 of 20
#: (c-di-GMP 0.54 → 0.73) and made it a hit in 12 against 7, for 2–5× its docking time; build's MACROCYCLE_CONFORMERS
#: (150) was no better on the four tried (7MMH 0.60 against 0.47, 7BA0 0.54 against 0.68) for 5–17×.
#: docs/benchmarks.md, "Macrocycles in a screen".
SCREEN_MACROCYCLE_CONFORMERS = 48

RANKING_COLUMNS = (
    "rank",
    "name",
    "status",
    "hit",
    "fit_score",
    "rank_score",
    "confidence",
    "margin",
    "rival",
    "rivals",
    "outranked_by",
    "group",
    "blob",
    "blob_cc",
    "explained",
    "cc",
    "q_score",
    "expected_q_score",
    "fraction_in_density",
    "pose_gap",
    "strain_kcal_mol",
    "clashes",
    "heavy_atoms",
    "blob_heavy_atoms",
    "conformers",
    "time_s",
    "smiles",
    "inchikey",
    "code",
    "note",
)


@dataclass(frozen=True)
class ScreenOptions:
    """How a screen docks and judges each ligand (the CLI mirrors these)."""

    resolution: float
    site: str | tuple[float, float, float] | None = None
    blob: int | None = None  # dock only into this blob (1 = the largest; see blobs.csv)
    threshold: float = BuildOptions.threshold  # σ of the difference map, as build segments it
    max_blobs: int = 2  # blobs tried per ligand, best size/shape match first
    protonation: str = "ph7"
    max_conformers: int | None = 8  # conformers per ligand (None: build's count, 10 + 6 per rotatable bond, at most 60)
    seed: int = 0
    docking: DockingOptions = SCREEN_DOCKING
    prefilter: bool = True
    hit_score: float = ranking.HIT_SCORE  # a hit without a distinct rival in its blob (ranking.call_hits)
    many_rotor_conformers: int | None = 24  # at least this many with MANY_ROTORS–FLEXIBLE_ROTORS rotatable bonds (None: max_conformers)
    flexible_conformers: int | None = None  # at most this many for molecules with > FLEXIBLE_ROTORS rotatable bonds (None: no cap)
    macrocycle_conformers: int | None = SCREEN_MACROCYCLE_CONFORMERS  # at least this many for a macrocycle (None: as any other)
    complete_side_chains: bool = BuildOptions.complete_side_chains  # the model's truncated side chains explain density, as in build

    def fingerprint(self) -> dict:
        data = dataclasses.asdict(self)
        data["docking"] = self.docking.as_dict()
        return data


@dataclass(frozen=True)
class ScreenContext:
    """What every task needs, computed once: the map, difference map, blobs and protein atoms."""

    density: DensityMap
    difference: DensityMap  # σ units
    blobs: tuple[Blob, ...]
    protein_coordinates: np.ndarray  # (n, 3) heavy atoms, Å
    protein_elements: tuple[str, ...]
    options: ScreenOptions
    q_reference: ReferenceGaussian
    fingerprint: str  # inputs and options: a finished ligand is reused only under the same one


@dataclass
class ScreenResult:
    """One row per ligand, best first; ``verdict`` says which one explains the density or that none does."""

    rows: list[dict]
    blobs: list[dict]
    verdict: str
    library: Library
    folder: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    prefilter: list[dict] = field(default_factory=list)  # per blob and library category: docked, and why the rest were not

    def prefilter_lines(self) -> list[str]:
        """One line per blob: which categories of the library were docked, and why the others were not."""
        return prefilter_lines(self.prefilter)

    @property
    def hits(self) -> list[dict]:
        return [row for row in self.rows if row.get("hit")]

    @property
    def none_fits(self) -> bool:
        """True when no ligand of the library explains the density."""
        return not self.hits

    @property
    def best(self) -> dict | None:
        return self.hits[0] if self.hits else None

    @property
    def confidence_meaning(self) -> str | None:
        """How often a best hit of this confidence was right on the screening benchmark (None when none fits)."""
        return ranking.confidence_meaning(self.best["confidence"]) if self.best else None

    def table(self, top: int = 20) -> str:
        """A plain-text table of the first ``top`` rows."""
        lines = [
            f"{'#':>3} {'ligand':<24} {'status':<8} {'fit':>5} {'rank':>5} {'conf':>5} {'ahead':>6} {'group':>5} {'blob':>4} {'blobCC':>6} "
            f"{'expl':>5} {'Q':>5} {'strain':>6}"
        ]
        for row in self.rows[:top]:
            lines.append(
                f"{row['rank']:>3} {row['name'][:24]:<24} {row['status']:<8} {_fmt(row.get('fit_score'))} {_fmt(row.get('rank_score'))} "
                f"{_fmt(row.get('confidence'))} {_fmt(row.get('margin'), 6)} {row.get('group') or '-':>5} "
                f"{row.get('blob') if row.get('blob') is not None else '-':>4} "
                f"{_fmt(row.get('blob_cc'), 6)} {_fmt(row.get('explained'))} {_fmt(row.get('q_score'))} {_fmt(row.get('strain_kcal_mol'), 6)}"
            )
        lines.append(self.verdict)
        lines.extend(self.prefilter_lines())
        return "\n".join(lines)


def _fmt(value: float | None, width: int = 5) -> str:
    return f"{value:>{width}.2f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def _heavy_atoms_held(blob: Blob) -> float:
    """The blob's estimated heavy atoms, or its volume / 10 Å³ where segmentation made no estimate."""
    return blob.estimated_heavy_atoms or blob.volume / 10.0


def prepare_context(
    density_map: MapInput, model: ModelInput, options: ScreenOptions, library: Library, progress: Progress
) -> ScreenContext:
    """Read map and model, compute the difference map and the blobs (once for the whole screen)."""
    if not options.resolution or options.resolution <= 0:
        raise BadMapError(f"resolution must be a positive number of Å, got {options.resolution!r}")
    torch_device(options.docking.device)  # a bad name or a missing GPU: refused here, not once per ligand in the workers
    structure = io.read_structure(model) if model is not None else None
    protein = io.heavy_atoms(structure) if structure is not None else None
    around = protein.coordinates if protein is not None and len(protein) else None
    density = maps.load_map(density_map, around)
    if protein is not None:
        maps.check_overlap(density, protein.coordinates, str(model))
    progress("computing the difference map")
    explaining = structure
    if structure is not None and options.complete_side_chains:
        explaining = complete_side_chains(structure, density).structure
    difference = segment.difference_map(density, explaining, options.resolution)
    protein_xyz = protein.coordinates if protein is not None else np.zeros((0, 3))
    shape = _typical_shape(library, options)
    if options.site is not None:
        center = site_center(options.site, structure)
        found = _blob_at_site(difference, center, shape, protein_xyz, options.threshold) if len(protein_xyz) else None
        if found is None:
            radius = float(np.linalg.norm(shape.extents)) * 1.8 + 4.0
            found = segment.site_blob(difference, center, radius, shape, protein_xyz if len(protein_xyz) else None)
        blobs = [found]
    else:
        blobs = segment.find_blobs(difference, shape, protein_xyz if len(protein_xyz) else None, threshold=options.threshold)
        blobs = segment.merge_fragments(blobs, difference, shape, protein_xyz if len(protein_xyz) else None)
        blobs = sorted(blobs, key=lambda b: -_heavy_atoms_held(b))  # numbered by size
        blobs = [dataclasses.replace(blob, rank=number) for number, blob in enumerate(blobs, start=1)]
    if options.blob is not None:
        chosen = [blob for blob in blobs if blob.rank == options.blob]
        if not chosen:
            listed = "; ".join(f"blob {blob.rank} ~{_heavy_atoms_held(blob):.0f} heavy atoms" for blob in blobs[:5])
            more = "; …" if len(blobs) > 5 else ""
            raise LigfitError(
                f"there is no blob {options.blob}: the map has {len(blobs)} blob(s) above {options.threshold} σ"
                + (f" ({listed}{more})" if blobs else "")
                + "; run without --blob to have them all listed in blobs.csv"
            )
        blobs = chosen
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(density.values).tobytes())
    digest.update(np.ascontiguousarray(protein_xyz).tobytes())
    digest.update(json.dumps(options.fingerprint(), sort_keys=True, default=str).encode())
    return ScreenContext(
        density,
        difference.difference,
        tuple(blobs),
        protein_xyz,
        tuple(protein.elements) if protein is not None else (),
        options,
        ReferenceGaussian.from_map(density),
        digest.hexdigest()[:16],
    )


#: Å: a blob counts as the one at a site when its voxels come this close to the site's centre
SITE_REACH = 4.0


def _blob_at_site(difference, center: np.ndarray, shape: LigandShape, protein_xyz: np.ndarray, threshold: float) -> Blob | None:
    """The connected blob of unexplained density at a site (most voxels within :data:`SITE_REACH`), or None.

    With a model, a site's blob is the density there, not a sphere around it: the sphere that
    ``segment.site_blob`` cuts (12 Å across and more) holds neighbouring ligands and waters too, so its
    estimated heavy-atom count (247 at 3NZD's NADPH, which has 48) made the size prefilter turn
    every candidate away, and its unexplained density favoured the largest candidates.
    """
    blobs = segment.find_blobs(difference, shape, protein_xyz, threshold=threshold)
    near = [int((np.linalg.norm(blob.points - center, axis=1) <= SITE_REACH).sum()) for blob in blobs]
    if not blobs or max(near) == 0:
        return None
    return dataclasses.replace(blobs[int(np.argmax(near))], rank=0)


def _typical_shape(library: Library, options: ScreenOptions) -> LigandShape:
    """The blob search's notion of "a ligand": the library's median-sized molecule."""
    entries = sorted(library.entries, key=lambda entry: entry.heavy_atoms)
    median = entries[len(entries) // 2]
    try:
        ligand = load_ligand(median.smiles, protonation=options.protonation, max_conformers=4, seed=options.seed)
        heavy = ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]
        return LigandShape.from_conformers(heavy)
    except LigfitError:
        size = float(median.heavy_atoms)
        return LigandShape(median.heavy_atoms, np.array([0.45, 0.3, 0.15]) * size**0.5 * 2)


def screen_ligand(context: ScreenContext, entry: LibraryEntry) -> dict:
    """Dock one ligand into the context's blobs and score it; errors are caught and recorded."""
    start = time.perf_counter()
    record = {"name": entry.name, "smiles": entry.smiles, "inchikey": entry.inchikey, "code": entry.code, "heavy_atoms": entry.heavy_atoms}
    try:
        record.update(_screen(context, entry))
    except LigfitError as error:
        record.update(status="error", note=str(error))
    except Exception as error:  # a crash in one ligand must not stop the screen
        record.update(status="error", note=f"{type(error).__name__}: {error}", traceback=traceback.format_exc(limit=6))
    record["time_s"] = round(time.perf_counter() - start, 2)
    record["fingerprint"] = context.fingerprint
    return record


def _screen(context: ScreenContext, entry: LibraryEntry) -> dict:
    """The ligand's row: of every pose docking reports, the one with the best fit score (how ligands are ranked).

    Docking picks its best pose by the correlation over the search site around the blob, with chemistry terms; the fit
    score judges the blob itself. For a weakly occupied ligand they can disagree: 7UEY's N0R (27 heavy atoms, a blob of
    about 17) at 3 Å, docking's best pose lay 11 Å from the deposited one at fit score 0.51, its second at 1.1 Å and
    0.66 (docs/benchmarks.md, "The pose the ranking judges"). ``docking_choice_fit`` keeps the fit of docking's choice.
    """
    options = context.options
    blobs = list(context.blobs)
    if not blobs:
        return {"status": "no_blob", "note": f"no unexplained density above {options.threshold} σ near the model"}
    verdicts: dict[str, str] = {}  # blob number -> why it was not docked there ('' where it was)
    if options.prefilter:
        reasons = [ranking.size_prefilter(entry.heavy_atoms, blob) for blob in blobs]
        verdicts.update((str(blob.rank), reason) for blob, reason in zip(blobs, reasons))
        if all(reasons):
            return _filtered(reasons[0], blobs[0], verdicts)
        blobs = [blob for blob, reason in zip(blobs, reasons) if not reason]
    rotatable, macrocycle = _flexibility(entry.smiles)
    conformer_count = conformers_for(rotatable, options, macrocycle)
    ligand = load_ligand(entry.smiles, name="LIG", protonation=options.protonation, max_conformers=conformer_count, seed=options.seed)
    heavy = ligand.heavy_atom_count
    conformers = ligand.conformer_coordinates()[:, :heavy]
    extents = np.array([LigandShape.from_conformers(c[None]).extents for c in conformers])
    if options.prefilter:
        reasons = [ranking.shape_prefilter(extents, blob) for blob in blobs]
        verdicts.update((str(blob.rank), reason) for blob, reason in zip(blobs, reasons))
        if all(reasons):
            return _filtered(reasons[0], blobs[0], verdicts)
        blobs = [blob for blob, reason in zip(blobs, reasons) if not reason]
    ordered = sorted(blobs, key=lambda blob: -ranking.blob_match(heavy, extents, blob))
    blobs = ordered[: options.max_blobs]
    verdicts.update((str(blob.rank), f"not among the {options.max_blobs} blob(s) it matches best") for blob in ordered[options.max_blobs :])
    verdicts.update((str(blob.rank), "") for blob in blobs)
    protein = io.AtomTable.from_arrays(context.protein_coordinates, context.protein_elements) if len(context.protein_coordinates) else None
    if heavy == 1:
        poses = _single_atom_poses(ligand, blobs)
    else:
        docking = dock(ligand, context.difference, blobs, options.resolution, protein, options.docking)
        poses = docking.poses
    elements = ligand.elements[:heavy]
    expected = expected_q_score(options.resolution)
    best: dict | None = None
    best_pose = None
    fits: dict[int, float] = {}  # id(pose) -> fit score
    for pose in poses:
        blob = next(b for b in blobs if b.rank == pose.blob_rank)
        xyz = pose.coordinates[:heavy]
        fit = ranking.pose_fit(
            context.difference,
            context.density,
            blob,
            xyz,
            elements,
            context.protein_coordinates,
            options.resolution,
            expected,
            context.q_reference,
        )
        blob_cc, explained, q = fit.blob_cc, fit.explained, fit.q_score
        score = fits[id(pose)] = fit.fit_score
        if best is None or score > best["fit_score"]:
            best_pose = pose
            best = {
                "fit_score": round(score, 4),
                "blob": blob.rank,
                "blob_cc": round(blob_cc, 4),
                "explained": round(explained, 3),
                "cc": round(pose.cc, 4),
                "q_score": _rounded(q, 3),
                "expected_q_score": round(expected, 3),
                "fraction_in_density": round(pose.fraction_in_density, 3),
                "strain_kcal_mol": _rounded(pose.strain, 1),
                "clashes": pose.clashes,
                "blob_heavy_atoms": _rounded(blob.estimated_heavy_atoms, 1),
                "pose": {
                    "coordinates": np.round(xyz, 3).tolist(),
                    "elements": elements,
                    "atom_names": list(ligand.atom_names[:heavy]),
                    "molblock": _molblock(ligand, pose.coordinates),
                },
            }
    if best is None:
        return {"status": "no_pose", "note": "docking found no pose in the blob(s)", "prefilter": verdicts}
    best["pose_gap"] = _rounded(pose_gap(best_pose, poses, ligand_symmetry(ligand)), 3) if heavy > 1 else None
    best["docking_choice_fit"] = round(max(fits[id(pose)] for pose in _best_per_blob(poses)), 4)
    best["prefilter"] = verdicts
    best["conformers"] = len(conformers)  # the ensemble docked (conformers_for; ETKDG's duplicates removed)
    # provisional, from this ligand alone (progress lines); the screen calls hits against the whole library (ranking.call_hits)
    best["confidence"] = round(ranking.confidence(best["fit_score"], options.hit_score), 3)
    best["hit"] = best["fit_score"] >= options.hit_score
    best["status"] = "ok"
    return best


def _filtered(reason: str, blob: Blob, verdicts: dict[str, str]) -> dict:
    return {"status": "filtered", "note": reason, "blob_heavy_atoms": _rounded(blob.estimated_heavy_atoms, 1), "prefilter": verdicts}


def conformers_for(rotatable_bonds: int, options: ScreenOptions, macrocycle: bool = False) -> int | None:
    """How many conformers a ligand with this many rotatable bonds (RDKit's count) is docked with (None: build's count).

    A macrocycle's ring does not turn in docking, and rotatable bonds do not count ring bonds, so it gets
    ``options.macrocycle_conformers`` whatever its count (docs/benchmarks.md, "Macrocycles in a screen").
    """
    count = options.max_conformers
    if count is not None and options.many_rotor_conformers is not None and MANY_ROTORS < rotatable_bonds <= FLEXIBLE_ROTORS:
        count = max(count, options.many_rotor_conformers)
    if options.flexible_conformers is not None and rotatable_bonds > FLEXIBLE_ROTORS:
        count = min(count or options.flexible_conformers, options.flexible_conformers)
    if macrocycle and count is not None and options.macrocycle_conformers is not None:
        count = max(count, options.macrocycle_conformers)
    return count


def _flexibility(smiles: str) -> tuple[int, bool]:
    """(RDKit's rotatable bonds, whether it is a macrocycle) of a SMILES; (0, False) when it does not parse."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    mol = Chem.MolFromSmiles(smiles)
    return (0, False) if mol is None else (int(rdMolDescriptors.CalcNumRotatableBonds(mol)), is_macrocycle(mol))


def _best_per_blob(poses: list) -> list:
    chosen: dict[int, object] = {}
    for pose in poses:
        if pose.blob_rank not in chosen or pose.score > chosen[pose.blob_rank].score:
            chosen[pose.blob_rank] = pose
    return list(chosen.values())


def _single_atom_poses(ligand, blobs: list[Blob]) -> list:
    """An ion: the atom at the blob's highest point (nothing to dock)."""
    from ligfit.records import Pose

    poses = []
    for blob in blobs:
        peak = blob.points[int(np.argmax(blob.values))]
        poses.append(Pose(peak[None].copy(), blob.rank, float(blob.peak), 1.0, float(blob.peak), 1.0, 0, 0, 0.0, "blob peak"))
    return poses


def _molblock(ligand, coordinates: np.ndarray) -> str:
    from rdkit import Chem

    return Chem.MolToMolBlock(heavy_atom_mol(ligand, coordinates))


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# Execution ------------------------------------------------------------------------------------

_WORKER_CONTEXT: dict[str, object] = {}  # per worker process: the context file it last read, and that context


def _start_worker(threads: int) -> None:
    """Import what a task needs and share the cores with the other workers (torch would otherwise start a thread per core in each)."""
    import torch

    torch.set_num_threads(threads)


def _screen_in_worker(context_file: str, entry: LibraryEntry) -> dict:
    if _WORKER_CONTEXT.get("file") != context_file:
        with open(context_file, "rb") as handle:
            _WORKER_CONTEXT.update(file=context_file, context=pickle.load(handle))
    return screen_ligand(_WORKER_CONTEXT["context"], entry)  # type: ignore[arg-type]


def run_tasks(context: ScreenContext, entries: list[LibraryEntry], workers: int, scheduler: str | object | None) -> Iterator[dict]:
    """Yield each ligand's record as it finishes: in this process, a local process pool, or a Dask cluster."""
    if not entries:
        return
    if scheduler is not None:
        yield from _run_dask(context, entries, scheduler)
        return
    if workers <= 1 or len(entries) == 1:
        yield from _in_one_thread(context, entries)
        return
    processes = min(workers, len(entries))
    threads = max(1, (os.cpu_count() or 1) // processes)
    # The context goes to the workers as a file each reads once. Passed to the pool's initializer it went down a
    # pipe that blocks until each new process has imported its modules, so the workers started one after another.
    with tempfile.TemporaryDirectory(prefix="ligfit-screen-") as folder:
        context_file = os.path.join(folder, "context.pickle")
        with open(context_file, "wb") as handle:
            pickle.dump(context, handle, protocol=pickle.HIGHEST_PROTOCOL)
        # spawn: workers start clean instead of inheriting the parent's threads and open files.
        pool = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(threads,)
        )
        try:
            futures = [pool.submit(_screen_in_worker, context_file, entry) for entry in largest_first(entries)]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # every result is in (or the screen was stopped): workers exit on their own


def _in_one_thread(context: ScreenContext, entries: list[LibraryEntry]) -> Iterator[dict]:
    """Each ligand screened in a thread of this process that runs torch on one thread, as each pool worker does.

    A ligand's search is many small tensor operations: on torch's two threads one worker took 260.7 s for 100 ligands
    (8A1H_DLZ at 3 Å, full search), on one thread 185.4 s, with the same ranking. The caller's own torch threads are
    left as they were.
    """
    with torch_thread_pool(1) as lone:
        for entry in entries:
            yield lone.submit(screen_ligand, context, entry).result()


def largest_first(entries: list[LibraryEntry]) -> list[LibraryEntry]:
    """The entries in the order to hand them to workers: the largest (slowest to dock) first, so that no
    worker is left with a big ligand while the others stand idle at the end (longest-processing-time order)."""
    return sorted(entries, key=lambda entry: -(entry.heavy_atoms or 0))


def _run_dask(context: ScreenContext, entries: list[LibraryEntry], scheduler: str | object) -> Iterator[dict]:
    client = connect_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    try:
        from distributed import as_completed as dask_completed

        shared = client.scatter(context, broadcast=True, hash=False)  # sent once, deserialised once per worker
        futures = [
            client.submit(screen_ligand, shared, entry, pure=False, key=f"screen-{entry.key}-{context.fingerprint}")
            for entry in largest_first(entries)
        ]
        for future in dask_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        if isinstance(scheduler, str):
            client.close()


# The screen -----------------------------------------------------------------------------------


def run_screen(
    density_map: MapInput,
    model: ModelInput,
    ligands: object,
    options: ScreenOptions,
    *,
    top: int = 20,
    workers: int | None = None,
    scheduler: str | object | None = None,
    out: str | os.PathLike | None = None,
    progress: Progress = no_progress,
    scheduler_timeout: float = 10.0,
) -> ScreenResult:
    """Screen ``ligands`` (a library path, text or list) against the map; write to ``out`` if given.

    ``scheduler_timeout``: seconds to wait for a Dask scheduler named by address before giving up.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    library = ligands if isinstance(ligands, Library) else read_library(ligands)
    for bad in library.skipped:
        log.warning("skipped %s: %s (%s)", bad["source"], bad["text"][:60], bad["reason"])
    progress(library.summary())
    client = connect_scheduler(scheduler, scheduler_timeout) if isinstance(scheduler, str) else scheduler  # before anything is written
    try:
        context = prepare_context(density_map, model, options, library, progress)
        timings["context"] = round(time.perf_counter() - clock, 2)
        progress(
            f"{len(context.blobs)} blob(s): " + ", ".join(f"{b.rank}: ~{b.estimated_heavy_atoms or 0:.0f} atoms" for b in context.blobs[:5])
        )
        folder = Path(out) if out is not None else None
        records: dict[str, dict] = {}
        pending = []
        for entry in library.entries:
            previous = _previous(folder, entry, context.fingerprint) if folder is not None else None
            if previous is not None:
                records[entry.key] = previous
            else:
                pending.append(entry)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _write_library_notes(folder, library)
            _write_blobs(folder / "blobs.csv", context.blobs)
        if len(records):
            progress(f"{len(records)} of {len(library)} ligands already screened; {len(pending)} to go")
        started = time.perf_counter()
        done_now = 0
        for record in run_tasks(context, pending, workers or os.cpu_count() or 1, client):
            records[_key_of(record, library)] = record
            done_now += 1
            if folder is not None:
                io.write_text(folder / "ligands" / f"{_key_of(record, library)}.json", json.dumps(record, indent=1))
            progress(_progress_line(records, len(library), done_now, len(pending), time.perf_counter() - started))
        timings["ligands"] = round(time.perf_counter() - started, 2)
    finally:
        if isinstance(scheduler, str) and client is not None:
            client.close()
    rule = dataclasses.replace(ranking.HIT_RULE, alone_fit=options.hit_score)
    rows = rank_rows([records[entry.key] for entry in library.entries if entry.key in records], rule)
    verdict = ranking.verdict(rows, rule)
    prefilter = prefilter_summary(library, records, context.blobs)
    result = ScreenResult(rows, [b.summary() for b in context.blobs], verdict, library, folder, timings, prefilter)
    for line in result.prefilter_lines():
        progress(line)
    if folder is not None:
        write_outputs(result, folder, model, top, context)
    return result


def _key_of(record: dict, library: Library) -> str:
    return record["inchikey"] or next(e.key for e in library.entries if e.name == record["name"])


def _previous(folder: Path, entry: LibraryEntry, fingerprint: str) -> dict | None:
    path = folder / "ligands" / f"{entry.key}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("fingerprint") != fingerprint or record.get("status") == "error":
        return None  # other inputs or settings, or a crash worth retrying
    return {**record, "name": entry.name, "reused": True}


def _progress_line(records: dict[str, dict], total: int, done_now: int, pending: int, elapsed: float) -> str:
    hits = sum(1 for record in records.values() if record.get("hit"))
    errors = sum(1 for record in records.values() if record.get("status") == "error")
    left = (pending - done_now) * elapsed / max(done_now, 1)
    tail = f", {errors} error(s)" if errors else ""
    return f"{len(records)}/{total} ligands done, {hits} with fit score ≥ {ranking.HIT_SCORE} so far{tail}, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


#: the prefilter's reasons, by the words they start with (ranking.size_prefilter, ranking.shape_prefilter, _screen)
PREFILTER_REASONS = ("too big", "too small", "too long", "too short", "not among")


def prefilter_summary(library: Library, records: dict[str, dict], blobs: tuple[Blob, ...]) -> list[dict]:
    """Per blob and library category: how many ligands were docked into it, and why the others were not."""
    rows = []
    for blob in blobs:
        by_category: dict[str, dict] = {}
        for entry in library.entries:
            record = records.get(entry.key)
            if record is None:
                continue
            reason = (record.get("prefilter") or {}).get(str(blob.rank))
            if reason is None:  # judged before the prefilter: an error, or a record from before it was kept
                reason = "" if record.get("status") in ("ok", "no_pose") else str(record.get("status"))
            row = by_category.setdefault(
                entry.category,
                {"blob": blob.rank, "category": entry.category, "ligands": 0, "docked": 0, **{r: 0 for r in PREFILTER_REASONS}, "other": 0},
            )
            row.setdefault("docked_names", [])
            row["ligands"] += 1
            if not reason:
                row["docked"] += 1
                row["docked_names"].append(entry.code or entry.name)
            else:
                row[next((r for r in PREFILTER_REASONS if reason.startswith(r)), "other")] += 1
        for row in by_category.values():
            row["docked_names"] = " ".join(row["docked_names"])
            row["blob_heavy_atoms"] = _rounded(blob.estimated_heavy_atoms, 1)
            row["blob_extents_A"] = " ".join(f"{v:.1f}" for v in blob.extents)
            rows.append(row)
    return rows


def prefilter_lines(summary: list[dict]) -> list[str]:
    """'blob 1 (~64 heavy atoms, spread 2.9/2.8/2.2 Å): docked 35/89: cofactor 18/18, …; not docked: sugar 9 too small, …'."""
    lines = []
    for blob in dict.fromkeys(row["blob"] for row in summary):
        rows = [row for row in summary if row["blob"] == blob]
        size = f"~{rows[0]['blob_heavy_atoms']:.0f} heavy atoms, " if rows[0]["blob_heavy_atoms"] is not None else ""
        docked = sum(row["docked"] for row in rows)
        total = sum(row["ligands"] for row in rows)
        kept = ", ".join(f"{row['category']} {row['docked']}/{row['ligands']}" for row in rows if row["docked"])
        dropped = ", ".join(
            f"{row['category']} {row[reason]} {reason}" for row in rows for reason in (*PREFILTER_REASONS, "other") if row[reason]
        )
        lines.append(
            f"{ranking.blob_name(blob)} ({size}spread {rows[0]['blob_extents_A'].replace(' ', '/')} Å): docked {docked}/{total}"
            + (f": {kept}" if kept else "")
            + (f"; not docked: {dropped}" if dropped else "")
        )
    return lines


def rank_rows(records: list[dict], rule: ranking.HitRule | None = None) -> list[dict]:
    """Rows with hits called (:func:`ranking.call_hits`), best first (:func:`ranking.in_rank_order`: skeletons by rank
    score, the fit score with strain charged; analogs by fit score), then filtered and failed ones."""
    order = {"ok": 0, "no_pose": 1, "filtered": 2, "no_blob": 3, "error": 4}
    rows = []
    for record in sorted(records, key=lambda r: (order.get(r.get("status"), 5), r["name"])):
        row = {column: record.get(column) for column in RANKING_COLUMNS}
        row["rank_score"] = round(ranking.rank_score(record), 4) if record.get("fit_score") is not None else None
        row.update(hit=bool(record.get("hit")), pose=record.get("pose"), docking_choice_fit=record.get("docking_choice_fit"))
        rows.append(row)
    rows = ranking.in_rank_order(ranking.call_hits(rows, rule))
    for number, row in enumerate(rows, start=1):
        row["rank"] = number
    return rows


def write_outputs(result: ScreenResult, folder: Path, model: ModelInput, top: int, context: ScreenContext | None = None) -> None:
    """ranking.csv, ranking.html, screen.json and a folder per top hit (ligand.sdf, model.cif, result.json)."""
    with io.atomic_path(folder / "ranking.csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RANKING_COLUMNS)
        writer.writeheader()
        for row in result.rows:
            writer.writerow({column: "" if row.get(column) is None else row.get(column) for column in RANKING_COLUMNS})
    summary = {
        "verdict": result.verdict,
        "confidence_meaning": result.confidence_meaning,
        "hits": len(result.hits),
        "ligands": len(result.rows),
        "timings": result.timings,
    }
    document = {**summary, "library": result.library.summary(), "blobs": result.blobs, "prefilter": result.prefilter}
    io.write_text(folder / "screen.json", json.dumps(document, indent=1))
    _write_prefilter(folder / "prefilter.csv", result)
    page = build_ranking_html(
        result.rows,
        result.verdict,
        title=f"ligfit screen — {len(result.rows)} ligands",
        difference=context.difference if context is not None else None,
        protein_xyz=context.protein_coordinates if context is not None else None,
        protein_elements=context.protein_elements if context is not None else None,
        pictured=min(top, MAX_PICTURED_HITS),
    )
    io.write_text(folder / "ranking.html", page)
    structure = io.read_structure(model) if model is not None else None
    for row in [row for row in result.rows if row.get("pose")][:top]:
        hit_folder = folder / "top" / f"{row['rank']:03d}_{_safe(row['name'])}"
        pose = row["pose"]
        io.write_text(hit_folder / "ligand.sdf", pose["molblock"] + "$$$$\n")
        io.write_text(hit_folder / "result.json", json.dumps({k: v for k, v in row.items() if k != "pose"}, indent=1))
        if structure is not None:
            complex_ = io.add_ligand(structure, pose["elements"], pose["atom_names"], np.array(pose["coordinates"]), residue_name="LIG")
            with io.atomic_path(hit_folder / "model.cif") as temporary:
                io.write_structure(complex_, temporary.with_suffix(".cif"))
                os.replace(temporary.with_suffix(".cif"), temporary)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]


def _write_library_notes(folder: Path, library: Library) -> None:
    lines = ["source,kind,name_or_text,reason"]
    for bad in library.skipped:
        lines.append(_csv_line([bad["source"], "skipped", bad["text"], bad["reason"]]))
    for duplicate in library.duplicates:
        lines.append(_csv_line([duplicate["source"], "duplicate", duplicate["name"], f"same molecule as {duplicate['same_as']}"]))
    io.write_text(folder / "library_notes.csv", "\n".join(lines) + "\n")


def _write_prefilter(path: Path, result: ScreenResult) -> None:
    """One row per blob and library category: ligands, docked, and how many each prefilter reason kept out."""
    if not result.prefilter:
        return
    columns = list(result.prefilter[0])
    lines = [",".join(columns)] + [_csv_line([row.get(column) for column in columns]) for row in result.prefilter]
    io.write_text(path, "\n".join(lines) + "\n")


def _write_blobs(path: Path, blobs: tuple[Blob, ...]) -> None:
    lines = ["blob,estimated_heavy_atoms,volume_A3,peak_sigma,x,y,z"]
    for blob in blobs:
        x, y, z = np.round(blob.centroid, 2).tolist()
        lines.append(_csv_line([blob.rank, _rounded(blob.estimated_heavy_atoms, 1), round(blob.volume, 1), round(blob.peak, 2), x, y, z]))
    io.write_text(path, "\n".join(lines) + "\n")


def _csv_line(values: list) -> str:
    import io as text_io

    buffer = text_io.StringIO()
    csv.writer(buffer).writerow(["" if v is None else v for v in values])
    return buffer.getvalue().rstrip("\r\n")


__all__ = ["QUICK_SCREEN_DOCKING", "SCREEN_DOCKING", "ScreenContext", "ScreenOptions", "ScreenResult", "run_screen", "screen_ligand"]
