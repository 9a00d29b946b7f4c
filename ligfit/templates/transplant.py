"""Transplant: template ligand coordinates → seed poses of the query ligand for docking.

The template ligand is moved into the model's frame with its pocket's superposition; the
query's atoms in the common substructure are pinned to the template atoms they match, and
query conformers are embedded around them (RDKit ETKDGv3 with a coordinate map), aligned onto
the pinned atoms and relaxed with MMFF while those atoms are held. Without a protein model the
embedded poses are laid onto the blob along its principal axes instead. The seeds then
compete with docking's own searches; they are never accepted as they are.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdDistGeom
from rdkit.Geometry import Point3D
from rdkit.rdBase import BlockLogs

from ligfit.io import AtomTable
from ligfit.ligand import Ligand, mmff_properties, posed_mol
from ligfit.records import Blob, SeedPose
from ligfit.templates.errors import TemplateLibraryError
from ligfit.templates.library import TemplateLibrary, library_for_build
from ligfit.templates.search import TemplateMatch, TemplateOptions, find_templates, superpose

log = logging.getLogger(__name__)

#: How ligfit.dock names a pose that grew from a seed: this prefix, then the seed's label.
SEED_PREFIX = "seed: "
_CORE_RESTRAINT = 100.0  # kcal/mol/Å² on the pinned atoms while MMFF relaxes the rest


@dataclass(frozen=True)
class TemplateSeeds:
    """Seed poses for docking and the template matches they came from."""

    seeds: list[SeedPose]
    matches: list[TemplateMatch]
    seconds: float
    options: TemplateOptions
    library: str | None = None  # folder of the library searched; None when none was usable
    note: str = ""  # why no library was used, for the report

    def seeded_by(self, pose_source: str) -> TemplateMatch | None:
        """The template whose seed became a docked pose, from the pose's ``source``; None for a density-search pose."""
        if not pose_source.startswith(SEED_PREFIX):
            return None
        label = pose_source.removeprefix(SEED_PREFIX)
        return next((match for match in self.matches if match.label == label), None)

    def summary(self, pose_source: str | None = None) -> dict:
        """Plain data for the report: the matches, how many seeds they gave, the time, the settings and,
        given the winning pose's ``source``, the template that seeded it (None: the density search found it)."""
        summary = {
            "library": self.library,
            "note": self.note or None,
            "seeds": len(self.seeds),
            "seconds": round(self.seconds, 2),
            "matches": [m.summary() for m in self.matches],
            "options": self.options.as_dict(),
        }
        if pose_source is not None:
            winner = self.seeded_by(pose_source)
            summary["best_pose_seeded_by"] = None if winner is None else winner.summary()
        return summary


def seeds_for_build(
    ligand: Ligand,
    blobs: list[Blob],
    protein: AtomTable | None,
    library: TemplateLibrary | str | os.PathLike | None = None,
    options: TemplateOptions | None = None,
) -> TemplateSeeds:
    """Template seeds for a build: from ``library`` if named (its errors raised), else from the shipped one.

    A shipped library that is missing, from another version or half-written (also a damaged
    record found while searching) is logged and skipped: the build docks from the density
    alone. A library the user named raises :class:`TemplateLibraryError` instead.
    """
    options = options or TemplateOptions()
    explicit = library is not None
    try:
        opened = library if isinstance(library, TemplateLibrary) else library_for_build(library)
        if opened is None:
            return TemplateSeeds([], [], 0.0, options, note="the shipped template library is missing or damaged; rebuild it")
        return template_seeds(opened, ligand, blobs, protein, options)
    except TemplateLibraryError as error:
        if explicit:
            raise
        log.warning("shipped template library not used: %s; docking without templates", error)
        return TemplateSeeds([], [], 0.0, options, note=str(error))


def template_seeds(
    library: TemplateLibrary,
    ligand: Ligand,
    blobs: list[Blob],
    protein: AtomTable | None,
    options: TemplateOptions | None = None,
) -> TemplateSeeds:
    """Seed poses from the library's best templates for each blob (none when no template is similar)."""
    options = options or TemplateOptions()
    started = time.perf_counter()
    query = Chem.RemoveHs(ligand.mol)  # heavy atoms keep their indices: hydrogens come last in a Ligand
    by_rank = {blob.rank: blob for blob in blobs}
    seeds: list[SeedPose] = []
    matches: list[TemplateMatch] = []
    for match in find_templates(library, query, blobs, protein, options):
        poses = transplant(match, ligand, by_rank[match.blob_rank], options)
        if poses:
            matches.append(match)
            seeds.extend(poses)
    elapsed = time.perf_counter() - started
    log.info("templates: %d match(es) in %d blob(s), %d seed pose(s) in %.1f s", len(matches), len(blobs), len(seeds), elapsed)
    return TemplateSeeds(seeds, matches, elapsed, options, library=str(library.folder))


def transplant(match: TemplateMatch, ligand: Ligand, blob: Blob, options: TemplateOptions | None = None) -> list[SeedPose]:
    """Seed poses of ``ligand`` built on ``match``'s template ligand (all atoms, ligand order, Å, map frame)."""
    options = options or TemplateOptions()
    template_xyz = match.record.ligand_coordinates
    if match.pocket is not None:
        template_xyz = match.pocket.apply(template_xyz)
    seeds = []
    for number, mapping in enumerate(match.ligand.mappings):
        for coordinates in embed_on_core(
            ligand, _core_variants(ligand, match, mapping, template_xyz), options.conformers, options.seed + number
        ):
            placements = [coordinates] if match.pocket is not None else blob_placements(coordinates, ligand.heavy_atom_count, blob)
            seeds.extend(SeedPose(xyz, match.label) for xyz in placements)
    if not seeds:
        log.info("template %s: no conformer of the ligand fits its common substructure; not used", match.record.id)
    return seeds


def _core_variants(
    ligand: Ligand, match: TemplateMatch, mapping: tuple[tuple[int, int], ...], template_xyz: np.ndarray
) -> list[dict[int, np.ndarray]]:
    """Positions to pin the query atoms to, strictest first (the next is tried when embedding fails).

    1. every pair of the same element (an S mapped onto an N keeps its own bond lengths);
    2. without the atoms within two bonds of a pair of different elements (their angles differ too);
    3. the ring atoms of 2 (a stereocentre that differs from the template's frees its chains).
    """
    query, template = ligand.mol, match.record.ligand
    same = {q: t for q, t in mapping if query.GetAtomWithIdx(q).GetAtomicNum() == template.GetAtomWithIdx(t).GetAtomicNum()}
    mismatched = [q for q, _ in mapping if q not in same]
    distances = Chem.GetDistanceMatrix(query)
    near_mismatch = {q for q in same if mismatched and distances[q, mismatched].min() <= 2}
    variants = [{q: template_xyz[t] for q, t in same.items()}]
    variants.append({q: template_xyz[t] for q, t in same.items() if q not in near_mismatch})
    variants.append({q: xyz for q, xyz in variants[-1].items() if query.GetAtomWithIdx(q).IsInRing()})
    unique = []
    for core in variants:
        if len(core) >= 3 and all(core.keys() != other.keys() for other in unique):
            unique.append(core)
    return unique


def embed_on_core(ligand: Ligand, cores: list[dict[int, np.ndarray]], count: int, seed: int = 0) -> list[np.ndarray]:
    """Up to ``count`` conformers of ``ligand`` (all atoms, Å) with the core atoms at the given positions.

    ``cores`` are tried in turn until one can be embedded.
    """
    for core in cores:
        conformers = _embed(ligand, core, count, seed)
        if conformers:
            return [_pin_and_relax(ligand, xyz, core) for xyz in conformers]
    return []


def _embed(ligand: Ligand, core: dict[int, np.ndarray], count: int, seed: int) -> list[np.ndarray]:
    mol = Chem.Mol(ligand.mol)
    mol.RemoveAllConformers()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed + 1  # a seed of 0 makes every conformer identical in this RDKit
    params.useRandomCoords = True  # embedding from random coordinates is more robust with a coordinate map
    params.maxIterations = 10  # a core that fits embeds at once; one that does not (a mirrored stereocentre) fails all day
    params.SetCoordMap({index: Point3D(*map(float, xyz)) for index, xyz in core.items()})
    block = BlockLogs()  # RDKit reports each failed attempt; the caller falls back and logs once
    try:
        ids = rdDistGeom.EmbedMultipleConfs(mol, count, params)
    except RuntimeError as error:  # RDKit's optimiser can trip an invariant on some coordinate maps
        log.debug("embedding on a template core failed: %s", error)
        ids = []
    del block
    return [mol.GetConformer(i).GetPositions() for i in ids]


def _pin_and_relax(ligand: Ligand, coordinates: np.ndarray, core: dict[int, np.ndarray]) -> np.ndarray:
    """Align a conformer onto the core positions, then MMFF-relax it with the core atoms held there."""
    indices = np.array(list(core))
    targets = np.array(list(core.values()))
    rotation, translation = superpose(coordinates[indices], targets)
    aligned = coordinates @ rotation.T + translation
    if ligand.force_field != "MMFF94":
        return aligned
    aligned[indices] = targets
    mol = posed_mol(ligand, aligned)
    force_field = AllChem.MMFFGetMoleculeForceField(mol, mmff_properties(mol))
    for index in indices:
        force_field.MMFFAddPositionConstraint(int(index), 0.0, _CORE_RESTRAINT)
    force_field.Minimize(maxIts=300)
    return np.array(force_field.Positions()).reshape(-1, 3)


def blob_placements(coordinates: np.ndarray, heavy_atoms: int, blob: Blob) -> list[np.ndarray]:
    """A pose laid onto the blob: centre on its centroid, principal axes on the blob's (the 4 proper flips)."""
    centre = coordinates[:heavy_atoms].mean(axis=0)
    local = coordinates - centre
    heavy = local[:heavy_atoms]
    _, vectors = np.linalg.eigh(heavy.T @ heavy)
    source = vectors[:, ::-1].copy()  # ligand axes as columns, longest first
    source[:, 2] = np.cross(source[:, 0], source[:, 1])
    placements = []
    for first, second in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        target = blob.principal_axes.T.copy()
        target[:, 0] *= first
        target[:, 1] *= second
        target[:, 2] = np.cross(target[:, 0], target[:, 1])
        placements.append(local @ (target @ source.T).T + blob.centroid)
    return placements
