"""The refinement's speed-ups change nothing that moves: a real pocket (5SB2, 3 Å) with and without them.

Each electrostatics ``RefinementOptions.solvent`` offers is checked; "reaction-field" (OpenMM's own
nonbonded kernel) is also checked against ε = 4r, the model it stands in for.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import openmm as mm
import pytest

from benchmarks.cases import simulated_case
from benchmarks.refinement import deposited_pose
from ligfit.ligand import load_ligand
from ligfit.refine import LigandParameterCache, RefinementOptions
from ligfit.refine import system as refine_system
from ligfit.refine.system import build_system, find_pocket

ENTRY = "5SB2_1K2"


def _forces_energy_and_trajectory(complex_system) -> tuple[np.ndarray, float, np.ndarray]:
    integrator = mm.LangevinMiddleIntegrator(300.0, 1.0, 0.002)
    integrator.setRandomNumberSeed(1)
    context = mm.Context(complex_system.system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(complex_system.positions * 0.1)
    state = context.getState(getForces=True, getEnergy=True)
    forces = state.getForces(asNumpy=True).value_in_unit(mm.unit.kilojoule_per_mole / mm.unit.nanometer)
    energy = state.getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)
    mm.LocalEnergyMinimizer.minimize(context, 10.0, 50)
    context.setVelocitiesToTemperature(300.0, 1)
    integrator.step(50)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(mm.unit.angstrom)
    return forces, energy, positions


@pytest.fixture(scope="module")
def pocket(data):
    """5SB2's pocket, its ligand at the deposited pose, protonated once."""
    case = simulated_case(data, ENTRY, 3.0)
    ligand = load_ligand(case.smiles, max_conformers=2, seed=0)
    pose = deposited_pose(ligand, case.reference)
    options = RefinementOptions(ligand_force_field="mmff94")
    parameters = LigandParameterCache(method="mmff94").get(ligand.mol)
    site = find_pocket(case.model, pose[: ligand.heavy_atom_count], options)
    protonated = refine_system._protein_topology(case.model, sorted(site.mobile + site.fixed), options.seed)
    return case, ligand, pose, parameters, site, protonated


@pytest.fixture(scope="module", params=["distance-dependent", "reaction-field"])
def pocket_systems(request, pocket):
    """The pocket built as refinement builds it, and again keeping every fixed–fixed term."""
    options = RefinementOptions(ligand_force_field="mmff94", solvent=request.param)
    return _build(pocket, options, keep_fixed_terms=False), _build(pocket, options, keep_fixed_terms=True)


def _build(pocket, options: RefinementOptions, keep_fixed_terms: bool = False):
    """The pocket's system as refinement builds it (``keep_fixed_terms``: with every fixed–fixed term kept)."""
    case, ligand, pose, parameters, site, protonated = pocket
    patch = pytest.MonkeyPatch()
    patch.setattr(refine_system, "_protein_topology", lambda *args: protonated)
    if keep_fixed_terms:
        patch.setattr(refine_system, "_drop_fixed_bonded_terms", lambda system, mobile: None)
        patch.setattr(refine_system, "_fixed_pairs_within", lambda positions, mobile, distance: np.zeros((0, 2), dtype=int))
    try:
        return build_system(case.model, site, ligand, parameters, pose[None], options)
    finally:
        patch.undo()


def test_moving_atoms_feel_the_same_forces_and_follow_the_same_trajectory(pocket_systems):
    fast, full = pocket_systems
    mobile = fast.mobile
    assert np.array_equal(mobile, full.mobile) and 100 < mobile.sum() < len(mobile) - 100  # a pocket with a fixed shell
    fast_forces, fast_energy, fast_positions = _forces_energy_and_trajectory(fast)
    full_forces, full_energy, full_positions = _forces_energy_and_trajectory(full)
    scale = np.abs(full_forces[mobile]).max()
    assert np.abs(fast_forces[mobile] - full_forces[mobile]).max() <= 1e-5 * scale
    # Minimised and annealed for 50 steps from the same seed: what moves ends where it ended before.
    assert np.abs(fast_positions[mobile] - full_positions[mobile]).max() < 1e-3
    assert fast_energy != pytest.approx(full_energy, abs=1.0)  # the fixed–fixed constant is gone from the energy


def test_fixed_fixed_work_is_left_out(pocket_systems):
    fast, full = pocket_systems

    def terms(complex_system) -> int:
        count = 0
        for force in complex_system.system.getForces():
            if isinstance(force, mm.HarmonicBondForce):
                count += force.getNumBonds()
            elif isinstance(force, mm.HarmonicAngleForce):
                count += force.getNumAngles()
            elif isinstance(force, mm.PeriodicTorsionForce):
                count += force.getNumTorsions()
        return count

    def exclusions(complex_system) -> int:
        force = next(f for f in complex_system.system.getForces() if isinstance(f, (mm.CustomNonbondedForce, mm.NonbondedForce)))
        return force.getNumExclusions() if isinstance(force, mm.CustomNonbondedForce) else force.getNumExceptions()

    assert terms(fast) < 0.8 * terms(full)
    assert exclusions(fast) > 2 * exclusions(full)
    assert [type(f).__name__ for f in fast.system.getForces()] == [type(f).__name__ for f in full.system.getForces()]


def _forces(complex_system, kinds: tuple[type, ...] | None = None, coulomb_only: bool = False) -> np.ndarray:
    """Forces (kJ/mol/nm) at the built positions, from the forces of ``kinds`` only (None: all); ``coulomb_only``:
    with every particle's Lennard-Jones well depth set to zero in the pair forces."""
    system = mm.XmlSerializer.clone(complex_system.system)
    for index in reversed(range(system.getNumForces())):
        if kinds is not None and not isinstance(system.getForce(index), kinds):
            system.removeForce(index)
    for force in system.getForces() if coulomb_only else ():
        for particle in range(force.getNumParticles() if isinstance(force, (mm.NonbondedForce, mm.CustomNonbondedForce)) else 0):
            parameters = list(force.getParticleParameters(particle))
            if isinstance(force, mm.NonbondedForce):
                force.setParticleParameters(particle, parameters[0], parameters[1], 0.0)
            else:  # charge, half σ, √ε
                force.setParticleParameters(particle, [*parameters[:2], 0.0])
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(complex_system.positions * 0.1)
    return context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(mm.unit.kilojoule_per_mole / mm.unit.nanometer)


def test_reaction_field_pushes_moving_atoms_as_a_distance_dependent_dielectric_does(pocket):
    """Nonbonded forces on what moves, reaction field against ε = 4r: the same Lennard-Jones terms and Coulomb within
    25 % at contact distances, so nearly the same pushes, and Coulomb alone of the same strength; in OpenMM's own
    nonbonded kernel. Everything else is the same."""
    options = RefinementOptions(ligand_force_field="mmff94")
    distance = _build(pocket, replace(options, solvent="distance-dependent"))
    field = _build(pocket, replace(options, solvent="reaction-field"))
    mobile = distance.mobile
    pairs = (mm.CustomNonbondedForce, mm.NonbondedForce)
    reference, forces = _forces(distance, pairs)[mobile].ravel(), _forces(field, pairs)[mobile].ravel()
    assert np.corrcoef(reference, forces)[0, 1] > 0.95
    assert 0.8 < np.dot(reference, forces) / np.dot(reference, reference) < 1.2
    # Coulomb alone (measured: correlation 0.86, slope 0.91; unscaled charges, ε = 1, would give 3.7, and ε = 16 0.23).
    reference, forces = (
        _forces(distance, pairs, coulomb_only=True)[mobile].ravel(),
        _forces(field, pairs, coulomb_only=True)[mobile].ravel(),
    )
    assert np.corrcoef(reference, forces)[0, 1] > 0.8
    assert 0.8 < np.dot(reference, forces) / np.dot(reference, reference) < 1.2
    assert not any(isinstance(f, mm.CustomNonbondedForce) for f in field.system.getForces())
    others = _forces(distance) - _forces(distance, pairs)
    assert np.allclose(others, _forces(field) - _forces(field, pairs), atol=1e-3 * np.abs(others).max())


def test_hydrogens_sit_where_modellers_own_minimisation_puts_them(pocket):
    """The pocket's hydrogens, minimised over the pairs that hold one, against Modeller's own System over every pair
    (what a model above ``HYDROGEN_GROUP_MAX_ATOMS`` gets)."""
    case, ligand, pose, parameters, site, protonated = pocket
    heavy_atoms = sum(atom.element.symbol != "H" for atom in protonated[0].atoms())
    assert heavy_atoms <= refine_system.HYDROGEN_GROUP_MAX_ATOMS  # this pocket takes the pair group
    patch = pytest.MonkeyPatch()
    patch.setattr(refine_system, "HYDROGEN_GROUP_MAX_ATOMS", 0)
    try:
        reference = refine_system._protein_topology(case.model, sorted(site.mobile + site.fixed), 0)
    finally:
        patch.undo()
    atoms = [(atom.residue.index, atom.name) for atom in protonated[0].atoms()]
    assert atoms == [(atom.residue.index, atom.name) for atom in reference[0].atoms()]
    hydrogens = np.array([name.startswith("H") for _, name in atoms])
    assert 300 < hydrogens.sum() < len(atoms) - 300
    deviation = np.linalg.norm(protonated[1] - reference[1], axis=1)
    assert np.all(deviation[~hydrogens] == 0)
    assert np.median(deviation[hydrogens]) < 0.01 and deviation.max() < 0.15
    assert deviation.max() > 0  # two minimisations, not one taken twice


def test_an_unknown_electrostatics_model_is_refused_naming_the_choices():
    from ligfit.errors import BadOptionError
    from ligfit.refine import WholeModelOptions

    with pytest.raises(BadOptionError, match="unknown solvent model 'ewald'; use one of distance-dependent, reaction-field, gbn2"):
        RefinementOptions(solvent="ewald")
    with pytest.raises(BadOptionError, match="use one of distance-dependent, reaction-field$"):
        WholeModelOptions(solvent="gbn2")
    assert RefinementOptions().solvent == WholeModelOptions().solvent == "reaction-field"
