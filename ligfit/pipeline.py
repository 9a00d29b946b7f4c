"""The order of stages for ``build``: inputs → difference map → blobs → docking → result."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem

from ligfit import checks, io, maps, segment
from ligfit.dock import DockingOptions, DockingResult, dock
from ligfit.errors import BadModelError, BadOptionError, LigfitError
from ligfit.io import AtomTable
from ligfit.ligand import MACROCYCLE_CONFORMERS, Ligand, is_macrocycle, load_ligand, parse_ligand, rotatable_bonds
from ligfit.maps import DensityMap, MapSource
from ligfit.measures import expected_q_score, q_scores
from ligfit.predicted import fit_model, needs_fitting, plddt
from ligfit.records import Blob, LigandShape, Pose
from ligfit.refine import LigandParameterCache, RefinementOptions, RefinementResult, WholeModelOptions, refine, refine_whole_model
from ligfit.report import build_report, write_build_outputs
from ligfit.runtime import Progress, StageTimer, no_progress, torch_device
from ligfit.templates import TemplateOptions, TemplateSeeds, seeds_for_build
from ligfit.trace import (
    BUILD_TRACE,
    SequenceInput,
    TraceOptions,
    TraceResult,
    build_protein_model,
    contact_model,
    displaced_residues,
    search_model,
    uncertain_residues,
    without_residues,
)
from ligfit.trace.loops import build_missing_loops
from ligfit.trace.truncated import complete_side_chains

log = logging.getLogger(__name__)

#: A model larger than the map is used where it lies in the map box, given at least this many of its heavy atoms lie there.
MIN_ATOMS_IN_MAP = 20
#: Residues this close (Å) outside the map box are kept: their density reaches into it.
MODEL_MARGIN = 5.0
#: A map much larger than the model (a full EMDB box, or a masked map padded with zeros) is worked on only
#: within this margin (Å) of the model: blobs are searched within 6 Å of it (segment.find_blobs), and a
#: ligand reaches at most ~9 Å beyond its blob's near end ...
MAP_MARGIN_AROUND_MODEL = 15.0
#: ... when that region holds at most this fraction of the map's voxels (otherwise the whole map is kept).
CROP_BELOW_FRACTION = 0.7
#: ``copies=AUTO_COPIES`` places the ligand in every blob whose density supports it (confidence at least
#: "medium"), docking at most AUTO_COPIES_MAX_BLOBS blobs (the best-matching ones; see segment.select_blobs).
AUTO_COPIES, AUTO_COPIES_MAX_BLOBS = "auto", 24

MapInput = MapSource
ModelInput = str | os.PathLike | gemmi.Structure | None
LigandInput = str | os.PathLike | Chem.Mol | Ligand


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``build`` can be told, with its defaults (the CLI mirrors these)."""

    resolution: float
    ligand_name: str = "LIG"
    site: str | tuple[float, float, float] | None = None
    threshold: float = 3.0  # σ of the difference map
    max_blobs: int = 3
    copies: int | str = 1  # placements in distinct blobs (e.g. one ligand per subunit); AUTO_COPIES: every site the density supports
    protonation: str = "ph7"
    max_conformers: int | None = None
    seed: int = 0
    docking: DockingOptions = field(default_factory=DockingOptions)
    use_templates: bool = True  # seed docking from template complexes
    templates: str | os.PathLike | None = None  # library folder (None: the shipped library)
    template_options: TemplateOptions = field(default_factory=TemplateOptions)
    refine: bool = True  # refine ligand and pocket against the map in OpenMM
    refinement: RefinementOptions = field(default_factory=RefinementOptions)
    sequence: SequenceInput = None  # without a model: trace one de novo and thread this sequence
    trace: TraceOptions = BUILD_TRACE  # de novo model: no lone residues (see trace.build_protein_model)
    build_loops: bool = True  # build short loops the model leaves out where the map holds them, to explain their density
    complete_side_chains: bool = True  # complete truncated side chains (and named built loops') into the map, to explain their density
    fit_model: bool | None = None  # place the model in the map first (None: when it carries pLDDT and is not placed yet)


@dataclass
class BuildResult:
    """What ``build`` found: the blobs, the ranked poses, the verdict, and a report."""

    density_map: DensityMap
    model: gemmi.Structure | None
    ligand: Ligand
    difference: segment.DifferenceMap
    blobs: list[Blob]
    docking: DockingResult
    options: BuildOptions
    timings: dict[str, float]
    inputs: dict
    message: str
    templates: TemplateSeeds | None = None
    refinements: list[RefinementResult] = field(default_factory=list)  # one per placement, in order
    refined_model: gemmi.Structure | None = None  # the protein with every refined pocket
    ligand_fit: list[dict] = field(default_factory=list)  # per placement: Q-scores docked and final, expected Q
    traced: TraceResult | None = None  # the de novo protein model, when no model was given

    @property
    def found(self) -> bool:
        """Whether the density supports a pose (otherwise ``best_pose`` is None)."""
        return self.docking.best is not None

    @property
    def status(self) -> str:
        """ "found", "partial" (the ligand explains only part of its blob) or "no convincing density"."""
        if not self.found:
            return "no convincing density"
        return "partial" if self.docking.partial else "found"

    @property
    def best_pose(self) -> Pose | None:
        placements = self.placements
        return placements[0] if placements else None

    @property
    def poses(self) -> list[Pose]:
        return self.docking.poses

    @property
    def placements(self) -> list[Pose]:
        """Every supported placement (up to ``copies``), best first, at its refined coordinates where it was refined."""
        placed = list(self.docking.placements)
        for index, refinement in enumerate(self.refinements[: len(placed)]):
            if refinement.refined:
                placed[index] = dataclasses.replace(
                    placed[index], coordinates=refinement.coordinates, source=placed[index].source + " + refined"
                )
        return placed

    @property
    def docked_placements(self) -> list[Pose]:
        """The placements as docking left them (before refinement)."""
        return self.docking.placements

    @property
    def confidence(self) -> float:
        return self.docking.confidence

    @property
    def report(self) -> dict:
        return build_report(self)

    def complex_structure(self) -> gemmi.Structure | None:
        """The protein model with each placement as a ligand residue in a chain of its own (None when nothing was found)."""
        if not self.placements:
            return None
        heavy = self.ligand.heavy_atom_count
        structure = self.refined_model if self.refined_model is not None else self.model
        structure = structure if structure is not None else _empty_structure()
        for pose in self.placements:
            structure = io.add_ligand(
                structure,
                self.ligand.elements[:heavy],
                list(self.ligand.atom_names[:heavy]),
                pose.coordinates[:heavy],
                residue_name=self.options.ligand_name,
            )
        return structure

    def write(self, folder: str | os.PathLike, force: bool = False, command: str | None = None) -> Path:
        """Write model.cif, model.pdb, ligand.sdf, poses.sdf, difference.mrc and report.json (with ``command`` if given)."""
        return write_build_outputs(self, Path(folder), force, command)


def _empty_structure() -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    return structure


def run_build(
    density_map: MapInput,
    ligand: LigandInput,
    model: ModelInput,
    options: BuildOptions,
    progress: Progress = no_progress,
    parameter_cache: LigandParameterCache | None = None,
) -> BuildResult:
    """Run every stage of ``build`` in order and return the result (nothing is written).

    ``parameter_cache``: ligand force-field parameters shared across calls (a screening run).
    """
    options = check_build_options(options)
    timer = StageTimer()
    progress("reading inputs")
    protein = _read_protein(density_map, model, options, progress, timer)
    progress("preparing the ligand")
    if isinstance(ligand, Ligand):
        prepared = ligand
        check_dockable(ligand.mol, ligand.smiles)
    else:
        parsed = parse_ligand(ligand)
        check_dockable(parsed, _describe_source(ligand))
        if options.max_conformers is None and is_macrocycle(parsed):
            progress(f"the ligand is a macrocycle: embedding {MACROCYCLE_CONFORMERS} conformers, since docking does not turn its ring")
        prepared = load_ligand(
            parsed, name=options.ligand_name, protonation=options.protonation, max_conformers=options.max_conformers, seed=options.seed
        )
    protein.inputs["ligand"] = _describe_source(ligand) if not isinstance(ligand, Ligand) else prepared.smiles
    if parameter_cache is None:  # not `cache or …`: an empty cache is falsy, and the caller's would be dropped
        parameter_cache = LigandParameterCache(method=options.refinement.ligand_force_field)
    if options.refine:  # made while the map is segmented and the ligand docked (GAFF2: ~1 s for 40 atoms, in processes)
        parameter_cache.prefetch(prepared.mol)
    timer.lap("ligand")

    progress("computing the difference map")
    protein, difference, blobs = _unexplained_density(protein, prepared, options)
    timer.lap("segmentation")

    message = _precheck(blobs, prepared, options)
    seeds: TemplateSeeds | None = None
    if message:
        docking = DockingResult([], [], message, options.docking)
    else:
        contest = _FragmentContest.of(protein, difference, blobs, prepared, options)
        chosen = (
            _with_carved(segment.select_blobs(_whole(blobs), _blobs_to_dock(options)), blobs, options) if contest is None else contest.blobs
        )
        if options.use_templates:
            progress("matching template complexes")
            seeds = seeds_for_build(prepared, chosen, protein.atoms, library=options.templates, options=options.template_options)
            timer.lap("templates")
        docking = dock(
            prepared,
            segment.without_explained(difference.difference, blobs),
            chosen,
            options.resolution,
            protein.atoms,
            options.docking,
            progress=progress,
            copies=len(chosen) if options.copies == AUTO_COPIES else options.copies,
            seeds=None if seeds is None else seeds.seeds,
            keep=None if contest is None else contest.keep,
            surroundings=None if protein.traced is None else io.heavy_atoms(contact_model(protein.traced)),
        )
        message = docking.reason + ("" if docking.supported else _size_note(blobs, prepared))
        if contest is not None:
            message += contest.note(docking)
    timer.lap("docking")
    protein = _without_displaced_fragments(protein, docking, prepared)
    refinements: list[RefinementResult] = []
    refined_model = None
    if options.refine and docking.supported:
        refinements, refined_model = refine_placements(
            protein.density, protein.structure, prepared, docking, options, progress, parameter_cache
        )
        timer.lap("refinement")
    result = BuildResult(
        protein.density,
        protein.structure,
        prepared,
        difference,
        blobs,
        docking,
        options,
        timer.timings,
        protein.inputs,
        message,
        seeds,
        refinements,
        refined_model,
        traced=protein.traced,
    )
    result.ligand_fit = ligand_fit(result)
    return result


def _blobs_to_dock(options: BuildOptions) -> int:
    """How many of the ranked blobs to dock into."""
    if options.copies == AUTO_COPIES:
        return max(options.max_blobs, AUTO_COPIES_MAX_BLOBS)
    return max(options.max_blobs, options.copies)


def _whole(blobs: list[Blob]) -> list[Blob]:
    """The blobs as segmentation found them (not the pieces ``segment.carve_ligand`` cut out of them)."""
    return [blob for blob in blobs if not blob.carved]


def _with_carved(chosen: list[Blob], blobs: list[Blob], options: BuildOptions) -> list[Blob]:
    """``chosen`` plus the best carved blobs, in rank order: carved pieces are docked in addition, not instead.

    On EMD-3488 carved pieces of untraced protein (match 0.83–0.85) outranked a heme's own blob when they competed.
    """
    carved = segment.select_blobs([blob for blob in blobs if blob.carved], _blobs_to_dock(options))
    return sorted(chosen + carved, key=lambda blob: blob.rank) if carved else chosen


#: Beyond these the docking search takes far too long (hours) and cannot cover the ligand's flexibility.
MAX_DOCKING_HEAVY_ATOMS, MAX_DOCKING_ROTATABLE_BONDS = 100, 30


def check_dockable(mol: Chem.Mol, label: str) -> None:
    """Refuse a ligand too large or too flexible for the docking search to cover in reasonable time."""
    heavy, rotatable = mol.GetNumHeavyAtoms(), len(rotatable_bonds(mol))
    if heavy > MAX_DOCKING_HEAVY_ATOMS or rotatable > MAX_DOCKING_ROTATABLE_BONDS:
        raise BadOptionError(
            f"ligand {label[:60]!r} has {heavy} heavy atoms and {rotatable} rotatable bonds; ligfit's docking covers at most "
            f"{MAX_DOCKING_HEAVY_ATOMS} heavy atoms and {MAX_DOCKING_ROTATABLE_BONDS} rotatable bonds (a peptide or polymer "
            "this large is better built as part of the model, e.g. with `ligfit trace` or a model-building program)"
        )
    if heavy > 50 or rotatable > 15:
        log.info(
            "a large, flexible ligand (%d heavy atoms, %d rotatable bonds): docking may take several minutes per blob", heavy, rotatable
        )


def check_build_options(options: BuildOptions) -> BuildOptions:
    """The options with every number checked (finite, in range) and the ligand name made upper case; a BadOptionError otherwise."""
    checks.check_number(options.threshold, "threshold", minimum=0.0, exclusive_minimum=True, unit="σ")
    checks.check_number(options.max_blobs, "max_blobs", minimum=1, integer=True)
    if isinstance(options.copies, str) and options.copies != AUTO_COPIES:
        raise BadOptionError(f"copies must be a whole number of at least 1 or {AUTO_COPIES!r}, got {options.copies!r}")
    if options.copies != AUTO_COPIES:
        checks.check_number(options.copies, "copies", minimum=1, integer=True)
    checks.check_number(options.seed, "seed", minimum=0, maximum=2**32 - 1, integer=True)
    if options.max_conformers is not None:
        checks.check_number(options.max_conformers, "max_conformers", minimum=1, integer=True)
    if options.protonation not in ("ph7", "as-given"):
        raise BadOptionError(f"protonation must be 'ph7' or 'as-given', got {options.protonation!r}")
    torch_device(options.docking.device)  # a bad name or a missing GPU is refused before any work
    return dataclasses.replace(
        options, resolution=checks.check_resolution(options.resolution), ligand_name=checks.check_residue_name(options.ligand_name)
    )


@dataclass(frozen=True)
class _ProteinInputs:
    """The map and the protein model a build works with (the given one or a traced one)."""

    density: DensityMap
    structure: gemmi.Structure | None  # the model written out with the ligand
    # the model subtracted from the map (a traced one stopped at Cβ; with the loops ligfit.trace.loops built)
    search_structure: gemmi.Structure | None
    atoms: AtomTable | None  # heavy atoms of ``search_structure`` (a traced model: of ``trace.contact_model``)
    traced: TraceResult | None
    inputs: dict


def _read_protein(density_map: MapInput, model: ModelInput, options: BuildOptions, progress: Progress, timer: StageTimer) -> _ProteinInputs:
    """Read map and model, or trace a model de novo when only a sequence is given; check that they overlap."""
    structure = io.read_structure(model) if model is not None else None
    search_structure = structure
    atoms = io.heavy_atoms(structure) if structure is not None else None
    density = maps.load_map(density_map, atoms.coordinates if atoms is not None and len(atoms) else None)
    traced = None
    if structure is None and options.sequence is not None:
        timer.lap("inputs")
        traced = build_protein_model(density, options.resolution, options.sequence, options=options.trace, progress=progress)
        uncertain = uncertain_residues(traced)  # left out of the model subtracted: they compete with the ligand
        structure, search_structure = traced.structure, search_model(traced, leave_out=uncertain)
        atoms = io.heavy_atoms(contact_model(traced, leave_out=uncertain))
        timer.lap("protein model")
    elif options.sequence is not None:
        log.warning("a protein model was given, so the sequence is not used (it is for tracing a model de novo)")
    model_fit = None
    if traced is None and structure is not None:
        _check_side_chains(structure, _describe_source(model))
        if _should_fit(density, structure, options):
            progress("fitting the model into the map (as ligfit fit does)")
            fitted = fit_model(structure, density, options.resolution, seed=options.seed, progress=progress)
            if options.refine:  # then flexibly against the map, as `ligfit fit` does (not with --no-refine)
                progress("refining the fitted model flexibly against the map")
                flexible = refine_whole_model(
                    fitted.structure,
                    density,
                    options.resolution,
                    confidence=plddt(fitted.structure),
                    options=WholeModelOptions(seed=options.seed),
                )
                fitted = fitted.with_flexible(flexible.structure, flexible.summary(), flexible.seconds)
            log.info("the model was not placed in the map, so ligfit fitted it first: %s", fitted.verdict)
            structure = search_structure = fitted.structure
            atoms = io.heavy_atoms(structure)
            model_fit = fitted.as_dict()
    model_in_map = None
    if atoms is not None:
        model_in_map = maps.check_overlap(density, atoms.coordinates, _describe_source(model), 1.0, MIN_ATOMS_IN_MAP)
        if model_in_map < 1.0:
            search_structure, atoms = _model_in_box(density, search_structure, model_in_map)
        already = int(np.sum(atoms.residue_name == options.ligand_name))
        if already:
            log.warning(
                "the model already holds %d atom(s) in residues named %s; they are treated as part of the model "
                "(remove them to fit the ligand there, or choose another --ligand-name)",
                already,
                options.ligand_name,
            )
    map_grid = list(density.shape)
    region = None
    if atoms is not None and len(atoms) and options.site is None:
        density, region = _map_around_model(density, atoms.coordinates)
    inputs = {
        "map": _describe_source(density_map),
        "map_grid": map_grid,
        "map_region": region,
        "voxel_size_A": np.round(density.voxel_size, 4).tolist(),
        "origin_A": np.round(density.origin, 3).tolist(),
        "resolution_A": options.resolution,
        "model": None if model is None else _describe_source(model),
        "protein_model": None if traced is None else traced.summary(),
        "model_heavy_atoms": None if atoms is None else len(atoms),
        "model_fraction_in_map": None if model_in_map is None else round(model_in_map, 4),
        "model_fit": model_fit,
    }
    timer.lap("inputs")
    return _ProteinInputs(density, structure, search_structure, atoms, traced, inputs)


def _without_displaced_fragments(protein: _ProteinInputs, docking: DockingResult, ligand: Ligand) -> _ProteinInputs:
    """A traced model without the uncertain residues a placed ligand took the place of (``TraceOptions.compete_below``).

    Those residues were not subtracted before the ligand search (:mod:`ligfit.trace.certainty`);
    where a placement overlaps them the ligand explains their density, so they leave the model
    that is refined and written. A given model, or a trace without uncertain residues, is unchanged.
    """
    uncertain = uncertain_residues(protein.traced) if protein.traced is not None and protein.structure is not None else set()
    if not uncertain:
        return protein
    heavy, placed = ligand.heavy_atom_count, docking.placements
    xyz = np.concatenate([pose.coordinates[:heavy] for pose in placed]) if placed else np.zeros((0, 3))
    removed = displaced_residues(protein.structure, uncertain, xyz, np.tile(ligand.elements[:heavy], len(placed)))
    protein.inputs["protein_model"].update(uncertain_residues=len(uncertain), uncertain_residues_removed=len(removed))
    if not removed:
        return protein
    log.info("%d uncertain traced residue(s) removed from the model: a placed ligand takes their density", len(removed))
    return dataclasses.replace(protein, structure=without_residues(protein.structure, removed))


@dataclass
class _FragmentContest:
    """Uncertain traced fragments and the ligand compete for the same density (``TraceOptions.compete_below``).

    The uncertain fragments are left out of the subtracted model, so their density comes back as
    blobs: most of it true protein, which looks like a small ligand, some of it a ligand a wrong
    fragment ran through. Docking reaches past the freed blobs (:func:`segment.select_blobs_beyond_freed`)
    and a pose stands only where it explains its density better than the uncertain residues it would
    displace do (:func:`segment.rival_fit` over the same mask; a tie goes to the fragment).
    """

    blobs: list[Blob]  # the blobs to dock
    density: DensityMap  # the difference map (σ)
    structure: gemmi.Structure  # the traced model (fitted side chains)
    uncertain: set[tuple[str, int, str]]
    ligand: Ligand
    resolution: float
    inputs: dict  # report.json inputs.protein_model, updated with what the contest did
    given_way: int = 0  # poses dropped because a fragment explains their density at least as well

    @classmethod
    def of(
        cls, protein: _ProteinInputs, difference: segment.DifferenceMap, blobs: list[Blob], ligand: Ligand, options: BuildOptions
    ) -> _FragmentContest | None:
        """The contest for a traced model with uncertain residues (None otherwise: a given model, or none left out)."""
        if protein.traced is None or protein.structure is None or options.site is not None:
            return None
        uncertain = uncertain_residues(protein.traced)
        if not uncertain:
            return None
        whole = _whole(blobs)
        freed = segment.freed_fraction(whole, _residue_heavy_atoms(protein.structure, uncertain)[0])
        chosen = _with_carved(segment.select_blobs_beyond_freed(whole, freed, _blobs_to_dock(options)), blobs, options)
        summary = protein.inputs["protein_model"]
        summary.update(freed_blobs=int(np.sum(freed >= segment.FREED_FRACTION)), blobs_docked=len(chosen), poses_given_way=0)
        return cls(chosen, difference.difference, protein.structure, uncertain, ligand, options.resolution, summary)

    def keep(self, pose: Pose) -> bool:
        """Whether ``pose`` explains its density better than the uncertain residues it would displace."""
        heavy = self.ligand.heavy_atom_count
        xyz, elements = pose.coordinates[:heavy], self.ligand.elements[:heavy]
        displaced = displaced_residues(self.structure, self.uncertain, xyz, elements)
        if not displaced:
            return True
        ligand_fit, fragment_fit = segment.rival_fit(
            self.density, xyz, elements, *_residue_heavy_atoms(self.structure, displaced), self.resolution
        )
        if ligand_fit > fragment_fit:
            return True
        self.given_way += 1
        self.inputs["poses_given_way"] = self.given_way
        return False

    def note(self, docking: DockingResult) -> str:
        """What the contest adds to the build's message when no pose stands."""
        if docking.supported or not self.given_way:
            return ""
        return f" ({self.given_way} pose(s) set aside: traced protein explains their density at least as well)"


def _residue_heavy_atoms(structure: gemmi.Structure, keys: set[tuple[str, int, str]]) -> tuple[np.ndarray, list[str]]:
    """Coordinates (n, 3) and elements of the heavy atoms of the residues named by (chain ID, number, insertion code)."""
    atoms = [
        (atom.pos.tolist(), atom.element.name)
        for chain in structure[0]
        for residue in chain
        if (chain.name, residue.seqid.num, residue.seqid.icode) in keys
        for atom in residue
        if not atom.is_hydrogen()
    ]
    return np.array([xyz for xyz, _ in atoms], dtype=float).reshape(-1, 3), [element for _, element in atoms]


def _should_fit(density: DensityMap, structure: gemmi.Structure, options: BuildOptions) -> bool:
    """Whether to place the model in the map before the build: asked for, or (by default) a predicted model
    (pLDDT in its B-factors) that is not placed yet. An experimental model that does not fit is refused instead."""
    if options.fit_model is not None:
        return options.fit_model
    return plddt(structure) is not None and needs_fitting(density, structure, options.resolution)


def _map_around_model(density: DensityMap, coordinates: np.ndarray) -> tuple[DensityMap, dict | None]:
    """The part of a map within :data:`MAP_MARGIN_AROUND_MODEL` of the model, when that is much less than the map.

    Blobs, docking and refinement then work on that region only: memory and time follow the model's
    size, not the map box's. Returns the map unchanged (and None) when cropping would save little.
    """
    lower = np.maximum(coordinates.min(axis=0) - MAP_MARGIN_AROUND_MODEL, density.origin)
    upper = np.minimum(coordinates.max(axis=0) + MAP_MARGIN_AROUND_MODEL, density.upper)
    kept = float(np.prod(np.maximum(upper - lower, 0) / density.voxel_size + 1) / np.prod(density.shape))
    if kept > CROP_BELOW_FRACTION:
        return density, None
    region = maps.box(density, (lower + upper) / 2, upper - lower)
    log.info(
        "the map (%s voxels) is much larger than the model: working on the %s voxels within %g Å of it",
        "×".join(map(str, density.shape)),
        "×".join(map(str, region.shape)),
        MAP_MARGIN_AROUND_MODEL,
    )
    summary = {
        "grid": list(region.shape),
        "origin_A": np.round(region.origin, 3).tolist(),
        "why": f"the map box is much larger than the model: only the part within {MAP_MARGIN_AROUND_MODEL:g} Å of the model is used",
    }
    return region, summary


def _model_in_box(density: DensityMap, structure: gemmi.Structure, fraction: float) -> tuple[gemmi.Structure, AtomTable]:
    """The residues of a model larger than the map that lie in the box (plus :data:`MODEL_MARGIN`), and their heavy atoms."""
    cropped = io.crop_to_box(structure, density.origin - MODEL_MARGIN, density.upper + MODEL_MARGIN)
    atoms = io.heavy_atoms(cropped)
    log.info(
        "the map box holds %.0f%% of the model's atoms: the %d residue(s) within %g Å of the box are used (%d heavy atoms)",
        100 * fraction,
        sum(len(chain) for chain in cropped[0]),
        MODEL_MARGIN,
        len(atoms),
    )
    return cropped, atoms


def _check_side_chains(structure: gemmi.Structure, label: str) -> None:
    """Refuse a Cα-only model (its density cannot be subtracted); warn about one without side chains."""
    counts = [
        sum(1 for atom in residue if not atom.is_hydrogen())
        for chain in structure[0]
        for residue in chain
        if gemmi.find_tabulated_residue(residue.name) is not None and gemmi.find_tabulated_residue(residue.name).is_amino_acid()
    ]
    if len(counts) < 10:
        return
    mean = float(np.mean(counts))
    if mean < 2.5:
        raise BadModelError(
            f"model {label} holds only Cα (or Cα-like) atoms, {mean:.1f} heavy atoms per residue: without its backbone and side "
            "chains the model's density cannot be subtracted from the map, so the protein itself would look like unexplained "
            "density; give a full-atom model, or omit --model and give --sequence to trace one"
        )
    if mean < 5.0:
        log.warning(
            "model %s has no side chains for most residues (%.1f heavy atoms per residue): side-chain density will remain "
            "in the difference map as blobs; a full-atom model gives cleaner blobs",
            label,
            mean,
        )


def _unexplained_density(
    protein: _ProteinInputs, ligand: Ligand, options: BuildOptions
) -> tuple[_ProteinInputs, segment.DifferenceMap, list[Blob]]:
    """The difference map and its blobs ranked for this ligand (or the one blob at ``options.site``).

    Short gaps in a given model whose loop is in the map are built first (``ligfit.trace.loops``) and
    subtracted with it: the protein comes back with them in its search model (which the blobs are
    judged against), not in its atoms (which docking avoids: a built loop is ~0.7 Å off, and as a
    wall it moved ligands beside it by up to 1.2 Å on the realistic maps, for no gain overall). Its truncated
    side chains, and those of built loops whose residues the sequence names, are completed into the map for the difference
    map alone (``ligfit.trace.truncated``).
    """
    protein, difference = _difference_map(protein, protein.search_structure, options)
    if protein.structure is not None and protein.traced is None:
        check_model_fit(protein.density, protein.search_structure, protein.atoms, difference.model_cc, options.resolution)
        if options.build_loops:
            protein, difference = _with_missing_loops(protein, difference, options)
    heavy_xyz = ligand.conformer_coordinates()[:, : ligand.heavy_atom_count]
    shape = LigandShape.from_conformers(heavy_xyz)
    protein_xyz = None if protein.atoms is None else protein.atoms.coordinates
    if options.site is None:
        blobs = segment.find_blobs(difference, shape, protein_xyz, threshold=options.threshold)
        if protein.traced is None:  # a traced model stops at Cβ by design: its side chains are not "cut short"
            blobs = segment.explain_as_protein(blobs, protein.search_structure, difference, shape, protein_xyz)
            # weak ligands' pieces; not beside a traced model, whose untraced protein leaves pieces everywhere (not measured)
            blobs = segment.merge_fragments(blobs, difference, shape, protein_xyz)
        else:  # a ligand beside protein the trace missed forms one blob with it
            blobs = segment.carve_ligand(blobs, difference, shape, protein_xyz)
        return protein, difference, blobs
    center = site_center(options.site, protein.structure)
    radius = float(np.max(np.linalg.norm(heavy_xyz - heavy_xyz.mean(1, keepdims=True), axis=-1))) + 4.0
    return protein, difference, [segment.site_blob(difference, center, radius, shape, protein_xyz)]


def _with_missing_loops(
    protein: _ProteinInputs, difference: segment.DifferenceMap, options: BuildOptions
) -> tuple[_ProteinInputs, segment.DifferenceMap]:
    """The protein with the short loops its model leaves out (and the map holds) in its search model; the difference map again."""
    loops = build_missing_loops(protein.search_structure, difference.difference)
    inputs = {**protein.inputs, "missing_loops": loops.summary()}
    if not loops.built:
        return dataclasses.replace(protein, inputs=inputs), difference
    protein, difference = _difference_map(dataclasses.replace(protein, inputs=inputs), loops.structure, options)
    return dataclasses.replace(protein, search_structure=loops.structure), difference


def _difference_map(
    protein: _ProteinInputs, structure: gemmi.Structure | None, options: BuildOptions
) -> tuple[_ProteinInputs, segment.DifferenceMap]:
    """The map less ``structure``'s density. A given model's truncated side chains are completed into the map first
    (``ligfit.trace.truncated``): they explain density, as built loops do, and are never written; the protein comes
    back saying which they were."""
    if structure is None or protein.traced is not None or not options.complete_side_chains:
        return protein, segment.difference_map(protein.density, structure, options.resolution)
    completion = complete_side_chains(structure, protein.density)
    protein = dataclasses.replace(protein, inputs={**protein.inputs, "truncated_side_chains": completion.summary()})
    return protein, segment.difference_map(protein.density, completion.structure, options.resolution)


#: Below this correlation of the model's density with the map (near the model) the model does not fit the map.
POOR_MODEL_CC = 0.3


def check_model_fit(density: DensityMap, structure: gemmi.Structure, atoms: AtomTable, model_cc: float, resolution: float) -> None:
    """Refuse a model that does not fit the map (docking would find the protein's own density), saying how far off it looks.

    A model with CC < 0.5 is searched for a better whole-model translation (:func:`maps.best_translation`);
    a shift that raises the CC by ≥ 0.2 is named in the error. Without one, CC < ``POOR_MODEL_CC`` is refused.
    """
    if model_cc >= 0.5 or atoms is None or not len(atoms):
        return
    found = maps.best_translation(density, atoms.coordinates, resolution, structure=structure)
    if found.distance >= 1.0 and found.cc_shifted >= max(found.cc_here, model_cc) + 0.2:
        dx, dy, dz = found.shift
        raise BadModelError(
            f"the model does not fit the map (CC {model_cc:.2f} near the model); it fits the map best shifted by "
            f"({dx:+.1f}, {dy:+.1f}, {dz:+.1f}) Å, {found.distance:.1f} Å away (CC {found.cc_shifted:.2f} there): check the "
            "map's ORIGIN/NSTART (or the model's frame), e.g. that both come from the same deposition; for a predicted model "
            "not yet placed in the map, give --fit-model yes"
        )
    if model_cc < POOR_MODEL_CC:
        raise BadModelError(
            f"the model does not fit the map (CC {model_cc:.2f} near the model, and no shift of the model fits better): "
            "check the voxel size, hand and resolution of the map, and that the model was fitted to this map (a predicted "
            "model not yet placed in it: give --fit-model yes)"
        )


def ligand_fit(result: BuildResult) -> list[dict]:
    """Mean Q-score (Pintilie et al. 2020) of each placement's heavy atoms in the map, as docked and as final."""
    heavy = result.ligand.heavy_atom_count
    expected = round(expected_q_score(result.options.resolution), 3)

    def mean_q(pose_xyz: np.ndarray, model: gemmi.Structure | None) -> float | None:
        others = io.heavy_atoms(model).coordinates if model is not None else np.zeros((0, 3))
        ligand_xyz = pose_xyz[:heavy]
        values = q_scores(result.density_map, np.concatenate([ligand_xyz, others]), np.arange(heavy))
        return None if np.all(np.isnan(values)) else round(float(np.nanmean(values)), 3)

    final_model = result.refined_model if result.refined_model is not None else result.model
    fit = []
    for docked, final in zip(result.docked_placements, result.placements):
        fit.append(
            {
                "blob": docked.blob_rank,
                "q_score": mean_q(final.coordinates, final_model),
                "q_score_docked": mean_q(docked.coordinates, result.model),
                "expected_q_score": expected,
            }
        )
    return fit


def refine_placements(
    density: DensityMap,
    model: gemmi.Structure | None,
    ligand: Ligand,
    docking: DockingResult,
    options: BuildOptions,
    progress: Progress,
    parameter_cache: LigandParameterCache | None,
) -> tuple[list[RefinementResult], gemmi.Structure | None]:
    """Refine each placement with its pocket, starting from it and the next-best poses in its blob.

    Placements are refined one after another, each in the protein as the previous ones left it.
    """
    cache = parameter_cache
    if cache is None:  # not `cache or …`: an empty cache is falsy, and the caller's would be dropped
        cache = LigandParameterCache(method=options.refinement.ligand_force_field)
    results: list[RefinementResult] = []
    current = model
    for number, placement in enumerate(docking.placements, start=1):
        progress("refining placements", number - 1, len(docking.placements))
        others = [
            pose.coordinates
            for pose in docking.poses
            if pose.blob_rank == placement.blob_rank and not np.array_equal(pose.coordinates, placement.coordinates)
        ]
        result = refine(
            current, ligand, [placement.coordinates, *others], density, options.resolution, options=options.refinement, cache=cache
        )
        results.append(result)
        if result.refined and current is not None:
            current = result.model
    return results, (current if current is not model else None)


def _precheck(blobs: list[Blob], ligand: Ligand, options: BuildOptions) -> str:
    """Why docking is pointless, or '' when it is worth trying."""
    if not blobs:
        return f"no convincing density: no unexplained density above {options.threshold} σ near the model"
    if all(blob.explanation for blob in blobs):
        return (
            f"no convincing density: every unexplained blob above {options.threshold} σ looks like unmodelled protein "
            f"(the largest: {max(blobs, key=lambda b: b.volume).explanation.removeprefix('unmodelled protein? ')}); "
            "complete the model there, or name the site with --site"
        )
    blobs = [blob for blob in blobs if not blob.explanation]
    sizes = [b.estimated_heavy_atoms for b in blobs if b.estimated_heavy_atoms is not None]
    if options.site is None and sizes and max(sizes) < 0.3 * ligand.heavy_atom_count:
        return (
            f"no convincing density: the ligand has {ligand.heavy_atom_count} heavy atoms but the largest "
            f"unexplained blob holds about {max(sizes):.0f}; check the ligand, lower --threshold, or name the site with --site"
        )
    return ""


def _size_note(blobs: list[Blob], ligand: Ligand) -> str:
    """Say so when the ligand is clearly bigger than any blob (a likely reason nothing fits)."""
    sizes = [b.estimated_heavy_atoms for b in blobs if b.estimated_heavy_atoms is not None]
    if sizes and max(sizes) < 0.6 * ligand.heavy_atom_count:
        return (
            f"; the ligand has {ligand.heavy_atom_count} heavy atoms but the largest unexplained blob holds about "
            f"{max(sizes):.0f}: check the ligand or name the site with --site"
        )
    return ""


def site_center(site: str | tuple | list | np.ndarray, structure: gemmi.Structure | None) -> np.ndarray:
    """A site given as (x, y, z), "x,y,z" or "chain:residue-number" → its centre in Å."""
    if isinstance(site, str) and ":" in site:
        if structure is None:
            raise BadModelError(f"site {site!r} names a residue, but no model was given; give --model or x,y,z")
        chain, _, number = site.partition(":")
        try:
            return io.residue_center(structure, chain.strip(), int(number))
        except ValueError:
            raise LigfitError(f"site {site!r}: write a residue as CHAIN:NUMBER, e.g. A:123") from None
    try:
        values = [float(v) for v in (site.split(",") if isinstance(site, str) else site)]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or not np.all(np.isfinite(values)):
        raise BadOptionError(f"site {site!r}: give x,y,z in Å as three finite numbers (e.g. 12.5,3.0,-7.2) or a residue as CHAIN:NUMBER")
    return np.array(values)


def _describe_source(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, gemmi.Structure):
        return source.name or "gemmi.Structure in memory"
    if isinstance(source, Chem.Mol):
        return Chem.MolToSmiles(source)
    return type(source).__name__ + " in memory"
