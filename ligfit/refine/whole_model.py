"""Flexible refinement of a whole protein model against the map (after a rigid or domain fit).

Every protein residue moves in OpenMM under Amber14 (ff14SB, Coulomb with ε = 4r, as the pocket
refinement), the density force of :mod:`ligfit.refine.density` and restraints that keep the fold
where the prediction is sure of it: Cα–Cα distances within ``distance_cutoff`` Å of the start and
backbone φ/ψ, both scaled by the residue's confidence (pLDDT; none below ``free_below``). The
distance restraints saturate beyond ``distance_width`` Å (Geman–McClure), so that a wrong one can
give way to the map; low-confidence loops follow the force field and the map alone.

Protocol: minimise without the map (the reference geometry), choose the map weight as
phenix.real_space_refine does (the largest that bends bonds and angles from that reference by no
more than set targets; :func:`ligfit.refine.density.geometry_map_weight` does this for a ligand),
then minimise and anneal in the map blurred to ``coarse_resolution`` (a wider capture radius), then
in the map at its resolution, and minimise. The map term is tabulated per segment of at most
``segment_residues`` residues, each on its own grid around it, so its spacing does not grow with
the model. The refined model is kept only when its CC_mask did not drop.

Coordinates in Å in the map's frame; nm only inside OpenMM objects.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import gemmi
import numpy as np
import openmm as mm
import openmm.app as app
from openmm import unit
from scipy import ndimage
from scipy.spatial import cKDTree

from ligfit import maps
from ligfit.errors import BadOptionError
from ligfit.maps import DensityMap, scattering_weights
from ligfit.measures.torsions import dihedrals
from ligfit.refine.density import _geometry_rmsd, density_force, potential_grid
from ligfit.refine.errors import RefinementError
from ligfit.refine.options import DEFAULT_SOLVENT
from ligfit.refine.protocol import COOLING_STAGES, FRICTION, MINIMISATION_TOLERANCE, TIMESTEP
from ligfit.refine.system import (
    AMBER_AMINO_ACIDS,
    KJ_PER_KCAL,
    NM,
    RESTRAINT_GROUP,
    _protein_topology,
    _repartition_hydrogen_mass,
    cysteine_templates,
    electrostatics,
    vdw_radius,
)

log = logging.getLogger(__name__)

#: Map weight of the first probe (kJ/mol per σ per carbon-equivalent atom) and its bounds.
PROBE_WEIGHT = 5.0
MIN_WEIGHT, MAX_WEIGHT = 0.5, 200.0
#: Electrostatics the whole-model refinement offers (GBn2 is the pocket's alone).
WHOLE_MODEL_SOLVENT_MODELS = ("distance-dependent", "reaction-field")
#: CC_mask the refined model may lose before the start is kept instead.
CC_LOSS_ALLOWED = 0.002
#: Heavy-atom pairs more than three bonds apart closer than this fraction of their summed vdW radii clash.
CLASH_SCALE = 0.75


@dataclass(frozen=True)
class WholeModelOptions:
    """Restraints, map weight and protocol lengths (Å, kcal/mol/Å² or kcal/mol, K, steps)."""

    map_weight: float | None = None  # kJ/mol per σ per carbon-equivalent atom; None: chosen on the geometry targets
    weight_scale: float = 1.0  # multiplies the chosen weight
    target_bond_rmsd: float = 0.01  # Å the map may bend bonds by, from the map-free minimum
    target_angle_rmsd: float = 1.0  # degrees, likewise for angles
    distance_restraint: float = 2.0  # kcal/mol/Å², Cα–Cα pairs of fully confident residues
    distance_cutoff: float = 8.0  # Cα pairs of one chain closer than this are restrained
    distance_width: float = 2.0  # beyond this deviation a distance restraint saturates
    torsion_restraint: float = 2.0  # kcal/mol, φ/ψ of fully confident residues (k·(1 − cos Δ))
    confident: float = 90.0  # pLDDT at which restraints reach full strength ...
    free_below: float = 50.0  # ... falling linearly to none at this pLDDT
    coarse_resolution: float | None = 6.0  # first pass in the map blurred to this (None: skip)
    minimise_iterations: int = 400
    anneal_steps: int = 1000  # per pass, 2 fs steps, cooled linearly from anneal_temperature to 0 K
    anneal_temperature: float = 300.0
    segment_residues: int = 250  # residues per map grid
    cutoff: float = 7.0  # nonbonded cutoff, Å; 9 Å took 1.5–1.6× as long for the same CC_mask, Q and geometry (docs/benchmarks.md)
    solvent: str = DEFAULT_SOLVENT  # "reaction-field" or "distance-dependent" electrostatics, as RefinementOptions.solvent
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.free_below < self.confident <= 100:
            raise BadOptionError(f"need 0 ≤ free_below < confident ≤ 100, got {self.free_below} and {self.confident}")
        if self.solvent not in WHOLE_MODEL_SOLVENT_MODELS:
            raise BadOptionError(f"unknown solvent model {self.solvent!r}; use one of {', '.join(WHOLE_MODEL_SOLVENT_MODELS)}")
        if self.segment_residues < 20:
            raise BadOptionError(f"segment_residues must be at least 20, got {self.segment_residues}")
        for name in ("distance_restraint", "torsion_restraint", "minimise_iterations", "anneal_steps"):
            if getattr(self, name) < 0:
                raise BadOptionError(f"{name} must not be negative, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelGeometry:
    """Covalent geometry against Amber14's equilibrium values (heavy atoms) and clashes."""

    bond_rmsd: float  # Å
    angle_rmsd: float  # degrees
    clashes: int

    def as_dict(self) -> dict:
        return {"bond_rmsd_A": round(self.bond_rmsd, 4), "angle_rmsd_deg": round(self.angle_rmsd, 3), "clashes": self.clashes}


@dataclass(frozen=True)
class WholeModelRefinement:
    """The refined model (or the input, with the reason) and how its fit and geometry changed."""

    structure: gemmi.Structure
    refined: bool
    message: str
    cc_mask_before: float
    cc_mask_after: float
    residue_cc_before: dict[str, float]  # "A:17" -> CC in that residue's mask
    residue_cc_after: dict[str, float]
    geometry_before: ModelGeometry | None
    geometry_after: ModelGeometry | None
    ca_shift: float  # Cα RMSD from the start, Å
    map_weight: float | None
    residues: int
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    options: WholeModelOptions = field(default_factory=WholeModelOptions)

    @property
    def residue_cc_gain(self) -> float:
        """Mean per-residue CC after minus before, over residues with both."""
        pairs = [(self.residue_cc_after[k], v) for k, v in self.residue_cc_before.items() if k in self.residue_cc_after]
        pairs = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        return float(np.mean([a - b for a, b in pairs])) if pairs else 0.0

    def summary(self) -> dict:
        """Plain JSON-ready data (per-residue CCs rounded; NaN → None)."""

        def rounded(values: dict[str, float]) -> dict:
            return {k: (None if math.isnan(v) else round(v, 3)) for k, v in values.items()}

        return {
            "refined": self.refined,
            "message": self.message,
            "cc_mask_before": round(self.cc_mask_before, 4),
            "cc_mask_after": round(self.cc_mask_after, 4),
            "residue_cc_gain": round(self.residue_cc_gain, 4),
            "geometry_before": None if self.geometry_before is None else self.geometry_before.as_dict(),
            "geometry_after": None if self.geometry_after is None else self.geometry_after.as_dict(),
            "ca_shift_A": round(self.ca_shift, 3),
            "map_weight_kJ_mol_per_sigma": None if self.map_weight is None else round(self.map_weight, 3),
            "residues": self.residues,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "options": self.options.as_dict(),
            "residue_cc_before": rounded(self.residue_cc_before),
            "residue_cc_after": rounded(self.residue_cc_after),
        }


@dataclass
class _ModelSystem:
    """The OpenMM system of the whole model and the bookkeeping to read it back."""

    system: mm.System
    topology: app.Topology
    positions: np.ndarray  # Å, every particle
    elements: list[str]
    protein_atoms: dict[int, tuple[int, int, str]]  # particle → (chain index, residue index, atom name) in the model
    residue_keys: list[tuple[int, int]]  # topology residue → (chain index, residue index)
    heavy_bonds: np.ndarray
    heavy_angles: np.ndarray
    ideal_bonds: np.ndarray  # Å, Amber14 r0 of each heavy bond
    ideal_angles: np.ndarray  # degrees
    excluded: set[tuple[int, int]]  # heavy pairs within three bonds


def refine_whole_model(
    structure: gemmi.Structure,
    density: DensityMap,
    resolution: float,
    *,
    confidence: np.ndarray | None = None,
    options: WholeModelOptions | None = None,
) -> WholeModelRefinement:
    """Refine every protein residue of ``structure`` into ``density`` flexibly; see the module docstring.

    ``confidence``: per-residue pLDDT (0–100), one value per residue with atoms in the first model,
    in model order (as :func:`ligfit.predicted.plddt` returns it); None treats every residue as
    confident. Residues Amber14 does not know (ligands, ions, waters, caps) stay fixed and repel.
    """
    options = options or WholeModelOptions()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - started - sum(timings.values())

    if not resolution > 0:
        raise BadOptionError(f"resolution {resolution} Å is not a resolution; give the map's resolution in Å")
    structure = structure.clone()
    structure.remove_hydrogens()
    labels, residue_index_of = _residue_labels(structure)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=float)
        if confidence.shape != (len(labels),):
            raise BadOptionError(f"confidence has {confidence.size} values but the model has {len(labels)} residues with atoms")
    heavy_xyz, residue_of_atom = _heavy_atoms(structure, residue_index_of)
    if len(heavy_xyz) == 0:
        raise RefinementError("the model has no atoms to refine")
    cc_before, residue_before = model_map_cc(density, structure, resolution, residue_of_atom, labels)
    lap("scoring")
    mobile_keys = [(c, r) for c, chain in enumerate(structure[0]) for r, residue in enumerate(chain) if _refinable(residue)]

    def kept(message: str, notes: tuple[str, ...] = ()) -> WholeModelRefinement:
        log.warning("whole-model refinement: %s", message)
        return WholeModelRefinement(
            structure=structure,
            refined=False,
            message=message,
            cc_mask_before=cc_before,
            cc_mask_after=cc_before,
            residue_cc_before=residue_before,
            residue_cc_after=residue_before,
            geometry_before=None,
            geometry_after=None,
            ca_shift=0.0,
            map_weight=None,
            residues=len(mobile_keys),
            notes=notes,
            seconds=time.perf_counter() - started,
            timings=timings,
            options=options,
        )

    if not mobile_keys:
        return kept("not refined: no protein residue with Amber14 parameters")
    try:
        built = _build(structure, mobile_keys, options)
    except Exception as error:  # OpenMM raises plain Exceptions for residues it cannot match to a template
        return kept(f"not refined: {error}")
    notes = []
    scale = _restraint_scale(confidence, built, residue_index_of, options)
    _add_restraints(built, scale, options)
    protein_heavy = np.array([i in built.protein_atoms and built.elements[i] != "H" for i in range(len(built.elements))])
    weights = np.where(protein_heavy, scattering_weights(built.elements, resolution), 0.0)
    segments = _segments(built, options.segment_residues)
    outside = int(np.sum(~density.contains(built.positions[protein_heavy])))
    if outside:
        notes.append(f"{outside} of {int(protein_heavy.sum())} heavy atoms lie outside the map: they follow the restraints alone")
    geometry_before = _geometry(built, built.positions)
    lap("system")

    integrator = mm.LangevinMiddleIntegrator(
        options.anneal_temperature * unit.kelvin, FRICTION / unit.picosecond, TIMESTEP * unit.picosecond
    )
    integrator.setRandomNumberSeed(options.seed + 1)
    passes = [options.coarse_resolution] if options.coarse_resolution and options.coarse_resolution > resolution else []
    passes.append(resolution)
    forces = _add_map(built, _blurred(density, built.positions[protein_heavy], resolution, passes[0]), weights, segments, resolution)
    context = mm.Context(built.system, integrator, mm.Platform.getPlatformByName("CPU"))
    context.setPositions(built.positions * NM)
    try:
        context.setParameter("map_weight", 0.0)
        mm.LocalEnergyMinimizer.minimize(context, MINIMISATION_TOLERANCE, options.minimise_iterations)
        reference = _positions(context)
        lap("minimise_without_map")
        map_weights = []
        for number, pass_resolution in enumerate(passes):
            if number:
                current = _positions(context)
                for index in sorted(forces, reverse=True):
                    built.system.removeForce(index)
                forces = _add_map(built, density, weights, segments, pass_resolution)
                context.reinitialize(preserveState=False)
                context.setPositions(current * NM)
            map_weight = options.map_weight
            if map_weight is None:
                map_weight = options.weight_scale * _map_weight(context, reference, built, options)
                if number:
                    context.setPositions(current * NM)
            map_weights.append(map_weight)
            context.setParameter("map_weight", map_weight)
            mm.LocalEnergyMinimizer.minimize(context, MINIMISATION_TOLERANCE, options.minimise_iterations)
            _anneal(context, integrator, options, number)
            mm.LocalEnergyMinimizer.minimize(context, MINIMISATION_TOLERANCE, options.minimise_iterations)
            lap(f"pass_{pass_resolution:g}A")
    except mm.OpenMMException as error:
        if "nan" not in str(error).lower():
            raise
        return kept("not refined: the dynamics failed numerically (NaN coordinates)", tuple(notes))
    final = _positions(context)
    if not np.all(np.isfinite(final)):
        return kept("not refined: the dynamics failed numerically (NaN coordinates)", tuple(notes))
    refined = _write_back(structure, built, final)
    cc_after, residue_after = model_map_cc(density, refined, resolution, residue_of_atom, labels)
    geometry_after = _geometry(built, final)
    ca = np.array([particle for particle, (_, _, name) in built.protein_atoms.items() if name == "CA"], int)
    shift = float(np.sqrt(((final[ca] - built.positions[ca]) ** 2).sum(1).mean())) if len(ca) else 0.0
    lap("scoring_after")
    if cc_after < cc_before - CC_LOSS_ALLOWED:
        return kept(f"not refined: the refined model fits the map worse (CC_mask {cc_before:.3f} → {cc_after:.3f})", tuple(notes))
    message = (
        f"refined {len(mobile_keys)} residues flexibly (Amber14, {options.solvent} electrostatics, restraints by confidence, map weight {map_weight:.2f}): "
        f"CC_mask {cc_before:.3f} → {cc_after:.3f}, Cα moved {shift:.2f} Å RMS, bond/angle RMSD "
        f"{geometry_after.bond_rmsd:.3f} Å/{geometry_after.angle_rmsd:.2f}°, clashes {geometry_before.clashes} → {geometry_after.clashes}"
    )
    return WholeModelRefinement(
        structure=refined,
        refined=True,
        message=message,
        cc_mask_before=cc_before,
        cc_mask_after=cc_after,
        residue_cc_before=residue_before,
        residue_cc_after=residue_after,
        geometry_before=geometry_before,
        geometry_after=geometry_after,
        ca_shift=shift,
        map_weight=map_weight,
        residues=len(mobile_keys),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        timings=timings,
        options=options,
    )


# --------------------------------------------------------------------------- fit to the map


def model_map_cc(
    density: DensityMap, structure: gemmi.Structure, resolution: float, residue_of_atom: np.ndarray, labels: list[str]
) -> tuple[float, dict[str, float]]:
    """CC_mask of the model (its density simulated at ``resolution``) and per-residue CC ("A:17" → CC; NaN under 8 voxels).

    The mask holds the voxels within 1.5 + 0.3·resolution Å of a heavy atom, each voxel
    assigned to the residue of its nearest atom.
    """
    xyz, _ = _heavy_atoms(structure, None)
    radius = 1.5 + 0.3 * resolution
    lower, upper = xyz.min(axis=0) - radius - 2, xyz.max(axis=0) + radius + 2
    grid = maps.box(density, (lower + upper) / 2, upper - lower)
    calculated = maps.simulate(structure, resolution, like=grid).values.reshape(-1)
    distance, nearest = cKDTree(xyz).query(grid.grid_points().reshape(-1, 3), distance_upper_bound=radius)
    inside = np.isfinite(distance) & density.contains(grid.grid_points().reshape(-1, 3))
    observed = grid.values.reshape(-1)[inside].astype(float)
    model = calculated[inside].astype(float)
    total = float(np.corrcoef(observed, model)[0, 1]) if len(observed) > 2 and observed.std() > 0 and model.std() > 0 else 0.0
    groups = residue_of_atom[nearest[inside]]
    count = len(labels)
    n = np.bincount(groups, minlength=count).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_o = np.bincount(groups, observed, count) / n
        mean_m = np.bincount(groups, model, count) / n
        do, dm = observed - mean_o[groups], model - mean_m[groups]
        covariance = np.bincount(groups, do * dm, count)
        per_residue = covariance / np.sqrt(np.bincount(groups, do * do, count) * np.bincount(groups, dm * dm, count))
    per_residue[n < 8] = np.nan
    return total, dict(zip(labels, per_residue.tolist()))


def _blurred(density: DensityMap, points: np.ndarray, resolution: float, target: float) -> DensityMap:
    """The map around ``points`` blurred from ``resolution`` to ``target`` Å (Gaussian; unchanged when target ≤ resolution)."""
    if target <= resolution:
        return density
    lower, upper = points.min(axis=0) - 12.0, points.max(axis=0) + 12.0
    near = maps.box(density, (lower + upper) / 2, upper - lower)
    sigma = 0.225 * math.sqrt(target**2 - resolution**2) / near.voxel_size
    return near.with_values(ndimage.gaussian_filter(near.values.astype(np.float32), sigma, mode="constant"))


def _add_map(built: _ModelSystem, density: DensityMap, weights: np.ndarray, segments: list[np.ndarray], resolution: float) -> list[int]:
    """One density force per segment, each on a grid around that segment's atoms; their force indices."""
    indices = []
    for particles in segments:
        grid = potential_grid(density, built.positions[particles], resolution)
        segment_weights = np.zeros(len(weights))
        segment_weights[particles] = weights[particles]
        indices.append(built.system.addForce(density_force(grid, np.arange(len(weights)), segment_weights)))
    return indices


def _map_weight(context: mm.Context, reference: np.ndarray, built: _ModelSystem, options: WholeModelOptions) -> float:
    """The weight at which minimising in the map bends heavy-atom bonds and angles from ``reference`` by the targets.

    The deviations grow in proportion to the weight, so one probe minimisation is rescaled to
    the target reached first (as :func:`ligfit.refine.density.geometry_map_weight`).
    """
    context.setParameter("map_weight", PROBE_WEIGHT)
    mm.LocalEnergyMinimizer.minimize(context, MINIMISATION_TOLERANCE, options.minimise_iterations // 2)
    bent = _positions(context)
    context.setPositions(reference * NM)
    bond_rmsd, angle_rmsd = _geometry_rmsd(bent, reference, built.heavy_bonds, built.heavy_angles)
    ratio = min(options.target_bond_rmsd / max(bond_rmsd, 1e-6), options.target_angle_rmsd / max(angle_rmsd, 1e-6))
    return float(np.clip(PROBE_WEIGHT * ratio, MIN_WEIGHT, MAX_WEIGHT))


def _anneal(context: mm.Context, integrator: mm.LangevinMiddleIntegrator, options: WholeModelOptions, number: int) -> None:
    if options.anneal_steps <= 0:
        return
    context.setVelocitiesToTemperature(options.anneal_temperature * unit.kelvin, options.seed + number)
    for stage in range(COOLING_STAGES):
        integrator.setTemperature(options.anneal_temperature * (1 - stage / COOLING_STAGES) * unit.kelvin)
        integrator.step(max(1, options.anneal_steps // COOLING_STAGES))


def _positions(context: mm.Context) -> np.ndarray:
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)


# --------------------------------------------------------------------------- the system


def _refinable(residue: gemmi.Residue) -> bool:
    names = {atom.name for atom in residue}
    return residue.name in AMBER_AMINO_ACIDS and {"N", "CA", "C"} <= names


def _build(structure: gemmi.Structure, mobile_keys: list[tuple[int, int]], options: WholeModelOptions) -> _ModelSystem:
    """Amber14 system of the protein residues (completed and protonated as the pocket is), other residues as fixed repulsion."""
    topology, positions, keys, _rebuilt = _protein_topology(structure, mobile_keys, options.seed)
    cutoff = options.cutoff * NM
    try:  # as system._amber14_system, with the cysteines' templates given
        system = app.ForceField("amber14-all.xml").createSystem(
            topology,
            nonbondedMethod=app.CutoffNonPeriodic,
            nonbondedCutoff=cutoff * unit.nanometer,
            constraints=None,
            rigidWater=False,
            ignoreExternalBonds=True,
            removeCMMotion=False,
            residueTemplates=cysteine_templates(topology),
        )
    except ValueError as error:
        raise RefinementError(f"Amber14 cannot parametrise the model: {error}") from None
    count = system.getNumParticles()
    nonbonded = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    protein_atoms = {atom.index: (*keys[atom.residue.index], atom.name) for atom in topology.atoms()}
    elements = [atom.element.symbol for atom in topology.atoms()]
    mobile_set = set(mobile_keys)
    environment_xyz, environment_elements = [], []
    for c, chain in enumerate(structure[0]):
        for r, residue in enumerate(chain):
            if (c, r) not in mobile_set:
                for atom in residue:
                    environment_xyz.append(atom.pos.tolist())
                    environment_elements.append(atom.element.name)
    for _ in environment_elements:
        system.addParticle(0.0)
        nonbonded.addParticle(0.0, 0.1, 0.0)
    elements += environment_elements
    positions = np.vstack([positions, np.array(environment_xyz, float).reshape(-1, 3)])
    mobile = np.arange(len(elements)) < count
    _environment_repulsion(system, positions, elements, count)
    electrostatics(options.solvent)(system, nonbonded, mobile, cutoff)
    _repartition_hydrogen_mass(system, topology, mobile)
    bonds, ideal_bonds, angles, ideal_angles = _ideal_geometry(system, elements)
    neighbours: dict[int, set[int]] = {}
    for a, b in topology.bonds():
        neighbours.setdefault(a.index, set()).add(b.index)
        neighbours.setdefault(b.index, set()).add(a.index)
    excluded = set()
    for atom in range(count):
        reach = {atom}
        for _ in range(3):
            reach |= {n for r in reach for n in neighbours.get(r, ())}
        excluded |= {(min(atom, other), max(atom, other)) for other in reach}
    return _ModelSystem(system, topology, positions, elements, protein_atoms, keys, bonds, angles, ideal_bonds, ideal_angles, excluded)


def _environment_repulsion(system: mm.System, positions: np.ndarray, elements: list[str], count: int) -> None:
    """Soft spheres between protein atoms and the fixed residues near them (not those already bonded to them)."""
    if len(elements) == count:
        return
    force = mm.CustomBondForce(f"{30.0 * KJ_PER_KCAL / NM**2}*step(d0-r)*(d0-r)^2")
    force.addPerBondParameter("d0")
    radii = np.array([0.9 if gemmi.Element(e).is_metal else vdw_radius(e) for e in elements])
    tree = cKDTree(positions[count:])
    for atom in range(count):
        for near in tree.query_ball_point(positions[atom], 8.0):
            other = count + near
            contact = 0.85 * (radii[atom] + radii[other])
            if np.linalg.norm(positions[atom] - positions[other]) >= contact:
                force.addBond(atom, int(other), [contact * NM])
    force.setForceGroup(RESTRAINT_GROUP)
    system.addForce(force)


def _ideal_geometry(system: mm.System, elements: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heavy-atom bonds and angles with Amber14's equilibrium lengths (Å) and angles (degrees)."""
    bonds, lengths, angles, values = [], [], [], []
    for force in system.getForces():
        if isinstance(force, mm.HarmonicBondForce):
            for term in range(force.getNumBonds()):
                i, j, r0, _ = force.getBondParameters(term)
                if elements[i] != "H" and elements[j] != "H":
                    bonds.append((i, j))
                    lengths.append(r0.value_in_unit(unit.angstrom))
        elif isinstance(force, mm.HarmonicAngleForce):
            for term in range(force.getNumAngles()):
                i, j, k, theta0, _ = force.getAngleParameters(term)
                if "H" not in (elements[i], elements[j], elements[k]):
                    angles.append((i, j, k))
                    values.append(math.degrees(theta0.value_in_unit(unit.radian)))
    return (
        np.array(bonds, int).reshape(-1, 2),
        np.array(lengths),
        np.array(angles, int).reshape(-1, 3),
        np.array(values),
    )


def _geometry(built: _ModelSystem, positions: np.ndarray) -> ModelGeometry:
    """Bond and angle RMSD from Amber14's equilibrium values, and clashes between heavy atoms more than three bonds apart."""
    b = built.heavy_bonds
    lengths = np.linalg.norm(positions[b[:, 0]] - positions[b[:, 1]], axis=1)
    a = built.heavy_angles
    first, second = positions[a[:, 0]] - positions[a[:, 1]], positions[a[:, 2]] - positions[a[:, 1]]
    cosine = (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    heavy = np.flatnonzero([e != "H" for e in built.elements])
    radii = np.array([vdw_radius(built.elements[i]) for i in heavy])
    pairs = cKDTree(positions[heavy]).query_pairs(CLASH_SCALE * 2 * radii.max(), output_type="ndarray")
    distance = np.linalg.norm(positions[heavy[pairs[:, 0]]] - positions[heavy[pairs[:, 1]]], axis=1)
    close = distance < CLASH_SCALE * (radii[pairs[:, 0]] + radii[pairs[:, 1]])
    clashes = sum(
        1
        for i, j in pairs[close]
        if (min(heavy[i], heavy[j]), max(heavy[i], heavy[j])) not in built.excluded
        and not (gemmi.Element(built.elements[heavy[i]]).is_metal or gemmi.Element(built.elements[heavy[j]]).is_metal)
    )
    return ModelGeometry(
        bond_rmsd=float(np.sqrt(np.mean((lengths - built.ideal_bonds) ** 2))) if len(b) else 0.0,
        angle_rmsd=float(np.sqrt(np.mean((angles - built.ideal_angles) ** 2))) if len(a) else 0.0,
        clashes=int(clashes),
    )


def _restraint_scale(
    confidence: np.ndarray | None, built: _ModelSystem, residue_index_of: dict[tuple[int, int], int], options: WholeModelOptions
) -> np.ndarray:
    """Restraint strength (0–1) of each topology residue from its pLDDT."""
    if confidence is None:
        return np.ones(len(built.residue_keys))
    values = confidence[[residue_index_of[key] for key in built.residue_keys]]
    return np.clip((values - options.free_below) / (options.confident - options.free_below), 0.0, 1.0)


def _add_restraints(built: _ModelSystem, scale: np.ndarray, options: WholeModelOptions) -> None:
    """Cα–Cα distances (saturating) and backbone φ/ψ held to the start, each scaled by its residues' confidence."""
    atoms: list[dict[str, int]] = [{} for _ in built.residue_keys]
    chain_of = np.zeros(len(built.residue_keys), int)
    for atom in built.topology.atoms():
        atoms[atom.residue.index][atom.name] = atom.index
        chain_of[atom.residue.index] = atom.residue.chain.index
    bonded = {(min(a.index, b.index), max(a.index, b.index)) for a, b in built.topology.bonds()}
    xyz = built.positions
    if options.distance_restraint > 0:
        force = mm.CustomBondForce("0.5*k*d^2/(1+(d/width)^2); d=r-r0")
        force.addGlobalParameter("width", options.distance_width * NM)
        force.addPerBondParameter("k")
        force.addPerBondParameter("r0")
        residues = np.array([i for i, names in enumerate(atoms) if "CA" in names and scale[i] > 0], int)
        ca = np.array([atoms[i]["CA"] for i in residues], int)
        if len(ca) > 1:
            for i, j in cKDTree(xyz[ca]).query_pairs(options.distance_cutoff, output_type="ndarray"):
                first, second = residues[i], residues[j]
                if chain_of[first] != chain_of[second] or abs(first - second) < 2:
                    continue
                k = options.distance_restraint * min(scale[first], scale[second]) * KJ_PER_KCAL / NM**2
                force.addBond(int(ca[i]), int(ca[j]), [k, float(np.linalg.norm(xyz[ca[i]] - xyz[ca[j]])) * NM])
        force.setForceGroup(RESTRAINT_GROUP)
        built.system.addForce(force)
    if options.torsion_restraint > 0:
        torsion = mm.CustomTorsionForce("k*(1-cos(theta-theta0))")
        torsion.addPerTorsionParameter("k")
        torsion.addPerTorsionParameter("theta0")
        for index, names in enumerate(atoms):
            if scale[index] <= 0 or not {"N", "CA", "C"} <= names.keys():
                continue
            quads = []
            previous = atoms[index - 1] if index > 0 else {}
            following = atoms[index + 1] if index + 1 < len(atoms) else {}
            if "C" in previous and (min(previous["C"], names["N"]), max(previous["C"], names["N"])) in bonded:
                quads.append((previous["C"], names["N"], names["CA"], names["C"]))
            if "N" in following and (min(names["C"], following["N"]), max(names["C"], following["N"])) in bonded:
                quads.append((names["N"], names["CA"], names["C"], following["N"]))
            for quad in quads:
                torsion.addTorsion(
                    *map(int, quad), [options.torsion_restraint * scale[index] * KJ_PER_KCAL, float(dihedrals(xyz[list(quad)][None])[0])]
                )
        torsion.setForceGroup(RESTRAINT_GROUP)
        built.system.addForce(torsion)


def _segments(built: _ModelSystem, size: int) -> list[np.ndarray]:
    """Heavy protein particles grouped by runs of at most ``size`` consecutive residues of one chain."""
    groups: dict[tuple[int, int], list[int]] = {}
    chain_start: dict[int, int] = {}
    for particle, (chain, residue, _name) in built.protein_atoms.items():
        if built.elements[particle] == "H":
            continue
        start = chain_start.setdefault(chain, residue)
        groups.setdefault((chain, (residue - start) // size), []).append(particle)
    return [np.array(group, int) for _, group in sorted(groups.items())]


# --------------------------------------------------------------------------- in and out


def _residue_labels(structure: gemmi.Structure) -> tuple[list[str], dict[tuple[int, int], int]]:
    """Labels ("A:17") of the residues with atoms, in model order, and each one's (chain, residue) → its index there."""
    labels, index_of = [], {}
    for c, chain in enumerate(structure[0]):
        for r, residue in enumerate(chain):
            if len(residue):
                index_of[(c, r)] = len(labels)
                labels.append(f"{chain.name}:{residue.seqid.num}{residue.seqid.icode.strip()}")
    return labels, index_of


def _heavy_atoms(structure: gemmi.Structure, residue_index_of: dict[tuple[int, int], int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Heavy-atom coordinates (Å) and each one's residue index (of ``residue_index_of``; −1 without it)."""
    xyz, owner = [], []
    for c, chain in enumerate(structure[0]):
        for r, residue in enumerate(chain):
            for atom in residue:
                if not atom.is_hydrogen():
                    xyz.append(atom.pos.tolist())
                    owner.append(residue_index_of[(c, r)] if residue_index_of is not None else -1)
    return np.array(xyz, float).reshape(-1, 3), np.array(owner, int)


def _write_back(structure: gemmi.Structure, built: _ModelSystem, positions: np.ndarray) -> gemmi.Structure:
    """A copy of ``structure`` with its protein heavy atoms at the refined positions (atoms pdbfixer added are not written)."""
    refined = structure.clone()
    for particle, (chain_index, residue_index, name) in built.protein_atoms.items():
        if built.elements[particle] == "H":
            continue
        atom = refined[0][chain_index][residue_index].find_atom(name, "*")
        if atom is not None:
            atom.pos = gemmi.Position(*map(float, positions[particle]))
    return refined


__all__ = ["ModelGeometry", "WholeModelOptions", "WholeModelRefinement", "model_map_cc", "refine_whole_model"]
