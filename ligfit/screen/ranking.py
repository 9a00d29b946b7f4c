"""Scores that compare ligands of different sizes, the size/shape prefilter, and the "none fits" call.

A pose is judged against the whole blob, not only where its atoms sit:

* ``blob_cc``: correlation between the pose's simulated density and the difference map over
  the union of the blob and the pose's footprint. Density the pose leaves unexplained and
  pose atoms outside density both lower it, so a small ligand fitting a corner of a big blob
  and a big ligand spilling out of a small one both lose.
* ``explained``: the fraction of the blob's positive density within reach of a pose atom.
* ``q_ratio``: mean Q-score of the pose's atoms over the Q-score expected at this resolution
  (per atom, so independent of size).

``fit_score`` = ``blob_cc`` · √``explained`` · min(1, ``q_ratio``).

Whether a ligand *explains* the blob is judged against the rest of the library (:func:`call_hits`,
:class:`HitRule`): a ligand is a hit when it fits well and is ahead of every ligand of a different
skeleton docked into the same blob (fit ≥ 0.65, ahead by ≥ 0.03), or when it stands far out from
all of them (ahead by ≥ 0.17, fit ≥ 0.45); and it or an analog must rank first in its blob once each pose's strain is
charged (:func:`rank_score`, what the ranking is ordered by). No absolute fit score separates the true ligand from
size-matched decoys: on simulated PoseBusters pockets at 3–3.5 Å (design split) the true ligands score 0.49–0.88
and the best of 20 decoys within ±25 % of its heavy atoms 0.08–0.88, because a decoy of the right size
and shape fills a blurred blob about as well. The margin over the best distinct rival adds what the
fit score alone lacks (a decoy-only library's best is usually one of a crowd) but does not separate
them either (three splits: 0.02–0.56 for true ligands ranked first, 0.00–0.51 for best decoys). Close analogs (same skeleton: HEM/HEC,
ATP/ANP/AGS) are one answer, not rivals. A ligand with no distinct rival in its blob (a library of
one) is a hit at the absolute :data:`HIT_SCORE`. Design and held-out measurements: docs/benchmarks.md, "None of these explains the density".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from ligfit.dock.place import AMBIGUOUS_POSE_GAP, SMALL_LIGAND_ATOMS, SMALL_LIGAND_MAX_CONFIDENCE
from ligfit.maps import DensityMap, scattering_weights
from ligfit.measures.qscore import ReferenceGaussian, q_scores
from ligfit.records import Blob

#: Tanimoto similarity (Morgan radius 2 on the generic skeleton: every atom carbon, every bond single) at or above
#: which two ligands count as analogs, i.e. one answer (HEM/HEC 1.0, HEM/HEA 0.67, ATP/ANP/AGS 1.0, NDP/NAD 0.83).
ANALOG_SIMILARITY = 0.6
#: analogs of the answer named in the verdict (all of them are in ranking.csv's ``group`` column).
ANALOGS_NAMED = 4
#: fit_score at or above which a ligand is a hit when nothing distinct was docked into its blob to compare it with
#: (a library of one ligand or of analogs only); also the "good fit" of HitRule. Set in the first session
#: between true ligands and decoys of the quick benchmark.
HIT_SCORE = 0.65
#: fit score charged per kcal/mol of a pose's MMFF strain when ligands are ranked (:func:`rank_score`): 10 kcal/mol
#: costs 0.03, the good lead of :class:`HitRule`. docs/benchmarks.md, "Ranked with strain charged".
STRAIN_CHARGE = 0.003
#: strain (kcal/mol) charged to a pose whose strain is unknown (no MMFF parameters: hemes, iron–sulfur clusters), so that
#: it neither gains nor loses by it: the median of the true ligands' poses on the screening benchmark's thirteen splits
#: (quartiles 3.0–12.1; the decoys' median 13.2).
UNKNOWN_STRAIN = 7.0


@dataclass(frozen=True)
class HitRule:
    """When a ligand explains its blob, judged against the library (constants set on benchmarks/screening.py, see below).

    A ligand with a rival (the best-fitting ligand of a different skeleton in the same blob) is a hit when
    fit ≥ ``good_fit`` and fit − rival ≥ :meth:`lead_needed` (it fits well and is ahead), or fit ≥ ``clear_fit``
    and fit − rival ≥ ``clear_margin`` (it stands far out, e.g. a partly occupied ligand all decoys fail);
    without a rival, when fit ≥ ``alone_fit``. And it or an analog must rank first in its blob by
    :func:`rank_score` (the fit with strain charged): a decoy bent to fill a blob is not the answer
    (:func:`call_hits`).

    How the numbers were set (docs/benchmarks.md, "None of these explains the density"; true ligand + 20 size-matched decoys, 12 PoseBusters
    pockets at 3.0 and 3.5 Å per split; a case counts when the true ligand is a hit, and when the decoys
    alone get no hit). A first rule, fit ≥ 0.48 and ≥ 0.06 ahead, chosen on the design split (seed 1:
    true a hit 18/24 as before, none-fits 14 → 19/24), lost 8 true hits on the held-out split (seed 2:
    20 → 12/24). This two-clause rule was then chosen on both splits as the one with most none-fits that
    loses no true hit on either (a grid over good_fit 0.55–0.70, good_margin 0–0.04, clear_fit 0.40–0.50,
    clear_margin 0.12–0.20 or none): seed 1 18 → 19 hits, 14 → 19 none-fits; seed 2 20 → 20, 11 → 13. Measured
    once, untouched, on a third split (seed 3): 14 → 14 hits, 18 → 20 none-fits (of 24). ``clear_margin`` 0.17: above
    every decoy-only lead on seeds 1–2 except 6XAF's, whose decoys hold a GDP-like analog of the true ligand (0.48, 0.26).
    ``good_margin`` was 0.02, the smallest lead of a true ligand ranked first on seeds 1–2 (8DSC at 3.5 Å: 0.021); 0.03
    since the twenty-third session (docs/benchmarks.md, "A good lead of 0.03"): on seven splits (seeds 1, 2, 6–10)
    true hits 120 → 115 and none-fits 130 → 142 of 168, and the best hits called at confidence 0.5–0.6 right 10/30 →
    12/22; judged once on two new splits with a bar set before (none-fits up, hits + none-fits not down): seeds 11 + 12
    hits 38 → 37, none-fits 34 → 39 of 48. The lead grows with the rivals since the thirty-third session
    (``lead_needed``; docs/benchmarks.md, "A lead that grows with the library"): chosen on splits 25 + 26 screened at
    the issue's library size (true ligand + 99 decoys): true hits 17 → 13, none-fits 22 → 28 of 32; tested on two fresh
    splits: 19 → 15 and 21 → 29 of 32; as landed (rivals of its size), on a third: 11 → 9 and 13 → 15 of 16, and a
    fourth: 11 → 8 and 11 → 15 of 16. Libraries of up to 20 rivals, on which everything above was set, are judged as
    before.
    """

    good_fit: float = HIT_SCORE
    good_margin: float = 0.03
    clear_fit: float = 0.45
    clear_margin: float = 0.17
    alone_fit: float = HIT_SCORE
    analog: float = ANALOG_SIMILARITY
    # The good lead grows with the number of rivals (ligands of other skeletons docked into the blob, of about its size):
    # ``good_margin`` up to ``few_rivals``, ``crowded_margin`` from ``many_rivals`` on, log-linear between. Among 99 size-matched
    # decoys one leads the rest by 0.03–0.07 about as often as the true ligand does (docs/benchmarks.md,
    # "A lead that grows with the library").
    crowded_margin: float = 0.07
    few_rivals: int = 20
    many_rivals: int = 99
    # Rivals counted for the lead: those within this fraction of the ligand's heavy atoms (a ligand of a very different
    # size does not compete for the same density: in the real 6W6E AGS box, 61 of the shipped library's skeletons were
    # docked, 18 of them within ±50 % of the nucleotides' 31 atoms).
    crowd_size: float = 0.5

    def lead_needed(self, rivals: int = 0) -> float:
        """The good lead a ligand with this many rivals in its blob needs."""
        if rivals <= self.few_rivals:
            return self.good_margin
        if rivals >= self.many_rivals:
            return self.crowded_margin
        share = math.log(rivals / self.few_rivals) / math.log(self.many_rivals / self.few_rivals)
        return self.good_margin + share * (self.crowded_margin - self.good_margin)

    def is_hit(self, fit: float, margin: float | None, rivals: int = 0) -> bool:
        if margin is None:
            return fit >= self.alone_fit
        good = fit >= self.good_fit and margin >= self.lead_needed(rivals)
        return good or (fit >= self.clear_fit and margin >= self.clear_margin)

    def confidence(self, fit: float, margin: float | None, rivals: int = 0) -> float:
        """0–1, 0.5 on the rule's boundary: logistic in the fit score (width CONFIDENCE_WIDTH) and margin (MARGIN_WIDTH)."""
        if margin is None:
            return confidence(fit, self.alone_fit)

        def ahead(limit: float) -> float:
            return 1.0 / (1.0 + math.exp(-(margin - limit) / MARGIN_WIDTH))

        good = min(confidence(fit, self.good_fit), ahead(self.lead_needed(rivals)))
        clear = min(confidence(fit, self.clear_fit), ahead(self.clear_margin))
        return max(good, clear)

    def describe(self, rivals: int | None = None) -> str:
        """The rule in words; with ``rivals``, the lead needed among that many other skeletons of about the ligand's size."""
        if rivals is None:
            lead = f"≥ {self.good_margin} ahead of every other skeleton ({self.crowded_margin} among {self.many_rivals} or more)"
        else:
            lead = f"≥ {self.lead_needed(rivals):.2f} ahead of every other skeleton ({rivals} of about its size docked there)"
        return (
            f"a hit needs fit ≥ {self.good_fit} and {lead}, "
            f"or fit ≥ {self.clear_fit} and ≥ {self.clear_margin} ahead, and rank first with strain charged "
            f"({STRAIN_CHARGE} per kcal/mol)"
        )


HIT_RULE = HitRule()

#: width of the logistic that turns fit_score into a 0–1 confidence around HIT_SCORE.
CONFIDENCE_WIDTH = 0.06
#: width of the logistic that turns the margin into a 0–1 confidence around HitRule's margins.
MARGIN_WIDTH = 0.03
#: blob-to-ligand heavy-atom ratios a candidate must fall within to be docked at all. A weak ligand
#: (partial occupancy, high B) leaves a blob of a third to a half of its atoms: true ligands held out of
#: the design were turned away at 0.36–0.43 with 0.45 as the floor (docs/benchmarks.md, "Screening a library").
SIZE_RATIO_RANGE = (0.33, 2.4)

_BLUR_FACTORS = (1.0, 1.35, 1.8)


def size_prefilter(ligand_heavy_atoms: int, blob: Blob) -> str:
    """Why this blob cannot hold a ligand of this many heavy atoms ('' when it might)."""
    estimated = blob.estimated_heavy_atoms
    if estimated is None or estimated <= 0:
        return ""
    ratio = estimated / max(ligand_heavy_atoms, 1)
    low, high = SIZE_RATIO_RANGE
    if ratio < low:
        return f"too big for the blob: {ligand_heavy_atoms} heavy atoms, the blob holds about {estimated:.0f}"
    if ratio > high:
        return f"too small for the blob: {ligand_heavy_atoms} heavy atoms, the blob holds about {estimated:.0f}"
    return ""


def shape_prefilter(ligand_extents: np.ndarray, blob: Blob) -> str:
    """Why the ligand's shape cannot fit the blob ('' when it might).

    ``ligand_extents``: (n_conformers, 3) root-mean-square spreads along principal axes, longest
    first. A ligand whose most compact conformer is still far longer than the blob, or whose
    most extended conformer is far shorter, cannot explain it.
    """
    longest_blob = float(blob.extents[0])
    shortest_ligand = float(ligand_extents[:, 0].min())
    longest_ligand = float(ligand_extents[:, 0].max())
    if shortest_ligand > 1.8 * longest_blob + 1.0:
        return f"too long for the blob: spread {shortest_ligand:.1f} Å along its axis, the blob {longest_blob:.1f} Å"
    if longest_ligand < 0.4 * longest_blob - 1.0:
        return f"too short for the blob: spread {longest_ligand:.1f} Å along its axis, the blob {longest_blob:.1f} Å"
    return ""


def blob_match(ligand_heavy_atoms: int, ligand_extents: np.ndarray, blob: Blob) -> float:
    """0–1: how well the blob's size and shape suit the ligand (orders the blobs a ligand is docked into)."""
    spread = np.median(ligand_extents, axis=0)
    shape = float(np.exp(-np.sum(np.log((blob.extents + 0.5) / (spread + 0.5)) ** 2) / (2 * 0.4**2)))
    if blob.estimated_heavy_atoms is None or blob.estimated_heavy_atoms <= 0:
        return shape
    size = float(np.exp(-(np.log(blob.estimated_heavy_atoms / max(ligand_heavy_atoms, 1)) ** 2) / (2 * 0.6**2)))
    return size * (0.5 + 0.5 * shape)


def blob_fit(
    difference: DensityMap, blob: Blob, heavy_coordinates: np.ndarray, elements: list[str], resolution: float
) -> tuple[float, float]:
    """(blob_cc, explained) of a pose against a blob of the difference map (σ units).

    ``blob_cc`` correlates the pose's simulated density (one Gaussian per heavy atom weighted by its electron
    scattering, :func:`ligfit.maps.scattering_weights`; σ = 0.225·resolution times the best of a few blur factors)
    with the map over the blob's voxels plus the voxels within max(1.5 Å, resolution/2) of a pose atom.
    ``explained`` is the share of the blob's positive density within that radius of a pose atom.
    """
    radius = max(1.5, resolution / 2)
    blob_index = np.rint(difference.to_index(blob.points)).astype(int)
    lower = np.minimum(blob_index.min(axis=0), np.floor(difference.to_index(heavy_coordinates.min(axis=0) - radius)).astype(int)) - 1
    upper = np.maximum(blob_index.max(axis=0), np.ceil(difference.to_index(heavy_coordinates.max(axis=0) + radius)).astype(int)) + 2
    shape = np.array(difference.shape)
    lower, upper = np.clip(lower, 0, shape - 1), np.clip(upper, 1, shape)
    region = tuple(slice(a, b) for a, b in zip(lower, upper))
    axes = [difference.origin[a] + np.arange(lower[a], upper[a]) * difference.voxel_size[a] for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    observed = difference.values[region].reshape(-1).astype(float)
    distance_sq = ((points[:, None, :] - heavy_coordinates[None]) ** 2).sum(-1)
    near_pose = distance_sq.min(axis=1) <= radius**2
    in_blob = np.zeros(upper - lower, dtype=bool)
    inside = np.all((blob_index >= lower) & (blob_index < upper), axis=1)
    in_blob[tuple((blob_index[inside] - lower).T)] = True
    in_blob = in_blob.reshape(-1)
    positive = np.clip(observed, 0, None)
    total = float(positive[in_blob].sum())
    explained = float(positive[in_blob & near_pose].sum() / total) if total > 0 else 0.0
    mask = in_blob | near_pose
    if mask.sum() < 3 or observed[mask].std() == 0:
        return 0.0, explained
    weights = scattering_weights(elements, resolution)
    best = -1.0
    for blur in _BLUR_FACTORS:
        sigma = 0.225 * resolution * blur
        model = (np.exp(-distance_sq[mask] / (2 * sigma**2)) * weights).sum(axis=1)
        if model.std() > 0:
            best = max(best, float(np.corrcoef(model, observed[mask])[0, 1]))
    return best, explained


@dataclass(frozen=True)
class PoseFit:
    """A pose judged against its blob: the fit score and what it is made of."""

    fit_score: float
    blob_cc: float
    explained: float
    q_score: float | None


def pose_fit(
    difference: DensityMap,
    density: DensityMap,
    blob: Blob,
    heavy_coordinates: np.ndarray,
    elements: list[str],
    protein_coordinates: np.ndarray,
    resolution: float,
    expected_q: float,
    q_reference: ReferenceGaussian | None = None,
) -> PoseFit:
    """:func:`blob_fit` against the difference map, the mean Q-score in ``density`` (the protein's atoms as neighbours),
    and :func:`fit_score` of the two."""
    blob_cc, explained = blob_fit(difference, blob, heavy_coordinates, elements, resolution)
    atoms = np.concatenate([heavy_coordinates, protein_coordinates])
    q_values = q_scores(density, atoms, np.arange(len(heavy_coordinates)), reference=q_reference)
    q = None if np.all(np.isnan(q_values)) else float(np.nanmean(q_values))
    return PoseFit(fit_score(blob_cc, explained, q, expected_q), blob_cc, explained, q)


def fit_score(blob_cc: float, explained: float, q_score: float | None, expected_q: float) -> float:
    """The size-neutral score ligands are ranked by (0–1, higher is better)."""
    q_ratio = 1.0 if q_score is None or expected_q <= 0 else min(1.0, max(q_score, 0.0) / expected_q)
    return max(blob_cc, 0.0) * math.sqrt(max(explained, 0.0)) * q_ratio


#: How often the screen's best hit was the true ligand, by its confidence, on the screening benchmark, with atoms weighed
#: by electron scattering (docs/benchmarks.md, "Fits weighed by electron scattering"): splits 21–24 (12 simulated
#: PoseBusters pockets at 3.0/3.5 Å, the true ligand + 20 size-matched decoys) and 25–37 (8 pockets, + 99 decoys), each
#: library also screened as the decoys alone; 21–36 judged again from their dumped poses with this fit, 37 screened
#: with this code. (lowest confidence of the bin, best hits right, best hits called.) Update it when the fit score or
#: the hit rule changes.
SCREEN_CONFIDENCE_RECORD: tuple[tuple[float, int, int], ...] = ((0.9, 69, 69), (0.8, 36, 36), (0.7, 24, 35), (0.6, 22, 39), (0.5, 13, 34))


def rank_score(row: dict) -> float:
    """What a screen ranks ligands by: the fit score less STRAIN_CHARGE per kcal/mol of the pose's MMFF strain
    (UNKNOWN_STRAIN when it is unknown; −inf for a row without a fit score).

    A decoy made to fill a blob is often bent to do it, where the ligand that made the density sits relaxed. Chosen on
    five splits of the screening benchmark (seeds 6–10: true ligand first 91 → 97 of 120) and judged once on eight
    others (seeds 1–4, 11–14, 192 cases): first 167 → 168, decoy-only "none fits" 158 → 162 (a hit must rank first in
    its blob, :func:`call_hits`), true hits 145 → 145. docs/benchmarks.md, "Ranked with strain charged".
    """
    fit = row.get("fit_score")
    if fit is None:
        return -math.inf
    strain = row.get("strain_kcal_mol")
    return float(fit) - STRAIN_CHARGE * max(0.0, UNKNOWN_STRAIN if strain is None else float(strain))


def in_rank_order(rows: list[dict]) -> list[dict]:
    """Rows called by :func:`call_hits`, best first: skeletons by :func:`rank_score` (each analog group by its best
    member's, per blob), analogs within a group by fit score; rows without a fit score after, as they came.

    Strain is charged between skeletons, where it was measured to help, not within one: analogs differ by an atom or a
    bond, and their strains by as much as MMFF's noise (ANP 7.9, AGS 19.1 kcal/mol in the same 6W6E blob).
    """
    scored = [row for row in rows if row.get("fit_score") is not None and row.get("group") is not None]
    best: dict[tuple, float] = {}
    for row in scored:
        key = (row.get("blob"), row["group"])
        best[key] = max(best.get(key, -math.inf), rank_score(row))
    ordered = sorted(
        scored,
        key=lambda row: (-best[(row.get("blob"), row["group"])], row.get("blob") or 0, row["group"], -float(row["fit_score"]), row["name"]),
    )
    chosen = {id(row) for row in scored}
    return ordered + [row for row in rows if id(row) not in chosen]


def confidence_meaning(confidence_value: float | None) -> str | None:
    """One sentence on how often best hits of this confidence named the true ligand on the benchmark (None below 0.5)."""
    if confidence_value is None:
        return None
    for lowest, right, called in SCREEN_CONFIDENCE_RECORD:
        if confidence_value >= lowest:
            return (
                f"on ligfit's screening benchmark (simulated 3.0–3.5 Å pockets, the true ligand among 20 or 99 size-matched decoys, "
                f"or the decoys alone) {right} of {called} best hits called at confidence {lowest:.1f}–{lowest + 0.1:.1f} "
                "were the true ligand"
            )
    return None


def confidence(score: float, hit_score: float = HIT_SCORE) -> float:
    """0–1: how sure the ligand explains the blob (0.5 at the hit threshold)."""
    return 1.0 / (1.0 + math.exp(-(score - hit_score) / CONFIDENCE_WIDTH))


_SKELETON_FINGERPRINT = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


def skeleton_fingerprint(smiles: str):
    """Morgan fingerprint (radius 2) of the molecule's generic skeleton: element and bond order dropped, so that
    analogs differing by a substituted atom or a saturated bond (HEM/HEC, ATP/AGS, GDP/GNP) look alike."""
    mol = Chem.MolFromSmiles(smiles or "")
    if mol is None:
        return None
    try:
        mol = MurckoScaffold.MakeScaffoldGeneric(Chem.RemoveHs(mol))
    except (ValueError, RuntimeError):
        pass
    return _SKELETON_FINGERPRINT.GetFingerprint(mol)


def call_hits(rows: list[dict], rule: HitRule | None = None, hit_score: float | None = None) -> list[dict]:
    """Set each scored row's ``hit``, ``margin``, ``rival``, ``confidence`` and ``group`` from the whole ranking (in place).

    ``margin``: the row's fit score minus the best fit score of a ligand of a different skeleton (Tanimoto of
    :func:`skeleton_fingerprint` below ``rule.analog``) docked into the same blob (``rival``); None without one.
    ``confidence``: :meth:`HitRule.confidence`, below "high" for a ligand under SMALL_LIGAND_ATOMS heavy atoms (:func:`_capped_for_size`).
    ``group``: 1 for the best-fitting ligand and its analogs in its blob, 2 for the next skeleton, … (see :func:`_analog_groups`).
    A hit must also belong to the group of the ligand that :func:`rank_score` ranks first in its blob (``hit`` False
    otherwise, with ``outranked_by`` naming that ligand).
    ``hit_score`` replaces ``rule.alone_fit`` (ScreenOptions.hit_score).
    """
    rule = rule or HIT_RULE
    if hit_score is not None:
        rule = replace(rule, alone_fit=hit_score)
    scored = [row for row in rows if row.get("status") == "ok" and row.get("fit_score") is not None]
    prints = [skeleton_fingerprint(row.get("smiles") or "") for row in scored]
    for i, row in enumerate(scored):
        rivals = [
            other
            for j, other in enumerate(scored)
            if j != i and other.get("blob") == row.get("blob") and not _analogs(prints[i], prints[j], row, other, rule.analog)
        ]
        fit = float(row["fit_score"])
        crowd = _of_its_size(rivals, row.get("heavy_atoms"), rule.crowd_size)
        rival = max(rivals, key=lambda other: other["fit_score"], default=None)
        lead = None if rival is None else round(fit - float(rival["fit_score"]), 4)
        row.update(
            margin=lead,
            rival=None if rival is None else rival["name"],
            rivals=crowd,
            hit=rule.is_hit(fit, lead, crowd),
            confidence=round(_capped_for_size(rule.confidence(fit, lead, crowd), row.get("heavy_atoms")), 3),
        )
    for row, group in zip(scored, _analog_groups(scored, prints, rule.analog)):
        row["group"] = group
    first = {}  # per blob, the row ranked first by rank_score
    for row in scored:
        if row.get("blob") not in first or rank_score(row) > rank_score(first[row.get("blob")]):
            first[row.get("blob")] = row
    for row in scored:
        leader = first[row.get("blob")]
        row["outranked_by"] = None
        if row["hit"] and row["group"] != leader["group"]:
            row.update(hit=False, outranked_by=leader["name"])
    called = {id(row) for row in scored}
    for row in rows:
        if id(row) not in called:
            row["hit"] = False
            row["group"] = None
    return rows


def _of_its_size(rivals: list[dict], heavy_atoms: int | None, window: float) -> int:
    """How many rivals have within ``window`` (a fraction) of ``heavy_atoms`` heavy atoms (all of them when unknown)."""
    if not heavy_atoms:
        return len(rivals)
    return sum(1 for other in rivals if other.get("heavy_atoms") is None or abs(other["heavy_atoms"] - heavy_atoms) <= window * heavy_atoms)


def _capped_for_size(confidence: float, heavy_atoms: int | None) -> float:
    """A ligand of fewer than SMALL_LIGAND_ATOMS heavy atoms is never called with high confidence, as in ``build``.

    Ligands of its size often fill a small blob as well: on the screening benchmark's splits 1, 2, 6 and 7 (96 cases,
    each with and without its true ligand), a best hit of under 15 heavy atoms was the true ligand 11 times in 23 (4 of
    8 at confidence ≥ 0.7), a larger one 56 times in 77 (47 of 54). docs/benchmarks.md, "Fresh held-out splits".
    """
    return min(confidence, SMALL_LIGAND_MAX_CONFIDENCE) if _is_small(heavy_atoms) else confidence


def _is_small(heavy_atoms: int | None) -> bool:
    return heavy_atoms is not None and heavy_atoms < SMALL_LIGAND_ATOMS


def _analog_groups(scored: list[dict], prints: list, analog: float) -> list[int]:
    """Each row's group: down the ranking by fit score, a ligand joins the first group whose best (its leader) is an
    analog docked into the same blob, else starts the next group.

    Analogs are one answer (:class:`HitRule`): in a real 3.7 Å map of ATP-γ-S (6W6E) the deposited pose correlates
    0.917 with the map as AGS and 0.927 as ATP, so the order within a group says nothing the map supports.
    """
    order = sorted(range(len(scored)), key=lambda i: -float(scored[i]["fit_score"]))
    leaders: list[int] = []
    groups = [0] * len(scored)
    for i in order:
        joined = next(
            (
                number
                for number, leader in enumerate(leaders, start=1)
                if scored[leader].get("blob") == scored[i].get("blob")
                and _analogs(prints[i], prints[leader], scored[i], scored[leader], analog)
            ),
            None,
        )
        if joined is None:
            leaders.append(i)
            joined = len(leaders)
        groups[i] = joined
    return groups


def _analogs(first, second, row: dict, other: dict, analog: float) -> bool:
    if first is None or second is None:
        return bool(row.get("smiles")) and row.get("smiles") == other.get("smiles")
    return DataStructs.TanimotoSimilarity(first, second) >= analog


def verdict(rows: list[dict], rule: HitRule | None = None) -> str:
    """One line: which ligand explains the blob, or that none of them does (rows called by :func:`call_hits`)."""
    hits = [row for row in rows if row.get("hit")]
    if not hits:
        scored = [row for row in rows if row.get("fit_score") is not None]
        best = max(scored, key=lambda row: row["fit_score"], default=None)
        tail = ""
        if best is not None and best.get("outranked_by") and best.get("rival"):
            tail = (
                f" (best fit {best['name']}, fit score {best['fit_score']:.2f}, {best['margin']:+.2f} over {best['rival']}, but its pose "
                f"is strained ({best.get('strain_kcal_mol')} kcal/mol) and {best['outranked_by']} ranks first once strain is charged; "
                f"{(rule or HIT_RULE).describe(best.get('rivals'))})"
            )
        elif best is not None and best.get("rival"):
            tail = (
                f" (best {best['name']}, fit score {best['fit_score']:.2f}, {best['margin']:+.2f} over {best['rival']}, a different "
                f"skeleton; {(rule or HIT_RULE).describe(best.get('rivals'))})"
            )
        elif best is not None:
            tail = f" (best {best['name']}, fit score {best['fit_score']:.2f} < {(rule or HIT_RULE).alone_fit})"
        return f"none of these explains the density{tail}"
    top = hits[0]
    lead = f", {top['margin']:+.2f} over {top['rival']}" if top.get("rival") else ""
    alike = [row for row in rows if row is not top and row.get("group") is not None and row.get("group") == top.get("group")]
    analogs = ""
    if alike:
        named = ", ".join(f"{row['name']} {row['fit_score']:.2f}" for row in alike[:ANALOGS_NAMED])
        more = f" and {len(alike) - ANALOGS_NAMED} more" if len(alike) > ANALOGS_NAMED else ""
        analogs = f"; analogs, counted as the same answer: {named}{more}"
    others = [row for row in hits if row.get("group") != top.get("group")]  # hits of another skeleton
    if others:
        analogs += f"; next {others[0]['name']} at {others[0]['fit_score']:.2f}"
    if _is_small(top.get("heavy_atoms")):
        analogs += f"; a small ligand ({top['heavy_atoms']} heavy atoms): others of its size often fill such a blob as well, so weigh the next ones too"
    gap = top.get("pose_gap")
    if gap is not None and gap < 0:  # the pose that fits the blob best is not the one docking scores best
        analogs += f"; its pose is uncertain: docking scores a different pose of it there {-gap:.3f} higher, this one fits the blob better"
    elif gap is not None and gap < AMBIGUOUS_POSE_GAP:  # the identity may stand where the orientation does not (a flipped heme)
        analogs += f"; its pose is ambiguous: a different pose of it there scores only {gap:.3f} lower"
    return f"{top['name']} explains {blob_name(top['blob'])} best (fit score {top['fit_score']:.2f}{lead}){analogs}; {len(hits)} hit(s)"


def blob_name(number: int | str | None) -> str:
    """How a screen's messages name a blob: numbered from 1 by size (blobs.csv); 0 is the density at ``--site``."""
    return "the site's blob" if number is not None and str(number) == "0" else f"blob {number}"
