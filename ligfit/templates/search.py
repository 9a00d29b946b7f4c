"""Finding templates for a ligand in blobs: ligand similarity, pocket (or blob-shape) similarity, then the common substructure.

1. Ligand similarity: Morgan-fingerprint Tanimoto against the whole index (vectorised) picks
   the candidates.
2. Pocket similarity, with a protein model: the candidate's pocket residues are aligned by
   sequence (BLOSUM62, gemmi) to the model's residues around each blob, their Cα atoms
   superposed (Kabsch, with outlier trimming), and the pairs re-made by proximity in the
   superposed frame. A template whose pocket does not superpose is not used. Without a model
   (the map holds only the ligand) the template ligand's principal extents are compared with
   the blob's instead.
3. The maximum common substructure of query and template ligand (RASCAL, see
   :func:`common_substructure`), for the candidates that passed 2.

Templates are ranked by ligand similarity (mean of Tanimoto and common fraction) × pocket
(or shape) similarity.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import gemmi
import numpy as np
from rdkit import Chem
from rdkit.Chem import rdRascalMCES
from rdkit.rdBase import BlockLogs
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ligfit.io import AtomTable
from ligfit.records import Blob
from ligfit.templates.library import Pocket, TemplateLibrary, TemplateRecord, ligand_fingerprint, pocket_around, tanimoto

log = logging.getLogger(__name__)

_BLOSUM62 = gemmi.AlignmentScoring("b")
#: Interchangeable atoms: aromatic C/N/O/S (a pyridine on a phenyl, a thiophene on a furan) and halogens.
_EQUIVALENT_ATOMS = "[c,n,o,s] [F,Cl,Br,I]"


@dataclass(frozen=True)
class TemplateOptions:
    """Template search and transplant settings; the defaults are the ones the benchmark measured."""

    max_templates: int = 3  # templates transplanted per blob
    conformers: int = 4  # query conformers embedded on each template
    max_mappings: int = 2  # distinct placements of the common substructure in the query
    candidates: int = 20  # templates, best by Tanimoto, whose pocket (or shape) is checked
    min_tanimoto: float = 0.3  # below this, common substructures often sit differently in the pocket
    min_common_atoms: int = 6  # heavy atoms in the common substructure
    min_common_fraction: float = 0.5  # ... as a fraction of the query's heavy atoms
    mcs_timeout: int = 1  # s per template (RDKit's RASCAL takes whole seconds)
    mcs_budget: float = 5.0  # s of CPU time for all common-substructure searches of one query
    min_pocket_coverage: float = 0.5  # template pocket residues with a query Cα within pair_distance after superposition
    min_pocket_residues: int = 12  # ... and at least this many of them
    min_pocket_identity: float = 0.25  # same amino acid among the paired residues (homologues; chance superpositions score ~0.05)
    max_pocket_rmsd: float = 1.5  # Å, Cα of the paired residues
    pair_distance: float = 2.0  # Å
    min_shape_match: float = 0.3  # without a model: template ligand vs blob extents (0–1)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LigandMatch:
    """How a template ligand resembles the query: Tanimoto and the common substructure's atom pairs."""

    position: int  # row in the library index
    tanimoto: float
    common_atoms: int
    query_atoms: int
    mappings: tuple[tuple[tuple[int, int], ...], ...]  # per placement: (query heavy-atom index, template atom index)

    @property
    def common_fraction(self) -> float:
        return self.common_atoms / self.query_atoms

    @property
    def similarity(self) -> float:
        """Mean of Tanimoto and the fraction of the query in the common substructure (0–1)."""
        return 0.5 * (self.tanimoto + self.common_fraction)


@dataclass(frozen=True)
class PocketMatch:
    """Superposition of a template pocket onto the model: query = template @ rotation.T + translation (Å)."""

    rotation: np.ndarray
    translation: np.ndarray
    rmsd: float  # Å, paired Cα
    pairs: int
    residues: int  # template pocket residues with a Cα
    identity: float  # fraction of the paired residues that are the same amino acid

    @property
    def coverage(self) -> float:
        return self.pairs / max(self.residues, 1)

    @property
    def similarity(self) -> float:
        """Coverage weighted by sequence identity (0–1)."""
        return self.coverage * (0.5 + 0.5 * self.identity)

    def apply(self, coordinates: np.ndarray) -> np.ndarray:
        return coordinates @ self.rotation.T + self.translation


@dataclass(frozen=True)
class TemplateMatch:
    """A template chosen for one blob, with the evidence for it."""

    record: TemplateRecord
    ligand: LigandMatch
    pocket: PocketMatch | None  # None without a protein model
    shape: float | None  # blob-shape agreement, without a protein model
    blob_rank: int
    score: float

    @property
    def label(self) -> str:
        """One line for reports: which template, and how similar it is."""
        ligand = self.ligand
        text = f"template {self.record.id}: Tanimoto {ligand.tanimoto:.2f}, common substructure {ligand.common_atoms}/{ligand.query_atoms} atoms"
        if self.pocket is not None:
            pocket = self.pocket
            text += f", pocket {pocket.pairs}/{pocket.residues} residues superposed ({pocket.identity:.0%} identical, Cα RMSD {pocket.rmsd:.2f} Å)"
        elif self.shape is not None:
            text += f", blob shape match {self.shape:.2f} (no protein model)"
        return text

    def summary(self) -> dict:
        summary = {
            "template": self.record.id,
            "pdb_id": self.record.pdb_id or None,
            "source": self.record.source,
            "blob": self.blob_rank,
            "score": round(self.score, 3),
            "tanimoto": round(self.ligand.tanimoto, 3),
            "common_atoms": self.ligand.common_atoms,
            "query_atoms": self.ligand.query_atoms,
        }
        if self.pocket is not None:
            summary.update(
                pocket_identity=round(self.pocket.identity, 3),
                pocket_coverage=round(self.pocket.coverage, 3),
                pocket_rmsd_A=round(self.pocket.rmsd, 3),
            )
        if self.shape is not None:
            summary["shape_match"] = round(self.shape, 3)
        return summary


# --------------------------------------------------------------------------- ligand similarity


def candidates_by_fingerprint(library: TemplateLibrary, query: Chem.Mol, options: TemplateOptions) -> list[tuple[int, float]]:
    """(index row, Tanimoto) of the templates most similar to ``query`` by fingerprint, best first."""
    if len(library) == 0:
        return []
    similarity = tanimoto(ligand_fingerprint(query), library.index.fingerprint)
    order = np.argsort(-similarity, kind="stable")[: options.candidates]
    return [(int(p), float(similarity[p])) for p in order if similarity[p] >= options.min_tanimoto]


def common_substructure(
    query: Chem.Mol, template: Chem.Mol, timeout: int, max_mappings: int = 2
) -> tuple[int, tuple[tuple[tuple[int, int], ...], ...]]:
    """Atoms in the maximum common edge subgraph, and up to ``max_mappings`` distinct placements of it in the query.

    RASCAL (Raymond, Gardiner & Willett 2002, Comput. J. 45:631) as in RDKit: bond orders must
    agree, ring bonds match only ring bonds, elements must agree except that aromatic C, N, O
    and S are interchangeable, and so are halogens (a pyridine maps onto a phenyl: it is the
    geometry that is transplanted). Only the largest connected piece is kept. Each placement
    is a tuple of (query atom, template atom) index pairs.
    """
    options = rdRascalMCES.RascalOptions()
    options.similarityThreshold = 0.2  # below this Johnson similarity RASCAL gives up at once
    options.ringMatchesRingOnly = True
    options.completeAromaticRings = False  # a thiophene vs a pyrrole would otherwise drop the whole ring system
    options.singleLargestFrag = True
    options.equivalentAtoms = _EQUIVALENT_ATOMS
    options.allBestMCESs = max_mappings > 1
    options.maxBestMCESs = max(1, max_mappings)
    options.timeout = max(1, int(timeout))
    mappings: list[tuple[tuple[int, int], ...]] = []
    block = BlockLogs()  # RASCAL logs its time-outs and give-ups; a small or empty result says enough
    results = rdRascalMCES.FindMCES(query, template, options)
    del block
    for result in results:
        pairs = whole_rings_only(query, template, [(int(q), int(t)) for q, t in result.atomMatches()])
        if len(pairs) >= 3 and all({q for q, _ in pairs} != {q for q, _ in other} for other in mappings):
            mappings.append(pairs)
        if len(mappings) == max_mappings:
            break
    if not mappings:
        return 0, ()
    return max(len(pairs) for pairs in mappings), tuple(mappings)


def whole_rings_only(query: Chem.Mol, template: Chem.Mol, pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The atom pairs minus ring atoms whose rings are not mapped (nearly) whole onto a template ring.

    A five-membered ring half-mapped onto a six-membered one cannot take the template's
    coordinates; an atom survives if it is in no ring, or in a ring that maps onto one ring of
    the template of the same size with at most one atom unmatched (a thiane's S against a
    cyclohexane's C). Of what survives, the largest connected piece is kept.
    """
    image = dict(pairs)
    template_rings = [set(ring) for ring in template.GetRingInfo().AtomRings()]
    intact, broken = set(), set()
    for ring in query.GetRingInfo().AtomRings():
        mapped = {image[atom] for atom in ring if atom in image}
        whole = len(mapped) >= len(ring) - 1 and any(len(other) == len(ring) and mapped <= other for other in template_rings)
        (intact if whole else broken).update(ring)
    kept = sorted(atom for atom in image if atom not in broken or atom in intact)
    if not kept:
        return ()
    _, piece = connected_components(Chem.GetAdjacencyMatrix(query)[np.ix_(kept, kept)], directed=False)
    largest = {kept[i] for i in np.flatnonzero(piece == np.bincount(piece).argmax())}
    return tuple((q, t) for q, t in pairs if q in largest)


# --------------------------------------------------------------------------- pocket similarity


def match_pocket(template: Pocket, query: Pocket, options: TemplateOptions | None = None) -> PocketMatch | None:
    """Superpose a template pocket onto the model's residues around the blob, or None when they do not match."""
    options = options or TemplateOptions()
    template_ca, query_ca = template.calpha(), query.calpha()
    template_index = np.flatnonzero(~np.isnan(template_ca[:, 0]))
    query_index = np.flatnonzero(~np.isnan(query_ca[:, 0]))
    if len(template_index) < 4 or len(query_index) < 4:
        return None
    alignment = gemmi.align_string_sequences(
        [str(n) for n in query.residue_name[query_index]], [str(n) for n in template.residue_name[template_index]], [], _BLOSUM62
    )
    pairs = aligned_pairs(alignment.cigar_str())
    if len(pairs) < 4:
        return None
    mobile, target = template_ca[template_index], query_ca[query_index]
    fitted = _trimmed_superposition(mobile[pairs[:, 1]], target[pairs[:, 0]], (4.0, options.pair_distance))
    if fitted is None:
        return None
    # Re-pair by proximity in the superposed frame (sequence alignment of discontinuous pocket
    # segments can shift a segment), then fit once more on those pairs.
    for _ in range(2):
        rotation, translation = fitted
        template_positions, query_positions = _spatial_pairs(mobile @ rotation.T + translation, target, options.pair_distance)
        if len(template_positions) < 4:
            return None
        rotation, translation = superpose(mobile[template_positions], target[query_positions])
        fitted = rotation, translation
    deviation = np.linalg.norm(mobile[template_positions] @ rotation.T + translation - target[query_positions], axis=1)
    same = template.residue_name[template_index[template_positions]] == query.residue_name[query_index[query_positions]]
    return PocketMatch(
        rotation=rotation,
        translation=translation,
        rmsd=float(np.sqrt(np.mean(deviation**2))),
        pairs=len(template_positions),
        residues=len(template_index),
        identity=float(same.mean()),
    )


def aligned_pairs(cigar: str) -> np.ndarray:
    """(query position, target position) pairs of the aligned (M) columns of a gemmi CIGAR string."""
    pairs, query_position, target_position, number = [], 0, 0, ""
    for character in cigar:
        if character.isdigit():
            number += character
            continue
        length = int(number)
        number = ""
        if character == "M":
            pairs.extend((query_position + k, target_position + k) for k in range(length))
            query_position += length
            target_position += length
        elif character == "I":
            query_position += length
        else:  # D
            target_position += length
    return np.array(pairs, dtype=int).reshape(-1, 2)


def superpose(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation and translation with ``target ≈ mobile @ R.T + t`` (Kabsch 1976)."""
    mobile_centre, target_centre = mobile.mean(axis=0), target.mean(axis=0)
    covariance = (mobile - mobile_centre).T @ (target - target_centre)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    return rotation, target_centre - mobile_centre @ rotation.T


def _trimmed_superposition(mobile: np.ndarray, target: np.ndarray, cutoffs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """Superpose, then refit on the pairs within each cutoff (Å) in turn; None when fewer than 4 pairs stay."""
    keep = np.ones(len(mobile), dtype=bool)
    rotation, translation = superpose(mobile, target)
    for cutoff in cutoffs:
        for _ in range(3):
            deviation = np.linalg.norm(mobile @ rotation.T + translation - target, axis=1)
            new_keep = deviation <= cutoff
            if new_keep.sum() < 4:
                return None
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
            rotation, translation = superpose(mobile[keep], target[keep])
    return rotation, translation


def _spatial_pairs(moved: np.ndarray, target: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Mutually nearest (template, query) residue pairs closer than ``distance`` Å."""
    to_query, query_of = cKDTree(target).query(moved, distance_upper_bound=distance)
    _, template_of = cKDTree(moved).query(target)
    template_positions = np.flatnonzero(np.isfinite(to_query))
    mutual = template_of[query_of[template_positions]] == template_positions
    template_positions = template_positions[mutual]
    return template_positions, query_of[template_positions]


def shape_match(template_extents: np.ndarray, blob_extents: np.ndarray) -> float:
    """Agreement (0–1) of principal extents (Å), as in blob ranking: a Gaussian in the summed log ratios."""
    error = np.log((np.asarray(blob_extents) + 0.5) / (np.asarray(template_extents) + 0.5))
    return float(np.exp(-np.sum(error**2) / (2 * 0.4**2)))


# --------------------------------------------------------------------------- ranking


def find_templates(
    library: TemplateLibrary,
    query: Chem.Mol,
    blobs: list[Blob],
    protein: AtomTable | None,
    options: TemplateOptions | None = None,
) -> list[TemplateMatch]:
    """The best templates for ``query`` (heavy atoms first) in each blob, best first per blob.

    ``protein``: the model's heavy atoms (None when the map holds only the ligand: the blob's
    shape then stands in for the pocket). At most ``options.max_templates`` per blob; the
    common-substructure searches stop after ``options.mcs_budget`` seconds.
    """
    options = options or TemplateOptions()
    query = Chem.RemoveHs(query)
    candidates = candidates_by_fingerprint(library, query, options)
    if not candidates or not blobs:
        return []
    query_pockets = [pocket_around(protein, blob.points, library.pocket_radius) for blob in blobs] if protein is not None else None
    found: dict[int, list[TemplateMatch]] = {blob.rank: [] for blob in blobs}
    started = time.process_time()  # CPU time: which templates are searched must not depend on machine load
    for position, similarity in candidates:
        if time.process_time() - started > options.mcs_budget:
            log.info("templates: common-substructure budget of %.0f s spent; later candidates skipped", options.mcs_budget)
            break
        record = library.record(position)
        sites = _site_matches(library, position, record, blobs, query_pockets, options)
        if not sites:
            continue
        common, mappings = common_substructure(query, record.ligand, options.mcs_timeout, options.max_mappings)
        if common < options.min_common_atoms or common < options.min_common_fraction * query.GetNumAtoms():
            continue
        ligand = LigandMatch(position, similarity, common, query.GetNumAtoms(), mappings)
        for blob, pocket, shape in sites:
            site_similarity = pocket.similarity if pocket is not None else shape
            found[blob.rank].append(TemplateMatch(record, ligand, pocket, shape, blob.rank, ligand.similarity * site_similarity))
    best = []
    for matches in found.values():
        best += sorted(matches, key=lambda m: -m.score)[: options.max_templates]
    return best


def _site_matches(
    library: TemplateLibrary,
    position: int,
    record: TemplateRecord,
    blobs: list[Blob],
    query_pockets: list[Pocket] | None,
    options: TemplateOptions,
) -> list[tuple[Blob, PocketMatch | None, float | None]]:
    """The blobs where this template fits: its pocket superposes onto the model there, or (no model) its shape matches."""
    sites = []
    for number, blob in enumerate(blobs):
        if query_pockets is not None:
            pocket = match_pocket(record.pocket, query_pockets[number], options)
            if pocket is not None and _pocket_passes(pocket, options):
                sites.append((blob, pocket, None))
        else:
            shape = shape_match(library.index.ligand_extents[position], blob.extents)
            if shape >= options.min_shape_match:
                sites.append((blob, None, shape))
    return sites


def _pocket_passes(pocket: PocketMatch, options: TemplateOptions) -> bool:
    return (
        pocket.coverage >= options.min_pocket_coverage
        and pocket.pairs >= options.min_pocket_residues
        and pocket.identity >= options.min_pocket_identity
        and pocket.rmsd <= options.max_pocket_rmsd
    )
