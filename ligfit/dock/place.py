"""Docking into blobs: the search in stages, the final score, clustering and the support verdict.

Per blob: (1) every conformer from principal-axis and random orientations, optimised with its
torsions against the difference map smoothed by 1 Å; (2) anchor and grow (``grow.py``);
(3) the best distinct candidates of both refined against the map at full resolution, with
rounds of random torsion kicks that keep improvements (basin hopping); (4) the best poses
relaxed with MMFF under positional restraints and scored by their real-space correlation
with the difference map, less clash and strain penalties.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ligfit.dock.grow import grow_poses
from ligfit.dock.options import DockingOptions
from ligfit.dock.search import SHARP, SMOOTH, PoseBatch, Site, TorsionTree, clash_limits, diverse_best, fit_loss, optimise
from ligfit.errors import BadOptionError
from ligfit.io import AtomTable
from ligfit.ligand import Ligand
from ligfit.maps import DensityMap
from ligfit.measures import (
    count_clashes,
    interaction_score,
    ligand_cc,
    ligand_symmetry,
    ligand_types,
    packing,
    polar_contacts,
    relax_pose,
    symmetric_rmsd,
)
from ligfit.measures.pose import TORSION_WINDOW_ABOVE, TORSION_WINDOW_DEGREES
from ligfit.measures.torsions import TorsionPreferences
from ligfit.records import HIGH_CONFIDENCE, MEDIUM_CONFIDENCE, Blob, Pose, SeedPose, principal_spread
from ligfit.runtime import Progress, no_progress, torch_device, torch_thread_pool

log = logging.getLogger(__name__)
First, Second = TypeVar("First"), TypeVar("Second")

#: Pose sources recorded in reports; seed poses are numbered from SEEDED on.
CONFORMER_SEARCH, ANCHOR_AND_GROW, SEEDED = 0, 1, 2
_SOURCE_NAMES = {CONFORMER_SEARCH: "conformer search", ANCHOR_AND_GROW: "anchor and grow"}
#: Å by which a blob must be longer than the ligand for conformer starts at its ends too (:func:`_start_points`).
END_STARTS_MARGIN = 3.0
#: A placement that accounts for less than this fraction of its blob is only a partial answer.
PARTIAL_FRACTION = 0.6
#: Below this confidence ("low") a placement is not reported as found.
MIN_CONFIDENCE = MEDIUM_CONFIDENCE
#: Ligands with fewer heavy atoms than this fit chance density more easily: their confidence is scaled by √(n / this)
#: and stays below "high" (round 4: of the 5 ligands under 15 atoms called high in the realistic and quick placement
#: benchmarks 2 were wrong, 7PJQ flipped 4.2 Å in its blob and 7A1P 3.1 Å off; all 32 larger ones called high in the
#: realistic benchmark, five seeds, were right).
SMALL_LIGAND_ATOMS = 15
SMALL_LIGAND_MAX_CONFIDENCE = round(HIGH_CONFIDENCE - 0.01, 2)
#: A pose a near-tie break chose over one in its blob that scored better (:func:`_with_tie_breaks`) stays below "high"
#: too (realistic maps, seed 13: 7XG5 at 3.5 Å was put 2.44 Å off by packing and called high, 0.76).
TIE_BREAK_CHOICE_MAX_CONFIDENCE = SMALL_LIGAND_MAX_CONFIDENCE
#: A pose scoring this much (final score) above the best supported pose in any other blob is unrivalled.
BLOB_RIVAL_GAP = 0.1
#: Burial (see :func:`burial`) from which a site counts as a pocket (confidence unscaled), and below which it is
#: surface (confidence scaled by SURFACE_FACTOR); linear in between. On the realistic design set (seed 1) the
#: ligands sat at 0.42–0.92, the placements into the surface detergent at 0.24–0.37; hemes in haemoglobin 0.76–0.88.
POCKET_BURIAL, SURFACE_BURIAL, SURFACE_FACTOR = 0.6, 0.2, 0.25
#: A placement making a bound ligand's contacts with the given model (Vina-like interaction per heavy atom,
#: ``Pose.interaction``, at or below BOUND_CONTACTS) has its confidence raised by CONTACTS_LIFT, to at most
#: CONTACTS_MAX_CONFIDENCE (just below "high"): the pocket's chemistry is evidence the density alone does not give.
#: Of the answers turned away at 0.2–0.4 on the realistic maps' held-out seeds 18–61, none of the 90 on maps without
#: the ligand made such contacts (waters, ions, detergent and loops do not), 10 right and 6 wrong poses did
#: (docs/benchmarks.md, Realistic maps, "Round 43"). A de novo build's model is not trusted for it.
BOUND_CONTACTS, CONTACTS_LIFT = -0.2, 1.5
CONTACTS_MAX_CONFIDENCE = SMALL_LIGAND_MAX_CONFIDENCE


@dataclass(frozen=True)
class DockingResult:
    """Poses ranked best first; ``placements`` are the supported ones, one per blob, best first."""

    poses: list[Pose]
    placements: list[Pose]
    reason: str
    options: DockingOptions = field(default_factory=DockingOptions)
    explained: tuple[float, ...] = ()  # per placement: the fraction of its blob the ligand accounts for (0–1)

    @property
    def supported(self) -> bool:
        return bool(self.placements)

    @property
    def partial(self) -> bool:
        """Whether the best placement accounts for only part of its blob (a smaller ligand than the density holds)."""
        return bool(self.explained) and self.explained[0] < PARTIAL_FRACTION

    @property
    def best(self) -> Pose | None:
        return self.placements[0] if self.placements else None

    @property
    def confidence(self) -> float:
        return self.placements[0].confidence if self.placements else 0.0


def dock(
    ligand: Ligand,
    difference: DensityMap,
    blobs: list[Blob],
    resolution: float,
    protein: AtomTable | None = None,
    options: DockingOptions | None = None,
    progress: Progress = no_progress,
    copies: int = 1,
    seeds: list[SeedPose] | None = None,
    keep: Callable[[Pose], bool] | None = None,
    surroundings: AtomTable | None = None,
) -> DockingResult:
    """Dock ``ligand`` into each blob of the ``difference`` map (σ units) and rank the poses.

    ``protein``: the protein heavy atoms, or None.
    ``copies``: how many supported placements (in different blobs) to return at most.
    ``seeds``: extra starting poses; those inside a blob's box compete with the searches
    there (they are refined and scored like any other candidate, never simply accepted).
    ``keep``: a last say on each pose before ranking (e.g. whether the density is the ligand's rather than
    a traced fragment's, ``ligfit.pipeline``); poses it rejects neither rank nor rival.
    ``surroundings``: the atoms a site's burial is measured against, when not ``protein`` (a de novo
    build docks against a model without its uncertain fragments, but they still wall in a pocket).
    """
    options = options or DockingOptions()
    if not blobs:
        return DockingResult([], [], "no unexplained density above the threshold", options)
    device = torch_device(options.device)
    if device.type == "cuda":
        log.info("docking search on the GPU (%s); --device cpu keeps it on the CPU", torch.cuda.get_device_name(device))
    tree = TorsionTree.from_ligand(ligand)
    matches = ligand_symmetry(ligand)
    try:
        poses = [
            pose
            for blob_poses in _each_blob(
                lambda blob: _dock_blob(ligand, tree, matches, difference, blob, resolution, protein, options, seeds or [], device),
                blobs,
                progress,
                parallel=device.type == "cpu",
            )
            for pose in blob_poses
        ]
    except torch.cuda.OutOfMemoryError:
        raise BadOptionError("the GPU ran out of memory in the docking search; rerun with --device cpu (or free the GPU)") from None
    if keep is not None:
        poses = [pose for pose in poses if keep(pose)]
    ranked = _cluster(sorted(poses, key=lambda p: -p.score), matches, options.cluster_rmsd)
    per_blob_best = {}
    for pose in ranked:
        per_blob_best.setdefault(pose.blob_rank, pose)
    reported = ranked[: options.final_poses]
    reported += [pose for pose in per_blob_best.values() if not any(pose is kept for kept in reported)]
    walls = protein if surroundings is None else surroundings
    site_scores = {id(pose): site_score(pose, ligand.heavy_atom_count, walls) for pose in reported}
    reported.sort(key=lambda pose: -site_scores[id(pose)])
    side_by_side = surroundings is not None  # a de novo build's carved and freed blobs (see _with_site_evidence)
    judged = _judge(reported, matches, options, copies)
    covered = _with_blob_coverage(judged, blobs, ligand.heavy_atom_count, resolution, in_the_blob_it_lies_in=side_by_side)
    evidenced = _with_site_evidence(
        covered, ligand.heavy_atom_count, walls, options, same_site_is_no_rival=side_by_side, contacts_are_evidence=not side_by_side
    )
    return _with_usual_torsions(evidenced, ligand, difference, blobs, resolution, protein, options)


def pocket_factor(points: np.ndarray, protein: AtomTable | None) -> float:
    """How much a site at ``points`` looks like a pocket: 1 buried, SURFACE_FACTOR on the surface (see :func:`burial`)."""
    return _pocket_from_burial(burial(points, protein))


def _pocket_from_burial(buried: float) -> float:
    return float(np.clip((buried - SURFACE_BURIAL) / (POCKET_BURIAL - SURFACE_BURIAL), SURFACE_FACTOR, 1.0))


def site_score(pose: Pose, heavy_atoms: int, protein: AtomTable | None) -> float:
    """The pose's score less up to BLOB_RIVAL_GAP for a surface site: the order in which sites are chosen and rivalled.

    Detergent, lipid and waters on the surface take ligand-shaped poses nearly as well as the
    ligand's own pocket; a pocket pose scoring within one rival gap of a surface pose wins.
    """
    return _site_score(pose.score, pocket_factor(pose.coordinates[:heavy_atoms], protein))


def _site_score(score: float, pocket: float) -> float:
    return score - BLOB_RIVAL_GAP * (1.0 - pocket) / (1.0 - SURFACE_FACTOR)


def blob_fraction_explained(pose_xyz: np.ndarray, blob: Blob, heavy_atoms: int, resolution: float) -> float:
    """The fraction (0–1) of ``blob`` that a pose's heavy atoms ``pose_xyz`` account for.

    The smaller of (a) the share of the blob's positive difference density within
    max(1.5 Å, resolution/2) of a ligand atom and (b) the ligand's heavy atoms over the blob's
    estimated heavy atoms: a ligand much smaller than its blob explains only part of it.
    """
    distance, _ = cKDTree(pose_xyz).query(blob.points)
    weights = np.clip(blob.values, 0, None)
    fraction = float(weights[distance < max(1.5, resolution / 2)].sum() / max(weights.sum(), 1e-12))
    if blob.estimated_heavy_atoms:
        fraction = min(fraction, heavy_atoms / blob.estimated_heavy_atoms)
    return float(np.clip(fraction, 0.0, 1.0))


def _with_blob_coverage(
    result: DockingResult, blobs: list[Blob], heavy_atoms: int, resolution: float, in_the_blob_it_lies_in: bool = False
) -> DockingResult:
    """Scale each placement's confidence by how much of its blob it explains; say so when that is only part.

    ``in_the_blob_it_lies_in``: a placement docked from a neighbouring blob's box that explains none of that blob is
    judged in the blob it explains most, and named by it (a de novo build's blobs lie side by side: the Tyk2 example's
    right pose, found from a neighbour, was otherwise turned away; docs/benchmarks.md, "Round 37").
    """
    if not result.placements:
        return result
    by_rank = {blob.rank: blob for blob in blobs}
    explained, placements = [], []
    for pose in result.placements:
        blob = by_rank.get(pose.blob_rank)
        fraction = 1.0 if blob is None else blob_fraction_explained(pose.coordinates[:heavy_atoms], blob, heavy_atoms, resolution)
        if fraction == 0.0 and in_the_blob_it_lies_in:
            fractions = [(blob_fraction_explained(pose.coordinates[:heavy_atoms], b, heavy_atoms, resolution), b.rank) for b in blobs]
            best, rank = max(fractions, default=(0.0, pose.blob_rank))
            if best > 0.0:
                fraction, pose = best, replace(pose, blob_rank=rank)
        explained.append(round(fraction, 3))
        placements.append(replace(pose, confidence=round(pose.confidence * min(1.0, fraction / PARTIAL_FRACTION), 3)))
    reason = result.reason
    if explained[0] < PARTIAL_FRACTION:
        blob = by_rank.get(placements[0].blob_rank)
        size = (
            ""
            if blob is None or not blob.estimated_heavy_atoms
            else f" ({heavy_atoms} heavy atoms; the blob holds about {blob.estimated_heavy_atoms:.0f})"
        )
        reason = reason.replace(
            "supported by the density",
            f"partial: the ligand explains only {explained[0]:.0%} of its blob{size}; the density holds more than this "
            "ligand (a larger compound, a different salt or fragment, or a neighbouring molecule?)",
            1,
        )
    return replace(result, placements=placements, reason=reason, explained=tuple(explained))


def _dock_blob(
    ligand: Ligand,
    tree: TorsionTree,
    matches: np.ndarray,
    difference: DensityMap,
    blob: Blob,
    resolution: float,
    protein,
    options: DockingOptions,
    seeds: list[SeedPose],
    device: torch.device,
) -> list[Pose]:
    rng = np.random.default_rng(options.seed)
    heavy = ligand.heavy_atom_count
    conformers = ligand.conformer_coordinates()
    site = _site(ligand, difference, blob, protein, device)
    limits = clash_limits(ligand.elements[:heavy], options, device)

    # (1) Conformer search on the smoothed map.
    conformer_index, rotations, positions = _conformer_starts(ligand, blob, options, rng)
    batch = PoseBatch(conformers[conformer_index], rotations, positions, heavy, np.full(len(conformer_index), CONFORMER_SEARCH), device)
    batch.enable_torsions(len(tree.axes))
    survivors = options.survivors_per_candidate * max(1, options.refine_poses // 2) if options.survivors_per_candidate else None

    def conformer_search() -> np.ndarray:
        return optimise(batch, site, tree, limits, SMOOTH, options.smooth_steps, options, survivors=survivors)

    # (2) Anchor and grow on the sharp map, beside (1) when torch may use more than one thread (neither reads the other).
    loss, (grown, grown_loss) = _side_by_side(
        conformer_search, lambda: grow_poses(ligand, site, blob.points, options, rng), together=device.type == "cpu"
    )
    pool = [batch.current(tree)]
    pool_loss = [loss]
    pool_source = [batch.source]

    if len(grown):
        pool.append(grown)
        pool_loss.append(grown_loss)
        pool_source.append(np.full(len(grown), ANCHOR_AND_GROW))

    # (3) Refine the best distinct candidates of each source at full resolution.
    candidates, sources = [], []
    for xyz, source_loss, source in zip(pool, pool_loss, pool_source):
        keep = diverse_best(xyz[:, :heavy], source_loss, options.refine_poses // len(pool), min_rmsd=1.0)
        candidates.append(xyz[keep])
        sources.append(source[keep])
    coordinates, loss, source = _refine(np.concatenate(candidates), np.concatenate(sources), site, tree, limits, heavy, options, rng)

    # (4) Relax and score the best distinct poses.
    keep = diverse_best(coordinates[:, :heavy], loss, options.scored_poses, min_rmsd=0.5)
    poses = _final_poses(
        ligand, coordinates[keep], [_source_name(int(source[i]), seeds) for i in keep], site, blob, resolution, protein, options
    )

    # Seed poses whose centre lies in this blob's box: refined in a batch of their own, with their own budget and
    # random stream, so that the density search above is the same with or without them; they join only the final ranking.
    inside = [i for i, seed in enumerate(seeds) if site.density.contains(seed.coordinates[:heavy].mean(0)[None])[0]]
    if inside:
        seeded = np.array([seeds[i].coordinates for i in inside])
        with torch.no_grad():
            seeded_loss = fit_loss(site.tensor(seeded[:, :heavy]), site, limits, SHARP, options).cpu().numpy()
        keep = diverse_best(seeded[:, :heavy], seeded_loss.astype(float), max(1, options.refine_poses // 4), min_rmsd=1.0)
        seed_rng = np.random.default_rng([options.seed, 1])
        coordinates, loss, source = _refine(seeded[keep], SEEDED + np.array(inside)[keep], site, tree, limits, heavy, options, seed_rng)
        keep = diverse_best(coordinates[:, :heavy], loss, max(1, options.scored_poses // 4), min_rmsd=0.5)
        poses += _final_poses(
            ligand, coordinates[keep], [_source_name(int(source[i]), seeds) for i in keep], site, blob, resolution, protein, options
        )
    return _with_tie_breaks(poses, options, matches)


def _each_blob(dock_blob: Callable[[Blob], list[Pose]], blobs: list[Blob], progress: Progress, parallel: bool = True) -> list[list[Pose]]:
    """``dock_blob`` of every blob, in blob order; with several torch threads, several blobs at once.

    Blobs go side by side one per torch thread, each on one; the last few (fewer than the threads) share the threads
    among them, so that a lone last blob runs in lanes on all of them. Each blob's search is its own (its own random
    stream; one torch thread gives the same poses as several): the poses are the same either way. A blob's
    refinement and kicks are bound by per-step overhead; another blob's search fills that time better than lanes
    within one blob do (a blob docked alone relaxes its scored poses on all its threads: :func:`_final_poses`).
    Not ``parallel`` (the search on a GPU, which one thread drives): one blob after another.
    """
    threads = torch.get_num_threads() if parallel else 1
    finished = 0

    def count_one() -> None:
        nonlocal finished
        finished += 1
        progress("docking blobs", finished, len(blobs))

    progress("docking blobs", 0, len(blobs))
    if threads < 2 or len(blobs) < 2:
        results = []
        for blob in blobs:
            results.append(dock_blob(blob))
            count_one()
        return results
    last = len(blobs) % threads
    queued, remaining = blobs[: len(blobs) - last], blobs[len(blobs) - last :]
    results = _at_once(dock_blob, queued, threads, 1, count_one)
    if len(remaining) == 1:  # here, on this thread's torch threads: in lanes
        results.append(dock_blob(remaining[0]))
        count_one()
    elif remaining:
        results += _at_once(dock_blob, remaining, len(remaining), threads // len(remaining), count_one)
    return results


def _at_once(
    dock_blob: Callable[[Blob], list[Pose]], blobs: list[Blob], workers: int, threads: int, done: Callable[[], None]
) -> list[list[Pose]]:
    """``dock_blob`` of each blob, ``workers`` at a time, each on ``threads`` torch threads; in blob order."""
    with torch_thread_pool(workers, threads) as pool:
        running = [pool.submit(dock_blob, blob) for blob in blobs]
        for future in as_completed(running):
            future.result()  # a blob's error stops the docking now (the blobs not yet started are cancelled)
            done()
        return [future.result() for future in running]


def _side_by_side(first: Callable[[], First], second: Callable[[], Second], together: bool = True) -> tuple[First, Second]:
    """``first()`` and ``second()``: the second in a thread of its own on one torch thread when torch has several
    (and ``together``: not for the search on a GPU, which one thread drives).

    The conformer search (in lanes on every torch thread) and anchor-and-grow run together: the 40-atom 7BTT blob's
    docking 5.8 → 5.1 s (in-process, ten pairs, median ratio 0.93). Identical poses either way.
    """
    if torch.get_num_threads() < 2 or not together:
        return first(), second()
    with torch_thread_pool(1) as beside:
        running = beside.submit(second)
        return first(), running.result()


def _site(ligand: Ligand, difference: DensityMap, blob: Blob, protein: AtomTable | None, device: torch.device) -> Site:
    """The box the search works in: ``blob`` plus the ligand's largest radius (any conformer) and 3 Å."""
    heavy = ligand.heavy_atom_count
    conformers = ligand.conformer_coordinates()[:, :heavy]
    radius = float(np.max(np.linalg.norm(conformers - conformers.mean(1, keepdims=True), axis=-1)))
    return Site.around(difference, blob.points, blob.values, radius, protein, device)


def score_pose(
    ligand: Ligand,
    coordinates: np.ndarray,
    difference: DensityMap,
    blob: Blob,
    resolution: float,
    protein: AtomTable | None = None,
    options: DockingOptions | None = None,
) -> Pose:
    """A given pose (all atoms, ligand order, Å) relaxed and scored in ``blob`` as :func:`dock` scores its own candidates.

    The same MMFF relaxation, fit, clash, contact and strain terms, in the same box, without the near-tie shifts
    (they compare poses). ``difference``: the map docking reads (σ units, explained blobs removed). E.g. how the
    deposited pose would have scored: above the answer means the search missed it; below, the score preferred another.
    """
    options = options or DockingOptions()
    site = _site(ligand, difference, blob, protein, torch.device("cpu"))  # no search: the score reads the map on the CPU
    return _final_pose(
        ligand, np.asarray(coordinates, dtype=float), "given", site, blob, resolution, protein, options, _pulled_torsions(ligand, options)
    )


def _with_tie_breaks(poses: list[Pose], options: DockingOptions, matches: np.ndarray | None = None) -> list[Pose]:
    """One blob's poses with near-ties broken: each score moves by ``density_tie_break_weight`` × its mean density (σ)
    less that of the best-scoring pose, clipped to ± ``density_tie_break_cap``, plus the same for packing
    (``packing_weight``, ``packing_cap``) and for the Vina-like interaction score, lower being better
    (``interaction_tie_break_weight``, ``interaction_tie_break_cap``); the best-scoring pose keeps its score.
    A pose that thereby overtakes one that scored better, more than ``cluster_rmsd`` away (symmetric heavy-atom RMSD
    under ``matches``, the ligand's symmetry; without them plain all-atom RMSD), is marked ``chosen_by_tie_break``."""
    weights = (options.density_tie_break_weight, options.packing_weight, options.interaction_tie_break_weight)
    if not poses or not any(weights):
        return poses
    best = max(poses, key=lambda pose: pose.score)

    def shift(measure: str, weight: float, cap: float) -> np.ndarray:
        values = np.array([getattr(pose, measure) for pose in poses]) - getattr(best, measure)
        return np.clip(weight * values, -cap, cap)

    shifts = (
        shift("mean_sigma", options.density_tie_break_weight, options.density_tie_break_cap)
        + shift("packing", options.packing_weight, options.packing_cap)
        + shift("interaction", -options.interaction_tie_break_weight, options.interaction_tie_break_cap)  # lower is better
    )
    before = np.array([pose.score for pose in poses])
    ranking = before + shifts

    def apart(first: Pose, second: Pose) -> bool:
        """Another answer, not a near-copy (e.g. a ring turned onto itself)."""
        if matches is None:
            return float(np.sqrt(((first.coordinates - second.coordinates) ** 2).sum(-1).mean())) > options.cluster_rmsd
        return symmetric_rmsd(first.coordinates, second.coordinates, matches) > options.cluster_rmsd

    def overtook(i: int) -> bool:  # distances only for the pairs whose order the shifts swapped
        return any(before[j] > before[i] and ranking[j] < ranking[i] and apart(poses[i], poses[j]) for j in range(len(poses)))

    return [
        replace(pose, score=float(ranking[i]), tie_break_shift=float(shifts[i]), chosen_by_tie_break=overtook(i))
        for i, pose in enumerate(poses)
    ]


def _refine(
    xyz: np.ndarray,
    source: np.ndarray,
    site: Site,
    tree: TorsionTree,
    limits: torch.Tensor,
    heavy: int,
    options: DockingOptions,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimise poses at full resolution, then rounds of kicks; (coordinates, loss, source)."""
    batch = PoseBatch.from_poses(xyz, heavy, source, site.device)
    batch.enable_torsions(len(tree.axes))
    loss = optimise(batch, site, tree, limits, SHARP, options.refine_steps, options)
    coordinates = batch.current(tree)
    for _ in range(options.hops):
        coordinates, loss = _hop(coordinates, loss, batch.source, site, tree, limits, heavy, options, rng)
    return coordinates, loss, batch.source


def _source_name(source: int, seeds: list[SeedPose]) -> str:
    return _SOURCE_NAMES[source] if source < SEEDED else f"seed: {seeds[source - SEEDED].label}"


def _hop(
    coordinates: np.ndarray,
    loss: np.ndarray,
    source: np.ndarray,
    site: Site,
    tree: TorsionTree,
    limits: torch.Tensor,
    heavy: int,
    options: DockingOptions,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Kick each pose (torsions, orientation, position), re-optimise, keep the better of old and new."""
    count = len(coordinates)
    kicked = PoseBatch.from_poses(coordinates, heavy, source, site.device)
    kicked.enable_torsions(len(tree.axes))
    with torch.no_grad():
        kicked.rotation += site.tensor(rng.normal(0, 0.2, (count, 3)))
        kicked.translation += site.tensor(rng.normal(0, 0.4, (count, 3)))
        if len(tree.axes):
            chosen = rng.random((count, len(tree.axes))) < 0.3
            kicked.torsion += site.tensor(chosen * rng.uniform(-np.pi, np.pi, chosen.shape))
    new_loss = optimise(kicked, site, tree, limits, SHARP, options.hop_steps, options)
    better = new_loss < loss
    merged = np.where(better[:, None, None], kicked.current(tree), coordinates)
    return merged, np.minimum(new_loss, loss)


def _conformer_starts(
    ligand: Ligand, blob: Blob, options: DockingOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conformer index, rotation matrix and centre of every start."""
    heavy = ligand.heavy_atom_count
    centres = _start_points(blob, heavy, _half_length(ligand) if options.blob_end_starts else None)
    conformer_index, rotations, positions = [], [], []
    for index, conformer in enumerate(ligand.conformer_coordinates()):
        local = conformer[:heavy] - conformer[:heavy].mean(0)
        _, vectors = np.linalg.eigh(local.T @ local)
        source = vectors[:, ::-1].copy()  # ligand axes as columns, longest first
        source[:, 2] = np.cross(source[:, 0], source[:, 1])
        aligned = []
        for first, second in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            target = blob.principal_axes.T.copy()
            target[:, 0] *= first
            target[:, 1] *= second
            target[:, 2] = np.cross(target[:, 0], target[:, 1])
            aligned.append(target @ source.T)
        random = Rotation.random(options.random_orientations, random_state=int(rng.integers(2**31))).as_matrix()
        for centre in centres:
            for rotation in (*aligned, *random):
                conformer_index.append(index)
                rotations.append(rotation)
                positions.append(centre)
    return np.array(conformer_index), np.array(rotations), np.array(positions)


def _half_length(ligand: Ligand) -> float:
    """Half the ligand's extent along its longest axis (Å), the median over its conformers."""
    halves = []
    for conformer in ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]:
        along = conformer @ principal_spread(conformer)[0][0]
        halves.append(np.ptp(along) / 2)
    return float(np.median(halves))


def _start_points(blob: Blob, heavy_atoms: int, half_length: float | None) -> np.ndarray:
    """The blob centroid, or several density-weighted centres when the blob is much bigger than the ligand.

    Given the ligand's ``half_length`` (Å), a blob longer than the ligand by more than END_STARTS_MARGIN also gets a
    centre at each end, where the ligand lies when the rest of the blob is something else (8ACL in the realistic maps:
    the ligand's centre 6.1 Å from the centroid; docs/benchmarks.md "Round 14").
    """
    estimated = blob.estimated_heavy_atoms or heavy_atoms
    count = int(np.clip(round(estimated / max(heavy_atoms, 1)), 1, 4))
    if count == 1 or len(blob.points) < 4 * count:
        if half_length is None:
            return blob.centroid[None]
        along = (blob.points - blob.centroid) @ blob.principal_axes[0]
        if along.max() - along.min() - 2 * half_length < END_STARTS_MARGIN:
            return blob.centroid[None]
        ends = np.array([along.min() + half_length, along.max() - half_length])
        return np.vstack([blob.centroid, blob.centroid + ends[:, None] * blob.principal_axes[0]])
    centres, _ = kmeans2(blob.points, count, seed=0, minit="++")
    return centres


def _final_poses(
    ligand: Ligand,
    coordinates: np.ndarray,
    sources: list[str],
    site: Site,
    blob: Blob,
    resolution: float,
    protein,
    options: DockingOptions,
) -> list[Pose]:
    """:func:`_final_pose` of each pose (``coordinates``: (n, atoms, 3)), in order, on as many threads as this thread's torch.

    The MMFF relaxation is most of the time and RDKit's minimiser lets go of the GIL (:func:`relax_pose`), so the poses
    of a lone blob are relaxed on both cores; blobs docked side by side get one thread each. Identical poses either way.
    """
    threads = min(torch.get_num_threads(), len(coordinates))
    torsions = _pulled_torsions(ligand, options)

    def one(index: int) -> Pose:
        return _final_pose(ligand, coordinates[index], sources[index], site, blob, resolution, protein, options, torsions)

    if threads < 2:
        return [one(index) for index in range(len(coordinates))]
    with torch_thread_pool(threads) as pool:  # an error or Ctrl-C comes back without relaxing the rest
        return list(pool.map(one, range(len(coordinates))))


def _pulled_torsions(ligand: Ligand, options: DockingOptions) -> TorsionPreferences | None:
    """The torsion preferences every scored pose's relaxation pulls towards (``torsion_pull`` "scored"), or None."""
    return TorsionPreferences.of(ligand.mol) if options.torsion_pull == "scored" and options.torsion_preference_force > 0 else None


#: What a placement's torsion pull measures again (:func:`_with_usual_torsions`), besides its score.
_MEASURES = ("coordinates", "cc", "mean_sigma", "fraction_in_density", "clashes", "polar_contacts", "strain", "packing", "interaction")


def _with_usual_torsions(
    result: DockingResult, ligand: Ligand, difference: DensityMap, blobs: list[Blob], resolution: float, protein, options: DockingOptions
) -> DockingResult:
    """Each placement with its rare torsions pulled into their wells (``torsion_pull`` "placements") where the density
    lets them go: relaxed under ``torsion_pull_restraint``, it is kept where neither its CC nor its score falls by more
    than ``torsion_fit_tolerance`` and no clash is added. Its fit, strain, contacts and score are measured again; the
    choice and confidence stay those it was judged by."""
    if options.torsion_pull != "placements" or options.torsion_preference_force <= 0 or not result.placements:
        return result
    torsions = TorsionPreferences.of(ligand.mol)
    heavy = ligand.heavy_atom_count
    by_rank = {blob.rank: blob for blob in blobs}
    placements = []
    for pose in result.placements:
        blob = by_rank.get(pose.blob_rank)
        if blob is None or not torsions.windows(pose.coordinates[:heavy], TORSION_WINDOW_ABOVE, TORSION_WINDOW_DEGREES):
            placements.append(pose)
            continue
        site = _site(ligand, difference, blob, None, torch.device("cpu"))  # only its density box is read
        pulled, strain = relax_pose(ligand, pose.coordinates, options.torsion_pull_restraint, torsions, options.torsion_preference_force)
        measured = _measured(ligand, pulled, strain, pose.source, site, blob, resolution, protein, options)
        tolerance = options.torsion_fit_tolerance
        if (
            measured.cc >= pose.cc - tolerance
            and measured.score >= pose.score_before_tie_breaks - tolerance
            and measured.clashes <= pose.clashes
        ):
            pose = replace(pose, **{name: getattr(measured, name) for name in _MEASURES}, score=measured.score + pose.tie_break_shift)
        placements.append(pose)
    return replace(result, placements=placements)


def _final_pose(
    ligand: Ligand,
    coordinates: np.ndarray,
    source: str,
    site: Site,
    blob: Blob,
    resolution: float,
    protein,
    options: DockingOptions,
    torsions: TorsionPreferences | None,
) -> Pose:
    relaxed, strain = _relaxed(ligand, coordinates, options, None)
    cc = _fit(ligand, site, relaxed, resolution)
    if torsions is not None and torsions.windows(relaxed[: ligand.heavy_atom_count], TORSION_WINDOW_ABOVE, TORSION_WINDOW_DEGREES):
        pulled, pulled_strain = _relaxed(ligand, relaxed, options, torsions)
        pulled_cc = _fit(ligand, site, pulled, resolution)
        if pulled_cc >= cc - options.torsion_fit_tolerance:  # the density does not hold the rare torsions: pull them
            relaxed, strain, cc = pulled, pulled_strain, pulled_cc
    return _measured(ligand, relaxed, strain, source, site, blob, resolution, protein, options, cc)


def _fit(ligand: Ligand, site: Site, coordinates: np.ndarray, resolution: float) -> float:
    """The ligand-mask CC of a pose (all atoms, ligand order) with the site's map."""
    heavy = ligand.heavy_atom_count
    return ligand_cc(site.density, coordinates[:heavy], ligand.elements[:heavy], resolution)


def _measured(
    ligand: Ligand,
    relaxed: np.ndarray,
    strain: float | None,
    source: str,
    site: Site,
    blob: Blob,
    resolution: float,
    protein,
    options: DockingOptions,
    cc: float | None = None,
) -> Pose:
    """A relaxed pose measured and scored in ``blob``'s box (``cc``: its ligand-mask CC, when known already)."""
    heavy_xyz = relaxed[: ligand.heavy_atom_count]
    if cc is None:
        cc = _fit(ligand, site, relaxed, resolution)
    sigma = site.density.interpolate(heavy_xyz)
    elements = ligand.elements[: ligand.heavy_atom_count]
    clashes = count_clashes(heavy_xyz, elements, protein)
    contacts = polar_contacts(heavy_xyz, elements, protein)
    packed = packing(heavy_xyz, protein)
    interaction = interaction_score(heavy_xyz, ligand_types(ligand.mol), protein)
    penalty = options.clash_penalty * clashes - options.contact_bonus * min(contacts, options.max_contacts)
    if strain is not None:
        penalty += options.strain_weight * max(0.0, strain - strain_allowance(ligand, options))
    return Pose(
        coordinates=relaxed,
        blob_rank=blob.rank,
        score=float(cc - penalty),
        cc=float(cc),
        mean_sigma=float(sigma.mean()),
        fraction_in_density=float(np.mean(sigma >= 1.0)),
        clashes=clashes,
        polar_contacts=contacts,
        strain=strain,
        source=source,
        packing=packed,
        interaction=interaction,
    )


def _relaxed(
    ligand: Ligand, coordinates: np.ndarray, options: DockingOptions, torsions: TorsionPreferences | None
) -> tuple[np.ndarray, float | None]:
    """:func:`relax_pose` as docking relaxes a pose (twice, the second looser, for a very flexible ligand), its rare
    torsions pulled into their wells when ``torsions`` is given."""
    force = options.torsion_preference_force
    relaxed, strain = relax_pose(ligand, coordinates, options.restraint_force, torsions, force)
    if options.flexible_relax_force > 0 and strain is not None and len(ligand.rotatable_bonds) >= options.flexible_rotatable:
        relaxed, strain = relax_pose(ligand, relaxed, options.flexible_relax_force, torsions, force)
    return relaxed, strain


def strain_allowance(ligand: Ligand, options: DockingOptions) -> float:
    """MMFF strain (kcal/mol) that costs nothing: ``strain_allowance``, or for a very flexible ligand (≥
    ``flexible_rotatable`` rotatable bonds) ``flexible_strain_per_rotatable`` per rotatable bond where that is more."""
    rotatable = len(ligand.rotatable_bonds)
    if rotatable < options.flexible_rotatable:
        return options.strain_allowance
    return max(options.strain_allowance, options.flexible_strain_per_rotatable * rotatable)


def _cluster(poses: list[Pose], matches: np.ndarray, threshold: float) -> list[Pose]:
    """The best pose of each cluster (input sorted best first)."""
    kept: list[Pose] = []
    for pose in poses:
        if all(symmetric_rmsd(pose.coordinates, other.coordinates, matches) > threshold for other in kept):
            kept.append(pose)
    return kept


def support_failures(pose: Pose, options: DockingOptions) -> list[str]:
    """Why the density does not support this pose (empty when it does)."""
    failures = []
    if pose.mean_sigma < options.min_mean_sigma:
        failures.append(f"mean density at the atoms {pose.mean_sigma:.2f} σ < {options.min_mean_sigma} σ")
    if pose.fraction_in_density < options.min_fraction_in_density:
        failures.append(f"only {pose.fraction_in_density:.0%} of heavy atoms in density ≥ 1 σ")
    if pose.cc < options.min_cc:
        failures.append(f"correlation with the density {pose.cc:.2f} < {options.min_cc}")
    return failures


#: Å (symmetric heavy-atom RMSD): another pose in the same blob farther than this from a pose is a different answer.
DISTINCT_POSE_RMSD = 2.0
#: A pose whose gap (:func:`pose_gap`) is below this is called ambiguous in messages: the map does not settle how the
#: ligand sits (e.g. a heme flipped about its α–γ axis in EMD-3488 at 3.2 Å: gaps 0.003–0.036).
AMBIGUOUS_POSE_GAP = 0.02


def pose_gap(pose: Pose, poses: list[Pose], matches: np.ndarray) -> float | None:
    """How far ``pose`` scores ahead of the best different pose in its blob among ``poses`` (None without one).

    Small: the density takes the ligand about as well another way (an ambiguous pose). ``matches``: the
    ligand's symmetry (:func:`ligfit.measures.ligand_symmetry`), so that a symmetric copy is not a different pose.
    """
    found = _distinct_rival(pose, poses, matches)
    return None if found is None else found[0]


def _distinct_rival(pose: Pose, poses: list[Pose], matches: np.ndarray) -> tuple[float, Pose] | None:
    """(score gap, the best-scoring pose more than DISTINCT_POSE_RMSD Å from ``pose`` in its blob), or None without one.

    A rival that a near-tie break alone brought close is no rival when the scores before the breaks tell the two apart.
    """
    rivals = [
        p
        for p in poses
        if p.blob_rank == pose.blob_rank and p is not pose and symmetric_rmsd(pose.coordinates, p.coordinates, matches) > DISTINCT_POSE_RMSD
    ]
    if not rivals:
        return None
    rival = max(rivals, key=lambda p: p.score)
    gap = max(pose.score - rival.score, pose.score_before_tie_breaks - max(p.score_before_tie_breaks for p in rivals))
    return gap, rival


def _judge(poses: list[Pose], matches: np.ndarray, options: DockingOptions, copies: int) -> DockingResult:
    """Pick up to ``copies`` supported placements in distinct blobs and give each a confidence.

    Confidence = support × uniqueness: support grows with the correlation (0 at CC 0.3, 1 at
    0.8) and the fraction of atoms in density; uniqueness drops to 0.5 when another pose in
    the same blob, more than 2 Å away, scores within 0.05 of it, both with the near-tie breaks and without them.
    """
    placements: list[Pose] = []
    notes: list[str] = []
    first_failures: list[str] = []
    for pose in poses:
        if len(placements) == copies:
            break
        if any(pose.blob_rank == kept.blob_rank or _overlaps(pose, kept) for kept in placements):
            continue
        failures = support_failures(pose, options)
        if failures:
            first_failures = first_failures or failures
            continue
        support = float(np.clip((pose.cc - 0.3) / 0.5, 0, 1) * pose.fraction_in_density)
        gap, rival = _distinct_rival(pose, poses, matches) or (1.0, None)
        uniqueness = float(np.clip(0.5 + gap / 0.1, 0.5, 1.0))
        if not placements and rival is not None and gap < AMBIGUOUS_POSE_GAP:
            notes.append(
                f"a different pose {symmetric_rmsd(pose.coordinates, rival.coordinates, matches):.1f} Å away in the same blob scores almost as well"
            )
        if not placements and pose.chosen_by_tie_break:
            notes.append(
                "a near-tie break (stronger density at its atoms) chose it over a pose in the same blob that scored a little better"
            )
        placements.append(replace(pose, confidence=round(support * uniqueness, 3)))
    if not placements:
        return DockingResult(poses, [], "no convincing density: " + "; ".join(first_failures), options)
    others = len({p.blob_rank for p in poses if not support_failures(p, options)}) - len(placements)
    if copies == 1 and others > 0:
        notes.append(f"{others} other blob(s) also hold a supported pose (see report; use copies/--copies for several)")
    reason = "; ".join(["supported by the density", *notes])
    return DockingResult(poses, placements, reason, options)


def _overlaps(first: Pose, second: Pose, distance: float = 2.0) -> bool:
    """Whether two poses put atoms within ``distance`` Å of each other."""
    gaps = np.linalg.norm(first.coordinates[:, None] - second.coordinates[None], axis=-1)
    return bool(gaps.min() < distance)


def burial(points: np.ndarray, protein: AtomTable | None, directions: int = 48, reach: float = 12.0) -> float:
    """The fraction of rays from ``points`` that meet a protein atom within ``reach`` Å (1 without a protein).

    Ligands bind in pockets; detergents, lipids and waters lie mostly on the surface.
    """
    if protein is None or len(protein) == 0:
        return 1.0
    rays = np.random.default_rng(0).normal(size=(directions, 3))
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    steps = np.arange(2.0, reach, 1.0)
    samples = points[:, None, None, :] + rays[None, :, None, :] * steps[None, None, :, None]
    distance, _ = cKDTree(protein.coordinates).query(samples.reshape(-1, 3), distance_upper_bound=2.0)
    blocked = (distance < 2.0).reshape(len(points), directions, len(steps)).any(axis=2)
    return float(blocked.mean())


def _with_site_evidence(
    result: DockingResult,
    heavy_atoms: int,
    protein: AtomTable | None,
    options: DockingOptions,
    same_site_is_no_rival: bool = False,
    contacts_are_evidence: bool = True,
) -> DockingResult:
    """Scale each placement's confidence by what the rest of the run says about it, and drop "low" ones.

    Three factors lower it: rivalry (another blob holding a supported pose that scores nearly as well, by
    :func:`site_score`, makes any one choice less certain), ligand size (small ligands fit chance density;
    below SMALL_LIGAND_ATOMS never "high"; nor is a pose a near-tie break chose over a better score), and burial
    (ligands bind in pockets; surface blobs are often detergent, lipid or waters). One raises it: with
    ``contacts_are_evidence`` (the model was given, not traced) a pose making a bound ligand's contacts is raised by
    CONTACTS_LIFT, never to "high".
    A full answer below ``MIN_CONFIDENCE`` is not reported as found; a partial one (the ligand
    explains only part of its blob) is, as "partial", with its low confidence, when it would reach
    ``MIN_CONFIDENCE`` but for the part of the blob it leaves unexplained.
    ``same_site_is_no_rival``: a pose docked from a neighbouring blob into a placement's own site is the
    same answer, not a rival (a de novo build's carved and freed blobs lie side by side; a given model's
    builds keep the earlier rule, not yet measured with this one).
    """
    if not result.placements:
        return result
    placed_blobs = {pose.blob_rank for pose in result.placements}
    rivals = [
        p
        for p in result.poses
        if p.blob_rank not in placed_blobs
        and not support_failures(p, options)
        and not (same_site_is_no_rival and any(_overlaps(p, kept) for kept in result.placements))
    ]
    rival_score, rival = max(((site_score(p, heavy_atoms, protein), p) for p in rivals), key=lambda pair: pair[0], default=(None, None))
    size = min(1.0, float(np.sqrt(heavy_atoms / SMALL_LIGAND_ATOMS)))
    placements, explained, notes = [], [], []
    raised = ""
    for pose, fraction in zip(result.placements, result.explained or (1.0,) * len(result.placements)):
        buried = burial(pose.coordinates[:heavy_atoms], protein)
        pocket = _pocket_from_burial(buried)
        gap = _site_score(pose.score, pocket) - rival_score if rival_score is not None else BLOB_RIVAL_GAP
        rivalry = float(np.clip(0.5 + gap / (2 * BLOB_RIVAL_GAP), 0.5, 1.0))
        confidence = round(pose.confidence * rivalry * size * pocket, 3)
        unlifted = confidence
        if contacts_are_evidence and pose.interaction <= BOUND_CONTACTS:
            confidence = max(confidence, round(min(confidence * CONTACTS_LIFT, CONTACTS_MAX_CONFIDENCE), 3))
        lifted = confidence > unlifted
        if heavy_atoms < SMALL_LIGAND_ATOMS:
            confidence = min(confidence, SMALL_LIGAND_MAX_CONFIDENCE)
        if pose.chosen_by_tie_break:
            confidence = min(confidence, TIE_BREAK_CHOICE_MAX_CONFIDENCE)
        if not placements:
            if rivalry < 1.0:
                notes.append(
                    f"blob {rival.blob_rank + 1} holds a pose scoring only {gap:.2f} lower (surface sites count up to {BLOB_RIVAL_GAP} less)"
                )
            if size < 1.0:
                notes.append(f"a small ligand ({heavy_atoms} heavy atom{'s' if heavy_atoms > 1 else ''}) fits chance density easily")
            if pocket < 1.0:
                notes.append(f"the site is on the surface (burial {buried:.2f}): detergent, lipid or waters there look alike")
            if lifted:
                raised = (
                    f"confidence raised from {unlifted:.2f}: the pose makes a bound ligand's contacts with the model"
                    f" ({pose.interaction:.2f} per heavy atom)"
                )
        coverage = min(1.0, fraction / PARTIAL_FRACTION)  # the factor _with_blob_coverage applied
        if not placements and fraction == 0.0:
            notes.append("the pose lies outside the blob it was docked into (it explains none of it)")
        # a partial answer stays one, with its low confidence, when only the blob it leaves unexplained lowers it; a pose
        # that explains none of its blob is no answer (its coverage, 0, would otherwise let any confidence through)
        partial = 0.0 < fraction < PARTIAL_FRACTION and confidence >= MIN_CONFIDENCE * coverage
        if confidence >= MIN_CONFIDENCE or partial:
            placements.append(replace(pose, confidence=confidence))
            explained.append(fraction)
        elif not placements:
            reason = (
                f"no convincing density: the best pose (blob {pose.blob_rank + 1}, CC {pose.cc:.2f}) has low confidence {confidence:.2f}: "
            )
            said = (notes or ["weak support"]) + ([raised] if raised else [])
            return DockingResult(result.poses, [], reason + "; ".join(said), result.options)
    lowered = f" (confidence lowered: {'; '.join(notes)})" if notes else ""
    reason = f"{result.reason}{lowered}" + (f"; {raised}" if raised else "")
    return replace(result, placements=placements, explained=tuple(explained), reason=reason)
