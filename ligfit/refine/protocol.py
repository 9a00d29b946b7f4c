"""Joint protein–ligand refinement against the map: minimise, anneal, minimise, from the top docked pose (or several).

The first ``RefinementOptions.starts`` distinct docked poses are refined (default one). Per start pose:
L-BFGS minimisation, then, for the top docked start and any start that fits the map about as well
once minimised, a short Langevin anneal (ligand and pocket side chains moving in the map, backbone
restrained, linear cooling to 0 K) and a final minimisation. Of several starts, the one whose
refined complex has the lowest force field + restraint + map energy wins (:func:`choose_start`); a
start whose ligand changed its stereochemistry on the way is discarded. Ligands no force field
covers, and refinements that fail numerically, leave the docked pose as it was, with a message.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import gemmi
import numpy as np
import openmm as mm
from openmm import unit

from ligfit import io
from ligfit.ligand import Ligand
from ligfit.maps import DensityMap, scattering_weights
from ligfit.measures import ligand_cc
from ligfit.refine.density import density_force, geometry_map_weight, potential_grid
from ligfit.refine.errors import RefinementError, UnsupportedLigandError
from ligfit.refine.metrics import PoseMetrics, heavy_bonds_and_angles, pose_metrics, stereo_signature
from ligfit.refine.options import RefinementOptions
from ligfit.refine.parameters import LigandParameterCache, LigandParameters, check_parametrisable
from ligfit.refine.system import (
    DENSITY_GROUP,
    FORCE_FIELD_GROUPS,
    KJ_PER_KCAL,
    NM,
    RESTRAINT_GROUP,
    ComplexSystem,
    Pocket,
    PocketProtein,
    build_pocket_protein,
    build_system,
    find_pocket,
)
from ligfit.runtime import Progress, StageTimer, no_progress

log = logging.getLogger(__name__)

#: Starts closer than this heavy-atom RMSD (Å) to an earlier one are not refined again.
DISTINCT_START_RMSD = 0.5
MINIMISATION_TOLERANCE = 10.0  # kJ/mol/nm, RMS force at which L-BFGS stops
TIMESTEP = 0.002  # ps
FRICTION = 5.0  # 1/ps
COOLING_STAGES = 10
#: Ligand CC by which a lower-energy start must beat the refined top docked pose to replace it.
CHOICE_CC_MARGIN = 0.02
#: Ligand CC a refinement may lose against a clash-free docked pose before the docked pose is kept instead.
FIT_LOSS_ALLOWED = 0.02


@dataclass(frozen=True)
class StartOutcome:
    """One start pose after refinement; energies in kcal/mol, shift in Å."""

    pose: int  # index into the poses given
    energy: float  # force field + restraints + map
    force_field_energy: float
    map_energy: float
    ligand_cc: float
    shift: float  # heavy-atom RMSD from the start pose (no symmetry)
    stereo_kept: bool
    coordinates: np.ndarray = field(repr=False)  # ligand, all atoms, Å
    protein: np.ndarray = field(repr=False)  # every particle, Å
    annealed: bool = True  # False: minimised only (its fit was too far behind the best start's for an anneal to matter)

    def summary(self) -> dict:
        return {
            "pose": self.pose,
            "annealed": self.annealed,
            "energy_kcal_mol": round(self.energy, 2),
            "force_field_kcal_mol": round(self.force_field_energy, 2),
            "map_kcal_mol": round(self.map_energy, 2),
            "ligand_cc": round(self.ligand_cc, 4),
            "shift_A": round(self.shift, 3),
            "stereo_kept": self.stereo_kept,
        }


@dataclass(frozen=True)
class RefinementResult:
    """The refined complex, or the docked one with the reason it was kept, and measures before and after.

    ``coordinates``: the ligand's atoms (hydrogens too, ligand order), Å, map frame; ``model``:
    the protein with the refined pocket (a copy of the input when nothing was refined).
    """

    refined: bool
    coordinates: np.ndarray
    model: gemmi.Structure | None
    before: PoseMetrics | None
    after: PoseMetrics | None
    message: str
    chosen_pose: int = 0
    starts: tuple[StartOutcome, ...] = ()
    map_weight: float | None = None  # kJ/mol per σ per carbon-equivalent atom
    ligand_force_field: str | None = None
    mobile_residues: int = 0
    fixed_residues: int = 0
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    options: RefinementOptions = field(default_factory=RefinementOptions)

    def complex_structure(self, ligand: Ligand, residue_name: str = "LIG") -> gemmi.Structure:
        """The refined protein with the ligand's heavy atoms added as one residue in a chain of its own."""
        heavy = ligand.heavy_atom_count
        protein = self.model if self.model is not None else _empty_model()
        return io.add_ligand(protein, ligand.elements[:heavy], list(ligand.atom_names[:heavy]), self.coordinates[:heavy], residue_name)

    def summary(self) -> dict:
        """Plain JSON-ready data for ``report.json``."""
        return {
            "refined": self.refined,
            "message": self.message,
            "before": None if self.before is None else self.before.as_dict(),
            "after": None if self.after is None else self.after.as_dict(),
            "chosen_pose": self.chosen_pose,
            "starts": [start.summary() for start in self.starts],
            "map_weight_kJ_mol_per_sigma": None if self.map_weight is None else round(self.map_weight, 3),
            "ligand_force_field": self.ligand_force_field,
            "mobile_residues": self.mobile_residues,
            "fixed_residues": self.fixed_residues,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "options": self.options.as_dict(),
        }


def refine(
    model: gemmi.Structure | None,
    ligand: Ligand,
    poses: list[np.ndarray],
    density: DensityMap,
    resolution: float,
    *,
    options: RefinementOptions | None = None,
    cache: LigandParameterCache | None = None,
    progress: Progress = no_progress,
) -> RefinementResult:
    """Refine the ligand and its pocket into ``density`` from the docked ``poses`` (best first).

    ``poses``: ligand coordinates (all atoms, ligand order, Å), e.g. ``[p.coordinates for p in
    result.poses]`` of one blob; the first ``options.starts`` distinct ones are refined.
    ``model``: the protein without the ligand (None: the map holds the ligand alone).
    ``cache``: ligand parameters shared across calls (its force-field choice wins).
    Returns the refined complex, or the first pose unchanged with the reason in ``message``.
    """
    options = options or RefinementOptions()
    timer = StageTimer()
    poses = [np.asarray(p, dtype=float) for p in poses]
    if not poses:
        raise RefinementError("refine needs at least one docked pose")
    model = model.clone() if model is not None else _empty_model()
    before = pose_metrics(ligand, poses[0], density, resolution, _protein_atoms(model))
    starts = distinct_starts(poses, ligand.heavy_atom_count, options.starts)

    def kept(message: str, notes: tuple[str, ...] = ()) -> RefinementResult:
        log.warning("refinement: %s", message)
        seconds = sum(timer.timings.values()) + timer.lap("until_stopped")
        return RefinementResult(
            False, poses[0], model, before, before, message, notes=notes, seconds=seconds, timings=timer.timings, options=options
        )

    if cache is None:  # not `cache or …`: an empty cache is falsy, and the caller's would be dropped
        cache = LigandParameterCache(method=options.ligand_force_field)
    progress("parametrising the ligand and building the pocket")
    start_poses = np.stack([poses[i] for i in starts])
    pocket = find_pocket(model, start_poses[:, : ligand.heavy_atom_count].reshape(-1, 3), options)
    # The ligand's parameters (GAFF2: AmberTools' programs, ~1 s for 40 atoms, in processes of their own) are computed
    # while the pocket's protein is built (pdbfixer, Modeller, Amber14: ~0.7 s): on two cores the one hides the other.
    if ligand.mol not in cache:
        try:
            check_parametrisable(ligand.mol)  # a metal: nothing to build the pocket for
        except UnsupportedLigandError as error:
            return kept(f"not refined: {error}; the docked pose is kept")
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(cache.get, ligand.mol)
        try:
            protein: PocketProtein | RefinementError = build_pocket_protein(model, pocket, options)
        except RefinementError as error:
            protein = error
        try:
            parameters = pending.result()
        except UnsupportedLigandError as error:
            return kept(f"not refined: {error}; the docked pose is kept")
    timer.lap("ligand_parameters_and_pocket")
    if isinstance(protein, RefinementError):
        return kept(f"not refined: {protein}; the docked pose is kept", pocket.notes)
    try:
        complex_system = build_system(model, pocket, ligand, parameters, start_poses, options, protein=protein)
    except RefinementError as error:
        return kept(f"not refined: {error}; the docked pose is kept", pocket.notes)
    notes = list(complex_system.notes) + ([parameters.note] if parameters.note else [])
    grid, weight, coverage_note = _add_map_term(complex_system, density, resolution, start_poses)
    if coverage_note:
        notes.append(coverage_note)
        log.warning("refinement: %s", coverage_note)
    context = _context(complex_system, options)
    timer.lap("system")

    map_weight = options.map_weight
    if map_weight is None:
        map_weight = options.weight_scale * _ligand_map_weight(parameters, ligand, grid, poses[starts[0]], resolution)
    timer.lap("map_weight")
    context.setParameter("map_weight", map_weight)
    outcomes = _refine_starts(context, complex_system, ligand, poses, starts, density, resolution, options, notes, progress)
    timer.lap("protocol")
    accepted = [o for o in outcomes if o.stereo_kept]
    if len(accepted) < len(outcomes):
        notes.append(f"{len(outcomes) - len(accepted)} start(s) changed the ligand's stereochemistry and were dropped")
    if not accepted:
        return kept(
            "not refined: no start refined without changing the ligand's stereochemistry or failing; the docked pose is kept", tuple(notes)
        )

    best = choose_start(accepted, starts[0])
    refined_model = _write_back(model, complex_system, best.protein)
    after = pose_metrics(ligand, best.coordinates, density, resolution, _protein_atoms(refined_model))
    if after.ligand_cc < before.ligand_cc - FIT_LOSS_ALLOWED and before.clashes == 0 and before.close_contacts == 0:
        # Refinement may trade fit for chemistry, but not lose fit when the docked pose had nothing to repair.
        return kept(
            f"not refined: every refined start fits the map worse than the docked pose (ligand CC {before.ligand_cc:.2f} → "
            f"{after.ligand_cc:.2f}) and the docked pose has no clash to resolve; the docked pose is kept",
            tuple(notes),
        )
    timer.lap("scoring")
    seconds = sum(timer.timings.values())
    message = (
        f"refined with {parameters.method} + Amber14 ({options.solvent} electrostatics) from {len(starts)} start(s): "
        f"ligand CC {before.ligand_cc:.2f} → {after.ligand_cc:.2f}, Q-score {_q(before)} → {_q(after)}, "
        f"clashes {before.clashes} → {after.clashes}"
    )
    return RefinementResult(
        refined=True,
        coordinates=best.coordinates,
        model=refined_model,
        before=before,
        after=after,
        message=message,
        chosen_pose=best.pose,
        starts=tuple(outcomes),
        map_weight=map_weight,
        ligand_force_field=parameters.method,
        mobile_residues=len(pocket.mobile),
        fixed_residues=len(pocket.fixed) + len(pocket.environment),
        notes=tuple(notes),
        seconds=seconds,
        timings=timer.timings,
        options=options,
    )


def _refine_starts(
    context: mm.Context,
    complex_system: ComplexSystem,
    ligand: Ligand,
    poses: list[np.ndarray],
    starts: list[int],
    density: DensityMap,
    resolution: float,
    options: RefinementOptions,
    notes: list[str],
    progress: Progress,
) -> list[StartOutcome]:
    """Minimise every start, then anneal and minimise again those that can still win; a start that fails numerically is noted and dropped.

    The top docked start is always annealed; another only when its minimised ligand CC is within
    ``options.anneal_cc_window`` of the best (None: every start): :func:`choose_start` lets another
    start replace the top one only when it fits the map better, which an anneal that far behind
    does not make it do.
    """
    heavy = ligand.heavy_atom_count
    minimised: dict[int, tuple[np.ndarray, float]] = {}
    for number, pose_index in enumerate(starts):
        progress("refining starts", number, 2 * len(starts))
        positions = _minimise(context, complex_system.with_ligand(poses[pose_index]), options)
        if positions is None:
            notes.append(f"start {pose_index} failed numerically (NaN coordinates) and was dropped")
            continue
        coordinates = positions[complex_system.ligand_atoms[:heavy]]
        minimised[pose_index] = (positions, float(ligand_cc(density, coordinates, ligand.elements[:heavy], resolution)))
    best_cc = max((cc for _, cc in minimised.values()), default=0.0)
    outcomes = []
    for number, (pose_index, (positions, cc)) in enumerate(minimised.items()):
        progress("refining starts", len(starts) + number, 2 * len(starts))
        window = options.anneal_cc_window
        anneal = options.anneal_steps > 0 and (window is None or pose_index == starts[0] or cc >= best_cc - window)
        if anneal:
            positions = _anneal(context, positions, pose_index, options)
            if positions is None:
                notes.append(f"start {pose_index} failed numerically (NaN coordinates) and was dropped")
                continue
        else:
            context.setPositions(positions * NM)
        outcomes.append(_outcome(context, complex_system, ligand, poses[pose_index], pose_index, density, resolution, anneal))
    progress("refining starts", 2 * len(starts), 2 * len(starts))
    return outcomes


def choose_start(outcomes: list[StartOutcome], top_pose: int) -> StartOutcome:
    """The refined top docked pose, unless another start ends lower in energy *and* clearly better in the map.

    Energy alone can prefer a flipped pose of a pseudo-symmetric ligand that the map fits worse
    (GABA in EMD box 6PLY: 0.58 → 3.35 Å); docking already ranked the poses by fit, so a lower
    start must also beat the top one's ligand CC by ``CHOICE_CC_MARGIN`` to replace it.
    """
    lowest = min(outcomes, key=lambda o: o.energy)
    top = next((o for o in outcomes if o.pose == top_pose), None)
    if top is None or lowest is top or lowest.ligand_cc > top.ligand_cc + CHOICE_CC_MARGIN:
        return lowest
    return top


def _q(metrics: PoseMetrics) -> str:
    return "–" if metrics.q_score is None else f"{metrics.q_score:.2f}"


def distinct_starts(poses: list[np.ndarray], heavy: int, count: int) -> list[int]:
    """Indices of up to ``count`` poses, best first, none within DISTINCT_START_RMSD Å of an earlier one."""
    chosen: list[int] = []
    for index, pose in enumerate(poses):
        if len(chosen) == count:
            break
        if all(np.sqrt(((pose[:heavy] - poses[other][:heavy]) ** 2).sum(1).mean()) > DISTINCT_START_RMSD for other in chosen):
            chosen.append(index)
    return chosen


def _ligand_map_weight(parameters: LigandParameters, ligand: Ligand, grid: DensityMap, pose: np.ndarray, resolution: float) -> float:
    """The map weight chosen on the ligand alone at ``pose`` (:func:`ligfit.refine.density.geometry_map_weight`)."""
    order = parameters.atom_order(ligand.mol)  # parameter particle → ligand atom
    particle = np.argsort(order)  # ligand atom → parameter particle
    bonds, angles = heavy_bonds_and_angles(ligand.mol)
    weights = scattering_weights([ligand.elements[i] for i in order], resolution)
    return geometry_map_weight(parameters.system(), grid, pose[order], weights, particle[bonds], particle[angles])


def _add_map_term(
    complex_system: ComplexSystem, density: DensityMap, resolution: float, starts: np.ndarray
) -> tuple[DensityMap, np.ndarray, str]:
    """Add the density force on moving heavy atoms; return its grid, the atoms it acts on, and a note if the map misses some."""
    moving = complex_system.mobile & complex_system.heavy
    points = np.concatenate([complex_system.positions[moving], starts.reshape(-1, 3)])
    grid = potential_grid(density, points, resolution)
    weights = np.where(moving, scattering_weights(complex_system.elements, resolution), 0.0)
    complex_system.system.addForce(density_force(grid, np.arange(len(weights)), weights))
    outside = int(np.sum(~density.contains(complex_system.positions[moving])))
    note = ""
    if outside:
        note = f"{outside} of {int(moving.sum())} moving heavy atoms lie outside the map: they follow the force field alone"
    return grid, weights > 0, note


def _context(complex_system: ComplexSystem, options: RefinementOptions) -> mm.Context:
    integrator = mm.LangevinMiddleIntegrator(
        options.anneal_temperature * unit.kelvin, FRICTION / unit.picosecond, TIMESTEP * unit.picosecond
    )
    integrator.setRandomNumberSeed(options.seed + 1)
    context = mm.Context(complex_system.system, integrator, mm.Platform.getPlatformByName("CPU"))
    context.setPositions(complex_system.positions * NM)
    return context


def _minimise(context: mm.Context, positions: np.ndarray, options: RefinementOptions) -> np.ndarray | None:
    """L-BFGS from ``positions`` (Å); the minimised positions, or None when they are not finite."""
    context.setPositions(positions * NM)
    try:
        mm.LocalEnergyMinimizer.minimize(context, MINIMISATION_TOLERANCE, options.minimise_iterations)
    except mm.OpenMMException as error:
        if "nan" not in str(error).lower():
            raise
        return None
    minimised = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return minimised if np.all(np.isfinite(minimised)) else None


def _anneal(context: mm.Context, positions: np.ndarray, pose_index: int, options: RefinementOptions) -> np.ndarray | None:
    """Langevin dynamics cooled linearly from ``options.anneal_temperature`` to 0 K, then L-BFGS; None when it blew up."""
    context.setPositions(positions * NM)
    integrator = context.getIntegrator()
    try:
        context.setVelocitiesToTemperature(options.anneal_temperature * unit.kelvin, options.seed + pose_index)
        for stage in range(COOLING_STAGES):
            integrator.setTemperature(options.anneal_temperature * (1 - stage / COOLING_STAGES) * unit.kelvin)
            integrator.step(max(1, options.anneal_steps // COOLING_STAGES))
    except mm.OpenMMException as error:
        if "nan" not in str(error).lower():
            raise
        return None
    annealed = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return _minimise(context, annealed, options) if np.all(np.isfinite(annealed)) else None


def _outcome(
    context: mm.Context,
    complex_system: ComplexSystem,
    ligand: Ligand,
    start: np.ndarray,
    pose_index: int,
    density: DensityMap,
    resolution: float,
    annealed: bool,
) -> StartOutcome:
    """The refined start as the context now holds it: energies, fit, shift and stereochemistry."""
    state = context.getState(getPositions=True, getEnergy=True)
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    coordinates = positions[complex_system.ligand_atoms]
    heavy = ligand.heavy_atom_count

    def energy(groups: set[int]) -> float:
        return context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_KCAL

    return StartOutcome(
        pose=pose_index,
        energy=state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / KJ_PER_KCAL,
        force_field_energy=energy(FORCE_FIELD_GROUPS) + energy({RESTRAINT_GROUP}),
        map_energy=energy({DENSITY_GROUP}),
        ligand_cc=float(ligand_cc(density, coordinates[:heavy], ligand.elements[:heavy], resolution)),
        shift=float(np.sqrt(((coordinates[:heavy] - start[:heavy]) ** 2).sum(1).mean())),
        stereo_kept=stereo_signature(ligand.mol, coordinates) == stereo_signature(ligand.mol, start),
        coordinates=coordinates,
        protein=positions,
        annealed=annealed,
    )


def _write_back(model: gemmi.Structure, complex_system: ComplexSystem, positions: np.ndarray) -> gemmi.Structure:
    """A copy of ``model`` with the moving residues' atoms at their refined positions (atoms the model lacks are not added)."""
    refined = model.clone()
    for particle, (chain_index, residue_index, name) in complex_system.protein_atoms.items():
        if not complex_system.mobile[particle]:
            continue
        residue = refined[0][chain_index][residue_index]
        atoms = [atom for atom in residue if atom.name == name]
        if atoms:
            atoms[0].pos = gemmi.Position(*map(float, positions[particle]))
    return refined


def _protein_atoms(model: gemmi.Structure) -> io.AtomTable | None:
    table = io.heavy_atoms(model)
    return table if len(table) else None


def _empty_model() -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    return structure


__all__ = ["Pocket", "RefinementResult", "StartOutcome", "distinct_starts", "refine"]
