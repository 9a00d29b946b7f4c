"""The refinement system: the pocket around the ligand, its force field, and what stays fixed.

Detect, let the caller edit, then apply (as pdbfixer does): :func:`find_pocket` says which
residues move, which are kept fixed around them, and which have no force-field parameters;
:func:`build_system` turns that into an OpenMM System. Only the pocket is built: residues
near the ligand are completed with pdbfixer and protonated with OpenMM's Modeller (a whole
300-residue chain takes minutes), the protein gets Amber14 (ff14SB), the ligand its own
parameters (:mod:`ligfit.refine.parameters`). Residues Amber14 does not know (other ligands,
ions, waters, modified residues) stay fixed and only repel the moving atoms.

Chain breaks, which a pocket has many of, are not termini: residues on both sides of a gap
keep their internal (neutral) templates. Termini are charged only where the model says so
(an OXT atom; a chain's first residue numbered 1 or lower).

Coordinates are Å here as everywhere in ligfit; nm appear only inside OpenMM objects.
"""

from __future__ import annotations

import functools
import io
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import gemmi
import numpy as np
import openmm as mm
import openmm.app as app
from openmm import unit
from rdkit import Chem
from scipy.spatial import cKDTree

from ligfit.ligand import Ligand
from ligfit.measures.torsions import TorsionPreferences
from ligfit.refine.errors import RefinementError
from ligfit.refine.options import RefinementOptions
from ligfit.refine.parameters import LigandParameters

log = logging.getLogger(__name__)

NM = 0.1  # nm per Å
KJ_PER_KCAL = 4.184
#: kJ/mol·nm/e², Coulomb's constant in OpenMM units.
COULOMB = 138.935456
#: Residues Amber14 (ff14SB) parametrises, with their protonation variants.
AMBER_AMINO_ACIDS = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL HID HIE HIP CYX ASH GLH LYN CYM".split()
)
BACKBONE = frozenset({"N", "CA", "C", "O", "OXT"})
WATERS = frozenset({"HOH", "WAT", "DOD"})
#: Force groups: force field, restraints, density, and the environment's repulsion (a nonbonded
#: force with exclusions of its own must sit in a group of its own on OpenMM's CPU platform).
FORCE_FIELD_GROUP, RESTRAINT_GROUP, DENSITY_GROUP, ENVIRONMENT_GROUP = 0, 1, 2, 3
FORCE_FIELD_GROUPS = {FORCE_FIELD_GROUP, ENVIRONMENT_GROUP}
#: Soft-sphere repulsion from atoms without parameters: contact at this fraction of the summed vdW radii.
ENVIRONMENT_CONTACT = 0.85
ENVIRONMENT_FORCE = 30.0  # kcal/mol/Å²
#: Heavy atoms up to which the pocket's new hydrogens are minimised over pairs holding one (:class:`_HydrogenPlacement`):
#: a pocket holds about 400–1,000. Minimisation at 458 / 1,495 / 2,347 / 4,296 heavy atoms: 0.18 / 1.2 / 3.4 / 10 s, Modeller's
#: System 0.48 / 1.7 / 3.0 / 5.5 s (the interaction group has no neighbour list).
HYDROGEN_GROUP_MAX_ATOMS = 1500
HYDROGEN_MASS = 3.0  # Da, repartitioned from the bonded heavy atom of moving residues and the ligand

_PERIODIC_TABLE = Chem.GetPeriodicTable()
CHARGE_PRODUCT = unit.elementary_charge**2
#: "reaction-field" electrostatics: the dielectric inside the cutoff (a protein interior's), and the solvent's beyond it.
REACTION_FIELD_DIELECTRIC = 4.0
REACTION_FIELD_SOLVENT = 78.5


def magnitude(quantity: unit.Quantity, wanted: unit.Unit) -> float:
    """The number in ``wanted`` units: ``value_in_unit`` without its conversion machinery when the units already agree
    (the same float; OpenMM returns its own units, and a pocket asks tens of thousands of times)."""
    return quantity._value if quantity.unit == wanted else quantity.value_in_unit(wanted)


@dataclass(frozen=True)
class Pocket:
    """Residues of the model's first model, as (chain index, residue index), by role in the refinement."""

    mobile: tuple[tuple[int, int], ...]
    fixed: tuple[tuple[int, int], ...]
    environment: tuple[tuple[int, int], ...]  # no Amber14 parameters: kept fixed, repel only
    notes: tuple[str, ...] = ()


@dataclass
class ComplexSystem:
    """The OpenMM System of pocket + ligand, with the bookkeeping to read results back.

    Particles: protein atoms (Modeller order), then the ligand (its own atom order), then
    environment atoms. ``positions`` in Å.
    """

    system: mm.System
    topology: app.Topology
    positions: np.ndarray
    elements: list[str]
    ligand_atoms: np.ndarray  # particle index of each ligand atom, ligand order
    mobile: np.ndarray  # bool per particle: free to move (ligand and moving residues)
    protein_atoms: dict[int, tuple[int, int, str]]  # particle → (chain index, residue index, atom name) in the model
    ligand_method: str
    rebuilt_atoms: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def heavy(self) -> np.ndarray:
        return np.array([e != "H" for e in self.elements])

    def with_ligand(self, ligand_coordinates: np.ndarray) -> np.ndarray:
        """All positions (Å) with the ligand at ``ligand_coordinates`` (all atoms, ligand order)."""
        positions = self.positions.copy()
        positions[self.ligand_atoms] = ligand_coordinates
        return positions


# --------------------------------------------------------------------------- detect


def find_pocket(model: gemmi.Structure, ligand_heavy_coordinates: np.ndarray, options: RefinementOptions) -> Pocket:
    """Which residues move (a heavy atom within ``mobile_radius`` of the ligand), stay fixed, or have no parameters."""
    tree = cKDTree(np.asarray(ligand_heavy_coordinates, dtype=float).reshape(-1, 3))
    mobile, fixed, environment, unknown, incomplete = [], [], [], [], []
    for chain_index, chain in enumerate(model[0]):
        for residue_index, residue in enumerate(chain):
            heavy = np.array([a.pos.tolist() for a in residue if not a.is_hydrogen()]).reshape(-1, 3)
            if len(heavy) == 0:
                continue
            distance = float(tree.query(heavy)[0].min())
            if distance > options.shell_radius:
                continue
            key = (chain_index, residue_index)
            label = f"{chain.name}:{residue.seqid.num}{residue.seqid.icode.strip()} {residue.name}"
            if residue.name not in AMBER_AMINO_ACIDS:
                environment.append(key)
                if residue.name not in WATERS:
                    unknown.append(label)
            elif not {"N", "CA", "C"} <= {a.name for a in residue}:
                environment.append(key)
                incomplete.append(label)
            elif distance <= options.mobile_radius:
                mobile.append(key)
            else:
                fixed.append(key)
    notes = []
    if unknown:
        notes.append(f"kept fixed, without force-field parameters (they only repel): {', '.join(unknown)}")
    if incomplete:
        notes.append(f"kept fixed, backbone incomplete: {', '.join(incomplete)}")
    return Pocket(tuple(mobile), tuple(fixed), tuple(environment), tuple(notes))


# --------------------------------------------------------------------------- apply


@dataclass
class PocketProtein:
    """The pocket's protein alone as an OpenMM System (what :func:`build_system` adds the ligand to), positions in Å."""

    system: mm.System
    topology: app.Topology
    positions: np.ndarray
    residue_keys: list[tuple[int, int]]  # (chain index, residue index) in the model of each topology residue
    rebuilt_atoms: int = 0


def build_pocket_protein(
    model: gemmi.Structure, pocket: Pocket, options: RefinementOptions, force_field: app.ForceField | None = None
) -> PocketProtein:
    """The pocket's residues completed, protonated and given Amber14; bonded terms among fixed atoms only are left out.

    Needs nothing of the ligand: :func:`ligfit.refine.refine` builds it while the ligand is parametrised.
    """
    protein_residues = sorted(pocket.mobile + pocket.fixed)
    if not protein_residues:  # a map of the ligand alone, or nothing with parameters nearby
        system = mm.System()
        empty = mm.NonbondedForce()
        empty.setNonbondedMethod(mm.NonbondedForce.CutoffNonPeriodic)
        system.addForce(empty)
        return PocketProtein(system, app.Topology(), np.zeros((0, 3)), [])
    topology, positions, residue_keys, rebuilt = _protein_topology(model, protein_residues, options.seed)
    system = _amber14_system(topology, force_field or amber14(), options.cutoff * NM)
    moving_residues = set(pocket.mobile)
    _drop_fixed_bonded_terms(system, np.array([residue_keys[atom.residue.index] in moving_residues for atom in topology.atoms()]))
    return PocketProtein(system, topology, positions, residue_keys, rebuilt)


def build_system(
    model: gemmi.Structure,
    pocket: Pocket,
    ligand: Ligand,
    parameters: LigandParameters,
    ligand_poses: np.ndarray,
    options: RefinementOptions,
    force_field: app.ForceField | None = None,
    protein: PocketProtein | None = None,
) -> ComplexSystem:
    """The OpenMM System for ``pocket`` + ligand; ``ligand_poses`` (starts, atoms, 3) Å, the first sets the positions.

    ``protein``: the pocket's protein from :func:`build_pocket_protein` when already built (it is used up).
    """
    ligand_poses = np.asarray(ligand_poses, dtype=float).reshape(-1, ligand.mol.GetNumAtoms(), 3)
    cutoff = options.cutoff * NM
    protein = protein or build_pocket_protein(model, pocket, options, force_field)
    system, topology, positions, residue_keys, rebuilt = (
        protein.system,
        protein.topology,
        protein.positions,
        protein.residue_keys,
        protein.rebuilt_atoms,
    )
    protein_count = system.getNumParticles()
    mobile_keys = set(pocket.mobile)
    protein_atoms = {atom.index: (*residue_keys[atom.residue.index], atom.name) for atom in topology.atoms()}
    mobile = [residue_keys[atom.residue.index] in mobile_keys for atom in topology.atoms()]
    elements = [atom.element.symbol for atom in topology.atoms()]

    nonbonded = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    ligand_atoms = _add_ligand(system, nonbonded, ligand, parameters)
    if options.torsion_preference_weight > 0:
        system.addForce(torsion_preference_force(ligand, ligand_atoms, options.torsion_preference_weight))
    topology = _with_ligand_residue(topology, ligand)
    mobile += [True] * len(ligand_atoms)
    elements += ligand.elements
    positions = np.vstack([positions, ligand_poses[0]])

    environment_xyz, environment_elements = _environment_atoms(model, pocket.environment)
    for _ in environment_elements:
        system.addParticle(0.0)
        nonbonded.addParticle(0.0, 0.1, 0.0)
    mobile += [False] * len(environment_elements)
    elements += environment_elements
    positions = np.vstack([positions, environment_xyz])
    mobile_mask = np.array(mobile)

    # How far a moving atom may travel: side chains a few Å, ligand atoms to any start pose and beyond.
    reach = np.where(mobile_mask, options.side_chain_tolerance + 6.0, 0.0)
    spread = np.linalg.norm(ligand_poses - ligand_poses[:1], axis=-1).max(axis=0)
    reach[ligand_atoms] = spread + 6.0
    _add_environment_repulsion(system, positions, elements, mobile_mask, reach, protein_count, protein_count + len(ligand_atoms))
    if options.solvent == "gbn2":
        _add_gbn2(system, nonbonded, topology, elements, protein_count + len(ligand_atoms), cutoff)
    else:
        electrostatics(options.solvent)(system, nonbonded, mobile_mask, cutoff, positions)
    _repartition_hydrogen_mass(system, topology, mobile_mask)
    for index in np.flatnonzero(~mobile_mask):
        system.setParticleMass(int(index), 0.0)
    _add_restraints(system, positions, protein_atoms, mobile_mask, elements, options)
    notes = list(pocket.notes)
    if rebuilt:
        notes.append(f"rebuilt {rebuilt} missing heavy atoms near the ligand with pdbfixer")
    return ComplexSystem(system, topology, positions, elements, ligand_atoms, mobile_mask, protein_atoms, parameters.method, rebuilt, notes)


@functools.cache
def amber14() -> app.ForceField:
    """OpenMM's Amber14 (ff14SB) force field, read once per process (0.2–0.5 s of XML each time, once per blob before).

    ``createSystem`` only reads it: every pocket built from it gets the same parameters.
    """
    return app.ForceField("amber14-all.xml")


def _amber14_system(topology: app.Topology, force_field: app.ForceField, cutoff: float) -> mm.System:
    try:
        return force_field.createSystem(
            topology,
            nonbondedMethod=app.CutoffNonPeriodic,
            nonbondedCutoff=cutoff * unit.nanometer,
            constraints=None,
            rigidWater=False,
            ignoreExternalBonds=True,  # chain breaks are not termini
            removeCMMotion=False,
            residueTemplates=cysteine_templates(topology),
        )
    except Exception as error:  # OpenMM raises plain Exception for residues it cannot match to one template
        raise RefinementError(f"Amber14 cannot parametrise the pocket: {error}") from None


def cysteine_templates(topology: app.Topology) -> dict:
    """The template of each cysteine without HG: CYX when its SG is bonded, else CYM.

    With external bonds ignored, as chain breaks need, a cysteine without HG (a disulfide in the
    pocket, or one whose partner lies outside it) matches both and OpenMM refuses to choose.
    """
    bonded_sg = {atom for bond in topology.bonds() for atom in bond if bond[0].name == "SG" and bond[1].name == "SG"}
    return {
        residue: ("CYX" if any(atom in bonded_sg for atom in residue.atoms()) else "CYM")
        for residue in topology.residues()
        if residue.name == "CYS" and "HG" not in {atom.name for atom in residue.atoms()}
    }


def _protein_topology(
    model: gemmi.Structure, residues: list[tuple[int, int]], seed: int
) -> tuple[app.Topology, np.ndarray, list[tuple[int, int]], int]:
    """Pocket residues completed by pdbfixer and protonated by Modeller; positions in Å.

    Returns the topology, positions, the (chain, residue) key of each topology residue, and
    how many heavy atoms pdbfixer added.
    """
    from pdbfixer import PDBFixer

    crop, keys, charged_n_termini = _crop(model, residues)
    if not keys:
        raise RefinementError("no protein residue with Amber14 parameters near the ligand")
    fixer = PDBFixer(pdbfile=io.StringIO(crop.make_pdb_string()))
    if fixer.topology.getNumResidues() != len(keys):
        raise RefinementError(f"the pocket has {len(keys)} residues but OpenMM read {fixer.topology.getNumResidues()}")
    fixer.missingResidues = {}
    fixer.findMissingAtoms()
    fixer.missingTerminals = {}
    rebuilt = sum(len(atoms) for atoms in fixer.missingAtoms.values())
    if rebuilt:
        fixer.addMissingAtoms(seed=seed)
    modeller = app.Modeller(fixer.topology, fixer.positions)
    modeller.delete(_gap_bonds(modeller))
    _add_hydrogens(modeller, seed)
    first_residues = {next(iter(chain.residues())) for chain in modeller.topology.chains()}
    extra = [
        atom
        for atom in modeller.topology.atoms()
        if atom.residue in first_residues and atom.residue.index not in charged_n_termini and atom.name in ("H2", "H3")
    ]
    modeller.delete(extra)
    positions = np.array(modeller.getPositions().value_in_unit(unit.angstrom))
    return modeller.topology, positions, keys, rebuilt


def _add_hydrogens(modeller: app.Modeller, seed: int) -> None:
    """Modeller's hydrogens at pH 7, the same in every run.

    Modeller starts the hydrogens it adds at positions drawn from Python's global ``random`` and then
    minimises them on OpenMM's CPU platform: unseeded, and on several threads (whose sums come in any
    order), a pocket's hydroxyl and amine hydrogens came out differently (up to 2 Å) in every run, and so
    did the refinement. The draw is seeded and the minimisation runs on one thread; both global settings
    are put back. Up to :data:`HYDROGEN_GROUP_MAX_ATOMS` heavy atoms (a pocket) the minimisation's terms are Modeller's
    own, given as :class:`_HydrogenPlacement`; a larger model gets Modeller's System as it comes.
    """
    state = random.getstate()
    platform = mm.Platform.getPlatformByName("CPU")
    threads = platform.getPropertyDefaultValue("Threads")
    random.seed(seed)
    platform.setPropertyDefaultValue("Threads", "1")
    try:
        small = modeller.topology.getNumAtoms() <= HYDROGEN_GROUP_MAX_ATOMS
        modeller.addHydrogens(forcefield=_HydrogenPlacement() if small else None, pH=7.0, platform=platform)
    finally:
        platform.setPropertyDefaultValue("Threads", threads)
        random.setstate(state)


class _HydrogenPlacement(app.ForceField):
    """The terms Modeller minimises new hydrogens with when given no force field, its repulsion over pairs holding a hydrogen.

    Modeller's own System (``addHydrogens`` without a force field) repels every pair of atoms within 1 nm
    (100/(r/0.1 nm)⁴ kJ/mol), holds X–H bonds at 1 Å and hydroxyl angles; the heavy atoms do not move. A
    custom pair force costs OpenMM's CPU platform the same per pair whatever its expression, and pairs of
    heavy atoms, which move nothing, were half of them: this System leaves them out (an interaction group,
    hydrogens against every atom) and is otherwise the same. The hydrogens came out within 0.11 Å of
    Modeller's on 7BTT's and 6T88's pockets, the minimisation 0.39–0.48 s → 0.14–0.18 s. An interaction
    group has no neighbour list (hydrogens × atoms pairs are checked), so on a whole 574-residue model it
    took twice Modeller's time (docs/benchmarks.md, Speed per blob, "Round 16").
    """

    def createSystem(self, topology: app.Topology, **_: object) -> mm.System:  # noqa: N802 (OpenMM's name)
        system = mm.System()
        repulsion = mm.CustomNonbondedForce("100/(r/0.1)^4")
        repulsion.setNonbondedMethod(mm.CustomNonbondedForce.CutoffNonPeriodic)
        repulsion.setCutoffDistance(1.0)
        bonds, angles = mm.HarmonicBondForce(), mm.HarmonicAngleForce()
        for force in (repulsion, bonds, angles):
            system.addForce(force)
        neighbours: list[list[app.topology.Atom]] = []
        for _atom in topology.atoms():
            system.addParticle(1.0)  # Modeller makes the atoms it did not add immobile (mass 0)
            repulsion.addParticle([])
            neighbours.append([])
        for first, second in topology.bonds():
            if app.element.hydrogen in (first.element, second.element):
                bonds.addBond(first.index, second.index, 0.1, 100000.0)
            neighbours[first.index].append(second)
            neighbours[second.index].append(first)
        for atom in topology.atoms():
            bonded = neighbours[atom.index]
            if atom.element is app.element.oxygen and len(bonded) == 2 and app.element.hydrogen in (a.element for a in bonded):
                angle = (
                    (1.824, 836.8)
                    if atom.residue.name == "HOH" and all(a.element is app.element.hydrogen for a in bonded)
                    else (1.894, 460.24)
                )
                angles.addAngle(bonded[0].index, atom.index, bonded[1].index, *angle)
        hydrogens = [atom.index for atom in topology.atoms() if atom.element is app.element.hydrogen]
        repulsion.addInteractionGroup(hydrogens, range(topology.getNumAtoms()))
        return system


def _crop(model: gemmi.Structure, residues: list[tuple[int, int]]) -> tuple[gemmi.Structure, list[tuple[int, int]], set[int]]:
    """The residues as a new structure (one chain per model chain, hydrogens removed), their keys, and charged N-termini."""
    crop = gemmi.Structure()
    crop.cell = model.cell
    crop_model = gemmi.Model(1)
    keys, charged = [], set()
    by_chain: dict[int, list[int]] = {}
    for chain_index, residue_index in residues:
        by_chain.setdefault(chain_index, []).append(residue_index)
    names = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for number, (chain_index, residue_indices) in enumerate(sorted(by_chain.items())):
        source = model[0][chain_index]
        chain = gemmi.Chain(names[number % len(names)])
        first = _first_polymer_residue(source)
        for residue_index in sorted(residue_indices):
            residue = source[residue_index].clone()
            for index in reversed(range(len(residue))):
                if residue[index].is_hydrogen():
                    del residue[index]
            residue.het_flag = "A"
            if residue_index == first and residue.seqid.num <= 1 and residue_index == min(residue_indices):
                charged.add(len(keys))
            chain.add_residue(residue)
            keys.append((chain_index, residue_index))
        crop_model.add_chain(chain)
    crop.add_model(crop_model)
    return crop, keys, charged


def _first_polymer_residue(chain: gemmi.Chain) -> int:
    for index, residue in enumerate(chain):
        if residue.name in AMBER_AMINO_ACIDS:
            return index
    return -1


def _gap_bonds(modeller: app.Modeller) -> list:
    """Peptide bonds that OpenMM assumed between residues that are not actually bonded (chain breaks)."""
    positions = np.array(modeller.getPositions().value_in_unit(unit.nanometer))
    return [
        bond
        for bond in modeller.topology.bonds()
        if bond[0].residue != bond[1].residue and np.linalg.norm(positions[bond[0].index] - positions[bond[1].index]) > 0.2
    ]


def torsion_preference_force(ligand: Ligand, ligand_atoms: np.ndarray, weight: float) -> mm.PeriodicTorsionForce:
    """The ligand's crystal-structure torsion potentials (``TorsionPreferences``: Σₖ Vₖsₖ cos kφ) times ``weight``, on
    its particles ``ligand_atoms`` (ligand order); each term Vₖsₖ cos kφ is |Vₖsₖ| (1 + cos(kφ − 0 or π)) less a constant."""
    preferences = TorsionPreferences.of(ligand.mol)
    force = mm.PeriodicTorsionForce()
    for atoms, coefficients in zip(preferences.atoms, preferences.coefficients):
        particles = [int(ligand_atoms[atom]) for atom in atoms]
        for order, coefficient in enumerate(coefficients, start=1):
            if coefficient != 0.0:
                phase = 0.0 if coefficient > 0 else np.pi
                force.addTorsion(*particles, order, phase, abs(float(coefficient)) * weight * KJ_PER_KCAL)
    return force


def _add_ligand(system: mm.System, nonbonded: mm.NonbondedForce, ligand: Ligand, parameters: LigandParameters) -> np.ndarray:
    """Append the ligand's particles and forces to ``system``; return their particle indices in ligand order."""
    ligand_system = parameters.system()
    order = parameters.atom_order(ligand.mol)  # parameter particle → ligand atom
    offset = system.getNumParticles()
    index = offset + order  # parameter particle → complex particle
    inverse = np.argsort(order)  # ligand atom → parameter particle
    for atom in range(len(order)):
        system.addParticle(ligand_system.getParticleMass(int(inverse[atom])))
    for force in ligand_system.getForces():
        if isinstance(force, mm.NonbondedForce):
            for atom in range(len(order)):
                nonbonded.addParticle(*force.getParticleParameters(int(inverse[atom])))
            for exception in range(force.getNumExceptions()):
                i, j, charge_product, sigma, epsilon = force.getExceptionParameters(exception)
                nonbonded.addException(int(index[i]), int(index[j]), charge_product, sigma, epsilon)
        else:
            copy = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(force))
            _reindex(copy, index)
            copy.setForceGroup(FORCE_FIELD_GROUP)
            system.addForce(copy)
    return offset + np.arange(len(order))


def _reindex(force: mm.Force, index: np.ndarray) -> None:
    """Renumber the particles of a bonded force through ``index``."""
    if isinstance(force, (mm.HarmonicBondForce, mm.CustomBondForce)):
        for term in range(force.getNumBonds()):
            i, j, *rest = force.getBondParameters(term)
            force.setBondParameters(term, int(index[i]), int(index[j]), *rest)
    elif isinstance(force, (mm.HarmonicAngleForce, mm.CustomAngleForce)):
        for term in range(force.getNumAngles()):
            i, j, k, *rest = force.getAngleParameters(term)
            force.setAngleParameters(term, int(index[i]), int(index[j]), int(index[k]), *rest)
    elif isinstance(force, (mm.PeriodicTorsionForce, mm.CustomTorsionForce)):
        for term in range(force.getNumTorsions()):
            i, j, k, m, *rest = force.getTorsionParameters(term)
            force.setTorsionParameters(term, int(index[i]), int(index[j]), int(index[k]), int(index[m]), *rest)
    elif isinstance(force, mm.CustomCompoundBondForce):
        for term in range(force.getNumBonds()):
            particles, values = force.getBondParameters(term)
            force.setBondParameters(term, [int(index[p]) for p in particles], values)
    else:
        raise TypeError(f"cannot merge a {type(force).__name__} from the ligand parameters")


def _with_ligand_residue(topology: app.Topology, ligand: Ligand) -> app.Topology:
    """A copy of the protein topology with the ligand as one more chain (used for GBn2 radii and output)."""
    combined = app.Topology()
    atoms = {}
    for chain in topology.chains():
        new_chain = combined.addChain(chain.id)
        for residue in chain.residues():
            new_residue = combined.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                atoms[atom] = combined.addAtom(atom.name, atom.element, new_residue)
    for first, second in topology.bonds():
        combined.addBond(atoms[first], atoms[second])
    residue = combined.addResidue(ligand.name, combined.addChain("L"))
    ligand_atoms = [
        combined.addAtom(name, app.Element.getBySymbol(element), residue) for name, element in zip(ligand.atom_names, ligand.elements)
    ]
    for bond in ligand.mol.GetBonds():
        combined.addBond(ligand_atoms[bond.GetBeginAtomIdx()], ligand_atoms[bond.GetEndAtomIdx()])
    return combined


def _environment_atoms(model: gemmi.Structure, residues: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, list[str]]:
    coordinates, elements = [], []
    for chain_index, residue_index in residues:
        for atom in model[0][chain_index][residue_index]:
            if not atom.is_hydrogen():
                coordinates.append(atom.pos.tolist())
                elements.append(atom.element.name)
    return np.array(coordinates, dtype=float).reshape(-1, 3), elements


def vdw_radius(element: str) -> float:
    """Bondi van der Waals radius (Å) as RDKit tabulates it; 1.7 Å for unknown symbols."""
    try:
        return _PERIODIC_TABLE.GetRvdw(element.capitalize())
    except RuntimeError:
        return 1.7


def _add_environment_repulsion(
    system: mm.System,
    positions: np.ndarray,
    elements: list[str],
    mobile: np.ndarray,
    reach: np.ndarray,
    ligand_start: int,
    environment_start: int,
) -> None:
    """Soft spheres between atoms without parameters and moving atoms that can reach them (a metal counts as a small ion).

    ``reach`` (per particle, Å) is how far each moving atom may travel; a moving protein atom
    already touching an environment atom is bonded to it (a modified residue, a glycan) and is
    left out. A pair list rather than a nonbonded force: OpenMM wants identical exclusions
    across nonbonded forces.
    """
    environment = np.arange(environment_start, len(elements))
    moving = np.flatnonzero(mobile)
    if len(environment) == 0 or len(moving) == 0:
        return
    force = mm.CustomBondForce(f"{ENVIRONMENT_FORCE * KJ_PER_KCAL / NM**2}*step(d0-r)*(d0-r)^2")
    force.addPerBondParameter("d0")
    radii = np.array([0.9 if gemmi.Element(e).is_metal else vdw_radius(e) for e in elements])
    tree = cKDTree(positions[environment])
    for atom in moving:
        for near in tree.query_ball_point(positions[atom], float(reach[atom]) + 2 * ENVIRONMENT_CONTACT * radii.max()):
            other = int(environment[near])
            contact = ENVIRONMENT_CONTACT * (radii[atom] + radii[other])
            if atom < ligand_start and np.linalg.norm(positions[atom] - positions[other]) < contact:
                continue
            force.addBond(int(atom), other, [contact * NM])
    force.setForceGroup(ENVIRONMENT_GROUP)
    system.addForce(force)


def _drop_fixed_bonded_terms(system: mm.System, mobile: np.ndarray) -> None:
    """Remove the bonds, angles and torsions whose atoms are all fixed (``mobile``: per particle), keeping the force order.

    Such a term is a constant: it puts no force on anything that moves. A pocket's fixed shell
    holds most of its residues, so this is ~10 % of an MD step; what moves feels the same forces,
    summed in the same order (trajectories identical to the last bit), and every energy is lower by
    the same constant.
    """
    moving = [bool(m) for m in mobile]
    forces = []
    for index in range(system.getNumForces()):
        force = system.getForce(index)
        if isinstance(force, mm.HarmonicBondForce):
            kept = mm.HarmonicBondForce()
            for term in range(force.getNumBonds()):
                i, j, *values = force.getBondParameters(term)
                if moving[i] or moving[j]:
                    kept.addBond(i, j, *values)
        elif isinstance(force, mm.HarmonicAngleForce):
            kept = mm.HarmonicAngleForce()
            for term in range(force.getNumAngles()):
                i, j, k, *values = force.getAngleParameters(term)
                if moving[i] or moving[j] or moving[k]:
                    kept.addAngle(i, j, k, *values)
        elif isinstance(force, mm.PeriodicTorsionForce):
            kept = mm.PeriodicTorsionForce()
            for term in range(force.getNumTorsions()):
                i, j, k, m, *values = force.getTorsionParameters(term)
                if moving[i] or moving[j] or moving[k] or moving[m]:
                    kept.addTorsion(i, j, k, m, *values)
        else:
            kept = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(force))
        kept.setForceGroup(force.getForceGroup())
        kept.setName(force.getName())
        forces.append(kept)
    while system.getNumForces():
        system.removeForce(system.getNumForces() - 1)
    for force in forces:
        system.addForce(force)


def _fixed_pairs_within(positions: np.ndarray, mobile: np.ndarray, distance: float) -> np.ndarray:
    """(p, 2) particle pairs, i < j, both fixed and within ``distance`` Å of each other."""
    fixed = np.flatnonzero(~mobile)
    if len(fixed) < 2:
        return np.zeros((0, 2), dtype=int)
    pairs = fixed[cKDTree(positions[fixed]).query_pairs(distance, output_type="ndarray")]
    return np.sort(pairs, axis=1)


def _distance_dependent_dielectric(
    system: mm.System, nonbonded: mm.NonbondedForce, mobile: np.ndarray, cutoff: float, positions: np.ndarray | None = None
) -> None:
    """Replace the NonbondedForce by Lennard-Jones + Coulomb with ε = 4r (r in Å); exceptions only where an atom moves.

    With ``positions`` (Å), fixed–fixed pairs within the cutoff are excluded: they are a constant
    and OpenMM's neighbour list then skips them (a third of a pocket's pairs). OpenMM's interaction
    groups, the other way to skip them, ran 1.5–2.8× slower on the CPU platform.
    """
    # Per-particle half-σ and √ε make the Lorentz–Berthelot combination a sum and a product.
    pair = mm.CustomNonbondedForce(
        f"4*epsilon*(x^2-x)+{COULOMB / 40.0}*charge1*charge2/r^2; x=((half_sigma1+half_sigma2)/r)^6; epsilon=root_epsilon1*root_epsilon2"
    )
    for name in ("charge", "half_sigma", "root_epsilon"):
        pair.addPerParticleParameter(name)
    for index in range(nonbonded.getNumParticles()):
        charge, sigma, epsilon = nonbonded.getParticleParameters(index)
        pair.addParticle(
            [
                magnitude(charge, unit.elementary_charge),
                0.5 * magnitude(sigma, unit.nanometer),
                np.sqrt(magnitude(epsilon, unit.kilojoule_per_mole)),
            ]
        )
    pair.setNonbondedMethod(mm.CustomNonbondedForce.CutoffNonPeriodic)
    pair.setCutoffDistance(cutoff)
    pair.setUseSwitchingFunction(True)
    pair.setSwitchingDistance(cutoff - 0.2)
    exceptions, excepted = _moving_exceptions(nonbonded, mobile)
    for i, j in excepted:
        pair.addExclusion(i, j)
    for i, j in _fixed_pairs_left_out(positions, mobile, cutoff, excepted):
        pair.addExclusion(i, j)
    system.removeForce(next(i for i, f in enumerate(system.getForces()) if f is nonbonded or isinstance(f, mm.NonbondedForce)))
    for force in (pair, exceptions):
        force.setForceGroup(FORCE_FIELD_GROUP)
        system.addForce(force)


def _reaction_field(
    system: mm.System, nonbonded: mm.NonbondedForce, mobile: np.ndarray, cutoff: float, positions: np.ndarray | None = None
) -> None:
    """Coulomb with ε = REACTION_FIELD_DIELECTRIC and a reaction field beyond the cutoff, in OpenMM's own NonbondedForce.

    The same Lennard-Jones terms, switching, exceptions (the 1–4 pairs keep Coulomb with ε = 4r, in
    a bond force of their own) and fixed–fixed exclusions as :func:`_distance_dependent_dielectric`,
    but the pairs in the neighbour list run in OpenMM's vectorised kernel: 6–7× faster than a
    CustomNonbondedForce on the CPU platform, where that force was most of an MD step. At contact
    distances it is close to ε = 4r (0.96–1.23× its Coulomb from 2 to 4 Å), weaker from 5 Å (0.57×), zero at the cutoff.
    """
    exceptions, excepted = _moving_exceptions(nonbonded, mobile)
    for index, (i, j) in enumerate(excepted):  # now in the bond force: left out of the pair kernel
        nonbonded.setExceptionParameters(index, i, j, 0.0, 1.0, 0.0)
    scale = 1.0 / np.sqrt(REACTION_FIELD_DIELECTRIC)
    for index in range(nonbonded.getNumParticles()):
        charge, sigma, epsilon = nonbonded.getParticleParameters(index)
        nonbonded.setParticleParameters(index, magnitude(charge, unit.elementary_charge) * scale, sigma, epsilon)
    for i, j in _fixed_pairs_left_out(positions, mobile, cutoff, excepted):
        nonbonded.addException(i, j, 0.0, 1.0, 0.0)
    nonbonded.setNonbondedMethod(mm.NonbondedForce.CutoffNonPeriodic)
    nonbonded.setCutoffDistance(cutoff)
    nonbonded.setUseSwitchingFunction(True)
    nonbonded.setSwitchingDistance(cutoff - 0.2)
    nonbonded.setReactionFieldDielectric(REACTION_FIELD_SOLVENT)
    nonbonded.setUseDispersionCorrection(False)
    for force in (nonbonded, exceptions):
        force.setForceGroup(FORCE_FIELD_GROUP)
    system.addForce(exceptions)


def _moving_exceptions(nonbonded: mm.NonbondedForce, mobile: np.ndarray) -> tuple[mm.CustomBondForce, list[tuple[int, int]]]:
    """The NonbondedForce's exceptions (1–2, 1–3 excluded; 1–4 scaled) as a bond force with Coulomb ε = 4r, where an atom
    moves and the term is not zero; and every excepted pair in the force's order, which the pair force must leave out."""
    exceptions = mm.CustomBondForce(f"4*epsilon*((sigma/r)^12-(sigma/r)^6)+{COULOMB / 40.0}*q/r^2")
    for name in ("q", "sigma", "epsilon"):
        exceptions.addPerBondParameter(name)
    excepted = []
    for index in range(nonbonded.getNumExceptions()):
        i, j, charge_product, sigma, epsilon = nonbonded.getExceptionParameters(index)
        excepted.append((i, j))
        q = magnitude(charge_product, CHARGE_PRODUCT)
        e = magnitude(epsilon, unit.kilojoule_per_mole)
        if (mobile[i] or mobile[j]) and (q != 0.0 or e != 0.0):
            exceptions.addBond(i, j, [q, magnitude(sigma, unit.nanometer), e])
    return exceptions, excepted


def _fixed_pairs_left_out(
    positions: np.ndarray | None, mobile: np.ndarray, cutoff: float, excepted: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Fixed–fixed pairs (i < j) within the cutoff (nm) + 0.5 Å, not ``excepted`` already: a constant the pair force can
    skip (none without ``positions``)."""
    if positions is None:
        return []
    excluded = {(min(i, j), max(i, j)) for i, j in excepted}
    return [(i, j) for i, j in _fixed_pairs_within(positions, mobile, cutoff / NM + 0.5).tolist() if (i, j) not in excluded]


def electrostatics(solvent: str) -> Callable[..., None]:
    """The function that sets a system's Coulomb terms for ``RefinementOptions.solvent`` (not "gbn2")."""
    return _reaction_field if solvent == "reaction-field" else _distance_dependent_dielectric


def _add_gbn2(
    system: mm.System, nonbonded: mm.NonbondedForce, topology: app.Topology, elements: list[str], parametrised: int, cutoff: float
) -> None:
    """OpenMM's GBn2 implicit solvent (Nguyen et al. 2013) with its standard radii; environment atoms only descreen."""
    from openmm.app.internal.customgbforces import GBSAGBn2Force

    full = app.Topology()
    residue = None
    for chain in topology.chains():
        new_chain = full.addChain(chain.id)
        for old in chain.residues():
            residue = full.addResidue(old.name, new_chain)
            for atom in old.atoms():
                full.addAtom(atom.name, atom.element, residue)
    environment = full.addResidue("ENV", full.addChain("E"))
    for element in elements[parametrised:]:
        full.addAtom(element, app.Element.getBySymbol(element.capitalize()), environment)
    atoms = list(full.atoms())
    for first, second in topology.bonds():
        full.addBond(atoms[first.index], atoms[second.index])
    nonbonded.setReactionFieldDielectric(1.0)
    force = GBSAGBn2Force(cutoff=cutoff, SA="ACE")
    for index, values in enumerate(GBSAGBn2Force.getStandardParameters(full)):
        charge = nonbonded.getParticleParameters(index)[0].value_in_unit(unit.elementary_charge)
        force.addParticle([charge, *values])
    force.finalize()
    force.setForceGroup(FORCE_FIELD_GROUP)
    system.addForce(force)


def _repartition_hydrogen_mass(system: mm.System, topology: app.Topology, mobile: np.ndarray) -> None:
    """Hydrogens of moving atoms get HYDROGEN_MASS, taken from their heavy atom, so 2 fs steps are stable unconstrained."""
    for first, second in topology.bonds():
        for hydrogen, heavy in ((first, second), (second, first)):
            if hydrogen.element is app.element.hydrogen and heavy.element is not app.element.hydrogen and mobile[hydrogen.index]:
                moved = HYDROGEN_MASS - magnitude(system.getParticleMass(hydrogen.index), unit.dalton)
                system.setParticleMass(hydrogen.index, HYDROGEN_MASS)
                heavy_mass = magnitude(system.getParticleMass(heavy.index), unit.dalton)
                system.setParticleMass(heavy.index, heavy_mass - moved)


def _add_restraints(
    system: mm.System,
    positions: np.ndarray,
    protein_atoms: dict[int, tuple[int, int, str]],
    mobile: np.ndarray,
    elements: list[str],
    options: RefinementOptions,
) -> None:
    """Backbone heavy atoms of moving residues held harmonically, side chains flat-bottomed, to their input positions."""
    force = mm.CustomExternalForce("0.5*k*max(0, d-tolerance)^2; d=sqrt((x-x0)^2+(y-y0)^2+(z-z0)^2+1e-12)")
    for name in ("k", "tolerance", "x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    to_openmm = KJ_PER_KCAL / NM**2
    for particle, (_, _, name) in protein_atoms.items():
        if not mobile[particle] or elements[particle] == "H":
            continue
        if name in BACKBONE:
            k, tolerance = options.backbone_restraint, 0.0
        else:
            k, tolerance = options.side_chain_restraint, options.side_chain_tolerance
        if k > 0:
            force.addParticle(particle, [k * to_openmm, tolerance * NM, *(positions[particle] * NM)])
    force.setForceGroup(RESTRAINT_GROUP)
    system.addForce(force)
