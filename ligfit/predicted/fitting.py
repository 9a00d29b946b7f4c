"""Fit a predicted model (AlphaFold, a homologue) not yet placed in the map: trim, search, refine, judge.

Order: residues of low pLDDT are trimmed; chains of one sequence are searched once
(:mod:`ligfit.predicted.search`), the peaks refined rigidly and scored by CC_mask; copies of all
sequences are then placed best CC_mask first without overlap (a sequence whose peaks run out is
searched again with the placed copies masked out). A chain that fits nowhere as one body, or whose
two domains fit unequally, is split into domains that are searched on their own. Each placed copy
is finally refined by domains. Coordinates are in Å in the map's frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ligfit import io
from ligfit.maps import DensityMap
from ligfit.predicted import domains as domain_split
from ligfit.predicted import score, search
from ligfit.predicted.errors import ModelDoesNotFitError, ModelTooLargeError, ResolutionTooLowError

log = logging.getLogger(__name__)

#: A placement whose CC_mask is below this fits nowhere.
MIN_CC_MASK = 0.35
#: ... or whose atoms lie in density above the contour for less than this fraction.
MIN_OVERLAP = 0.3
#: Coarsest map resolution (Å) the search accepts.
MAX_RESOLUTION = 10.0
#: Two copies overlap when this fraction of one's Cα lie within 3 Å of the other's.
OVERLAP_FRACTION = 0.1
#: A whole-chain placement is refused when one domain's CC_mask is below this fraction of the other's.
DOMAIN_RATIO = 0.7
#: Fewest residues of a domain searched on its own.
MIN_DOMAIN = 50
#: A domain split is kept when it raises CC_mask by at least this much.
DOMAIN_GAIN = 0.01


@dataclass(frozen=True)
class ChainPlacement:
    """Where one copy of a chain went: ``x -> rotation @ x + translation`` (Å) and how well it fits there."""

    chain: str  # name in the fitted structure
    source_chain: str  # name in the input model, with the residue range when one domain was placed ("A:163-329")
    rotation: np.ndarray
    translation: np.ndarray
    search_score: float  # LCC at the search resolution
    cc_mask: float
    overlap: float  # fraction of atoms in density above the contour
    domains: int  # rigid pieces it was fitted as
    residue_cc: dict[str, float] = field(default_factory=dict)  # "A:17" -> CC in that residue's mask
    fits: bool = True

    def as_dict(self) -> dict:
        return {
            "chain": self.chain,
            "source_chain": self.source_chain,
            "rotation": np.round(self.rotation, 6).tolist(),
            "translation": np.round(self.translation, 3).tolist(),
            "search_score": round(self.search_score, 4),
            "cc_mask": round(self.cc_mask, 4),
            "overlap": round(self.overlap, 4),
            "domains": self.domains,
            "fits": self.fits,
            "residue_cc": {key: (None if math.isnan(value) else round(value, 3)) for key, value in self.residue_cc.items()},
        }


@dataclass(frozen=True)
class FitResult:
    """The fitted model (map frame, Å), one :class:`ChainPlacement` per placed copy, and what was done."""

    structure: gemmi.Structure
    placements: tuple[ChainPlacement, ...]
    trimmed: tuple[str, ...]  # residues left out for low pLDDT ("A:17")
    resolution: float
    seconds: float
    options: dict
    verdict: str
    flexible: dict | None = None  # the whole-model flexible refinement's record, when one followed the fit

    def with_flexible(self, structure: gemmi.Structure, record: dict, seconds: float) -> FitResult:
        """This fit followed by a flexible refinement: its ``structure`` and JSON-ready ``record`` (refined, message, CC_mask …)."""
        verdict = f"{self.verdict}; flexible refinement: {record.get('message', 'not run')}"
        return dataclasses.replace(self, structure=structure, flexible=record, seconds=self.seconds + seconds, verdict=verdict)

    @property
    def cc_mask(self) -> float:
        """Mean CC_mask over the placed copies."""
        return float(np.mean([p.cc_mask for p in self.placements])) if self.placements else 0.0

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "resolution": self.resolution,
            "seconds": round(self.seconds, 1),
            "options": self.options,
            "trimmed": list(self.trimmed),
            "placements": [p.as_dict() for p in self.placements],
            "flexible": self.flexible,
        }


@dataclass(frozen=True)
class _Body:
    """Atoms of one chain as arrays (Å), with the index of each atom's residue."""

    name: str
    coordinates: np.ndarray
    residue_of_atom: np.ndarray
    residue_labels: list[str]
    ca: np.ndarray  # indices of the Cα atoms
    ca_only: bool

    @property
    def weights(self) -> np.ndarray:
        return np.ones(len(self.coordinates))


def _body(chain: gemmi.Chain) -> _Body:
    coordinates, residue_of_atom, labels, ca = [], [], [], []
    for residue in chain:
        atoms = [atom for atom in residue if not atom.is_hydrogen()]
        if not atoms:
            continue
        for atom in atoms:
            if atom.name == "CA":
                ca.append(len(coordinates))
            coordinates.append(atom.pos.tolist())
            residue_of_atom.append(len(labels))
        labels.append(f"{chain.name}:{residue.seqid.num}")
    ca_only = len(ca) == len(coordinates)
    return _Body(
        chain.name, np.array(coordinates, float).reshape(-1, 3), np.array(residue_of_atom, int), labels, np.array(ca, int), ca_only
    )


def _scoring_resolution(body: _Body, resolution: float) -> float:
    """Cα-only models are scored as blurred to 6 Å at least: their atoms stand for whole residues."""
    return max(resolution, 6.0) if body.ca_only else resolution


def check_inputs(structure: gemmi.Structure, density: DensityMap, resolution: float) -> None:
    """Refuse a resolution too low for the search and chains larger than the map's box."""
    if not resolution > 0:
        raise ResolutionTooLowError(f"resolution {resolution} Å is not a resolution; give the map's resolution in Å (--resolution)")
    if resolution > MAX_RESOLUTION:
        raise ResolutionTooLowError(
            f"a {resolution:g} Å map is too coarse to search for a model's orientation (at most {MAX_RESOLUTION:g} Å); "
            "place the model by hand or use a higher-resolution map"
        )
    diagonal = float(np.linalg.norm(density.extent))
    for chain in structure[0]:
        body = _body(chain)
        if len(body.coordinates) == 0:
            continue
        diameter = 2 * float(np.linalg.norm(body.coordinates - body.coordinates.mean(axis=0), axis=1).max())
        if diameter > diagonal:
            raise ModelTooLargeError(
                f"chain {chain.name} spans {diameter:.0f} Å but the map's box is only {diagonal:.0f} Å across its diagonal; "
                "give a map that holds the whole model, or trim the model to the part in the map"
            )


def fit_model(
    structure: gemmi.Structure,
    density: DensityMap,
    resolution: float,
    *,
    copies: int = 1,
    plddt_cutoff: float | None = domain_split.PLDDT_CUTOFF,
    pae: np.ndarray | None = None,
    refine: bool = True,
    partial: bool = False,
    angular_spacing: float = search.ANGULAR_SPACING,
    search_resolution: float = search.SEARCH_RESOLUTION,
    candidates: int = search.CANDIDATES,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Place ``structure`` (every chain, ``copies`` times) in ``density`` at ``resolution`` Å; see the module docstring.

    Raises :class:`ModelDoesNotFitError` when a chain fits nowhere (with ``partial``, only when
    none fits; the others are then left out and named in the verdict). ``seed`` is recorded; the
    search is deterministic (a fixed rotation grid).
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    check_inputs(structure, density, resolution)
    trimmed, removed = domain_split.trim_low_confidence(structure, plddt_cutoff)
    if removed:
        say(f"trimmed {len(removed)} residues of pLDDT < {plddt_cutoff:g}")
    search_resolution = max(search_resolution, resolution)
    coarse_target = search.refinement_map(density, search_resolution)
    fine_target = search.refinement_map(density, resolution)
    level = score.contour_level(density)
    context = _Context(
        density, resolution, level, (coarse_target, fine_target), search_resolution, angular_spacing, candidates, refine, pae, say
    )
    state = _State(output_model=gemmi.Model("1"), all_names=_names(trimmed))
    units = [(group[0], trimmed[0][group[0]], list(group) * copies) for group in _sequence_groups(trimmed)]
    failed = _place_units(units, context, state, whole_chains=True)
    # A chain that fits nowhere as one body may fit as domains (a prediction whose domains are
    # arranged otherwise than in the map, or a map that holds part of the protein).
    pieces = [piece for unit, _best in failed for piece in _domain_units(unit, pae)]
    if pieces:
        say(f"{', '.join(unit[0] for unit, _ in failed)} fits nowhere as one body: searching its {len(pieces)} domains")
        failed = [item for item in failed if not _domain_units(item[0], pae)] + _place_units(pieces, context, state, whole_chains=False)
    failures = [f"chain {name} (best CC_mask {best:.2f})" for (key, _chain, names), best in failed for name in names]
    placements = state.placements
    if failures and (not partial or not placements):
        raise ModelDoesNotFitError(
            f"{', '.join(failures)} fits nowhere in the map (CC_mask must reach {MIN_CC_MASK}); "
            "check that the model is of the protein in the map, and the map's resolution"
        )
    output = gemmi.Structure()
    output.cell = trimmed.cell
    output.spacegroup_hm = trimmed.spacegroup_hm
    output_model = state.output_model
    output.add_model(output_model)
    output.remove_hydrogens()
    output.setup_entities()
    verdict = f"placed {len(placements)} chain copies, mean CC_mask {np.mean([p.cc_mask for p in placements]):.3f}"
    if failures:
        verdict += f"; {', '.join(failures)} fit nowhere and were left out"
    options = {
        "copies": copies,
        "plddt_cutoff": plddt_cutoff,
        "pae": pae is not None,
        "refine": refine,
        "angular_spacing": angular_spacing,
        "search_resolution": search_resolution,
        "candidates": candidates,
        "seed": seed,
    }
    return FitResult(output, tuple(placements), tuple(removed), resolution, time.perf_counter() - started, options, verdict)


@dataclass(frozen=True)
class _Context:
    """What every placement needs to know: the map, its targets and the search settings."""

    density: DensityMap
    resolution: float
    level: float
    targets: tuple[search.RefinementMap, search.RefinementMap]
    search_resolution: float
    angular_spacing: float
    candidates: int
    refine: bool
    pae: np.ndarray | None
    say: Callable[[str], None]


@dataclass
class _State:
    """The copies placed so far (mutable while fitting)."""

    output_model: gemmi.Model
    all_names: set[str]
    placed_atoms: list[np.ndarray] = field(default_factory=list)
    placed_ca: list[np.ndarray] = field(default_factory=list)
    placements: list[ChainPlacement] = field(default_factory=list)
    used_names: set[str] = field(default_factory=set)


#: A unit to place: (key, the chain or the part of it to place, the source chain name of each copy).
_Unit = tuple[str, gemmi.Chain, list[str]]


def _place_units(units: list[_Unit], context: _Context, state: _State, whole_chains: bool) -> list[tuple[_Unit, float]]:
    """Place every copy of every unit, best CC_mask first across units; the units (with the copies left) that fit nowhere.

    Candidates of every unit are scored first, so that a similar fold (β-globin on an α site)
    cannot take a site its own chain fits better. For ``whole_chains``, a placement fits only
    if each of its two structural domains fits too (else the chain is searched by domains).
    """
    bodies, pending, scored, searched_after, chains, parts = {}, {}, {}, {}, {}, {}
    for key, chain, names in units:
        body = _body(chain)
        if len(body.coordinates) == 0:
            continue
        if body.ca_only:
            log.warning(
                "chain %s has only Cα atoms: its fit is scored at %.0f Å and is coarser", key, _scoring_resolution(body, context.resolution)
            )
        context.say(f"searching {key} ({len(body.residue_labels)} residues, {len(names)} copies)")
        bodies[key], pending[key], searched_after[key], chains[key] = body, list(names), 0, chain
        parts[key] = _domain_labels(body) if whole_chains else None
        scored[key] = _search_candidates(body, context, [])
    failed = []
    while any(pending.values()):
        options = {}
        for key in [key for key, names in pending.items() if names]:
            body = bodies[key]
            choice = _first_free(scored[key], body, state.placed_ca)
            if not _acceptable(choice, body, context, parts[key]) and len(state.placements) > searched_after[key]:
                # its peaks were taken by copies placed since: search again with those masked out
                scored[key] = _search_candidates(body, context, state.placed_atoms)
                searched_after[key] = len(state.placements)
                choice = _first_free(scored[key], body, state.placed_ca)
            if _acceptable(choice, body, context, parts[key]):
                options[key] = choice
                continue
            failed.append(((key, chains[key], pending[key]), choice[1] if choice else float("nan")))
            pending[key] = []
        if not options:
            break
        key = max(options, key=lambda name: options[name][1])
        scored[key] = [item for item in scored[key] if item is not options[key]]
        source_name = pending[key].pop(0)
        part = key[key.index(":") :] if ":" in key else ""  # a domain: "A:163-329"
        _place(bodies[key], chains[key], source_name, part, options[key], context, state)
    return failed


def _place(
    body: _Body,
    chain: gemmi.Chain,
    source_name: str,
    part: str,
    choice: tuple[search.RigidPlacement, float],
    context: _Context,
    state: _State,
) -> None:
    """Refine one chosen placement by domains, score it per residue, and add it to the fitted model."""
    rigid, cc = choice
    density, resolution = context.density, context.resolution
    moved = rigid.apply(body.coordinates)
    pieces = 1
    if context.refine:
        moved, cc, pieces = _fit_domains(body, moved, cc, context.targets[1], density, resolution, context.pae)
    _, per_residue = score.cc_mask(
        density, moved, body.weights, _scoring_resolution(body, resolution), body.residue_of_atom, len(body.residue_labels)
    )
    name = source_name if source_name not in state.used_names else io.unused_chain_name(state.used_names | state.all_names)
    state.used_names.add(name)
    state.output_model.add_chain(_moved_chain(chain, body, moved, name))
    state.placed_atoms.append(moved)
    state.placed_ca.append(moved[body.ca])
    state.placements.append(
        ChainPlacement(
            chain=name,
            source_chain=source_name + part,
            rotation=rigid.rotation,
            translation=rigid.translation,
            search_score=rigid.score,
            cc_mask=cc,
            overlap=score.overlap(density, moved, context.level),
            domains=pieces,
            residue_cc=dict(zip(body.residue_labels, per_residue.tolist())),
        )
    )
    context.say(f"placed chain {name}: CC_mask {cc:.3f} ({pieces} rigid piece{'s' if pieces > 1 else ''})")


def _domain_units(unit: _Unit, pae: np.ndarray | None) -> list[_Unit]:
    """The unit split in two domains (PAE or Cα clustering), or [] when it is too small to split."""
    key, chain, names = unit
    body = _body(chain)
    if len(body.residue_labels) < 2 * MIN_DOMAIN:
        return []
    points = _residue_points(body, body.coordinates)
    labels = domain_split.split_domains(points, 2, pae=pae if pae is not None and pae.shape[0] == len(points) else None)
    with_atoms = [any(not atom.is_hydrogen() for atom in residue) for residue in chain]
    label_of_residue = np.full(len(chain), -1)
    label_of_residue[np.flatnonzero(with_atoms)] = labels
    pieces = []
    for domain in range(labels.max() + 1):
        part = chain.clone()
        for position in reversed(range(len(part))):
            if label_of_residue[position] != domain:
                del part[position]
        if len(part) >= MIN_DOMAIN:
            first, last = part[0].seqid.num, part[len(part) - 1].seqid.num
            pieces.append((f"{key}:{first}-{last}", part, list(names)))
    return pieces if len(pieces) > 1 else []


def _names(structure: gemmi.Structure) -> set[str]:
    return {chain.name for chain in structure[0]}


def _sequence_groups(structure: gemmi.Structure) -> list[list[str]]:
    """Chain names grouped by identical sequence, largest chains first."""
    groups: dict[str, list[str]] = {}
    for chain in structure[0]:
        sequence = gemmi.one_letter_code([residue.name for residue in chain])
        groups.setdefault(sequence, []).append(chain.name)
    return sorted(groups.values(), key=lambda names: -len(structure[0][names[0]]))


def _refine_candidate(
    body: _Body,
    candidate: search.RigidPlacement,
    coarse: search.RefinementMap,
    fine: search.RefinementMap,
    density: DensityMap,
    resolution: float,
) -> tuple[search.RigidPlacement, float]:
    """The candidate refined rigidly at the search resolution, then at the map's; and its CC_mask."""
    placement = candidate
    for target, shift, angle in ((coarse, 10.0, 30.0), (fine, 3.0, 10.0)):
        rotation, translation, _ = search.refine_rigid(
            placement.apply(body.coordinates), body.weights, target, max_shift=shift, max_angle=angle
        )
        placement = placement.then(rotation, translation, candidate.score)
    cc, _ = score.cc_mask(density, placement.apply(body.coordinates), body.weights, _scoring_resolution(body, resolution))
    return placement, cc


def _search_candidates(body: _Body, context: _Context, placed_atoms: list[np.ndarray]) -> list[tuple[search.RigidPlacement, float]]:
    """Search the map with the density of the copies placed so far masked out; the peaks refined, best CC_mask first."""
    exclude = np.concatenate(placed_atoms) if placed_atoms else None
    target = search.search_map(context.density, context.search_resolution, exclude=exclude)
    found = search.global_search(
        body.coordinates,
        body.weights,
        target,
        context.search_resolution,
        angular_spacing=context.angular_spacing,
        candidates=context.candidates,
    )
    context.say(f"searched {search.rotation_count(context.angular_spacing)} rotations × {np.prod(target.density.shape)} translations")
    refined = (_refine_candidate(body, c, *context.targets, context.density, context.resolution) for c in found)
    return sorted(refined, key=lambda item: -item[1])


def _acceptable(
    choice: tuple[search.RigidPlacement, float] | None, body: _Body, context: _Context, domain_of_atom: np.ndarray | None
) -> bool:
    """Whether a placement fits: CC_mask and overlap above their minimums, and CC_mask of each domain (when given)."""
    if choice is None or choice[1] < MIN_CC_MASK:
        return False
    moved = choice[0].apply(body.coordinates)
    if score.overlap(context.density, moved, context.level) < MIN_OVERLAP:
        return False
    if domain_of_atom is None:
        return True
    resolution = _scoring_resolution(body, context.resolution)
    domain_cc = [
        score.cc_mask(context.density, moved[domain_of_atom == domain], body.weights[domain_of_atom == domain], resolution)[0]
        for domain in np.unique(domain_of_atom)
    ]
    return min(domain_cc) >= max(MIN_CC_MASK, DOMAIN_RATIO * max(domain_cc))


def _domain_labels(body: _Body) -> np.ndarray | None:
    """Domain (of two, by Cα clustering) of each atom, or None for chains too small to split."""
    if len(body.residue_labels) < 2 * MIN_DOMAIN:
        return None
    labels = domain_split.split_domains(_residue_points(body, body.coordinates), 2)
    return labels[body.residue_of_atom]


def _residue_points(body: _Body, coordinates: np.ndarray) -> np.ndarray:
    """One point per residue (n_residues, 3): its Cα, or its first atom where it has none."""
    points = coordinates[np.unique(body.residue_of_atom, return_index=True)[1]].copy()
    points[body.residue_of_atom[body.ca]] = coordinates[body.ca]
    return points


def _first_free(scored: list, body: _Body, placed_ca: list[np.ndarray]) -> tuple[search.RigidPlacement, float] | None:
    """The best candidate that does not overlap the copies already placed."""
    if not placed_ca:
        return scored[0] if scored else None
    tree = cKDTree(np.concatenate(placed_ca))
    for item in scored:
        ca = item[0].apply(body.coordinates[body.ca])
        near = tree.query(ca, distance_upper_bound=3.0)[0] < np.inf
        if np.mean(near) < OVERLAP_FRACTION:
            return item
    return None


def _fit_domains(
    body: _Body, moved: np.ndarray, cc: float, target: search.RefinementMap, density: DensityMap, resolution: float, pae: np.ndarray | None
) -> tuple[np.ndarray, float, int]:
    """Split the placed chain into 2 or 3 domains and refine each rigidly; keep the split if CC_mask rises by DOMAIN_GAIN."""
    n_residues = len(body.residue_labels)
    if n_residues < 80 or (pae is not None and pae.shape[0] != n_residues):
        return moved, cc, 1
    best = (moved, cc, 1)
    ca_of_residue = _residue_points(body, moved)
    scoring = _scoring_resolution(body, resolution)
    for count in (2, 3):
        if n_residues < 40 * count:
            break
        labels = domain_split.split_domains(ca_of_residue, count, pae=pae)
        trial = moved.copy()
        for domain in range(labels.max() + 1):
            atoms = labels[body.residue_of_atom] == domain
            rotation, translation, _ = search.refine_rigid(trial[atoms], body.weights[atoms], target, max_shift=4.0, max_angle=15.0)
            trial[atoms] = trial[atoms] @ rotation.T + translation
        trial_cc, _ = score.cc_mask(density, trial, body.weights, scoring)
        if trial_cc > best[1] + DOMAIN_GAIN:
            best = (trial, trial_cc, int(labels.max() + 1))
    return best


def _moved_chain(chain: gemmi.Chain, body: _Body, moved: np.ndarray, name: str) -> gemmi.Chain:
    """A copy of ``chain`` named ``name`` with its heavy atoms at ``moved`` (hydrogens are dropped by the caller)."""
    copy = chain.clone()
    copy.name = name
    atoms = [atom for residue in copy for atom in residue if not atom.is_hydrogen()]
    for atom, position in zip(atoms, moved):
        atom.pos = gemmi.Position(*position)
    return copy


def needs_fitting(density: DensityMap, structure: gemmi.Structure, resolution: float) -> bool:
    """Whether ``structure`` is not yet placed in ``density``: atoms outside the box, off the density, or a low CC_mask."""
    atoms = io.heavy_atoms(structure).coordinates
    if len(atoms) == 0:
        return False
    if np.mean(density.contains(atoms)) < 0.8 or score.overlap(density, atoms) < MIN_OVERLAP:
        return True
    cc, _ = score.cc_mask(density, atoms, np.ones(len(atoms)), resolution)
    return cc < MIN_CC_MASK
