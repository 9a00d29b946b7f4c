"""MMFF94 (Halgren 1996, J. Comput. Chem. 17:490) rebuilt exactly as OpenMM custom forces from RDKit's parameters.

The fallback ligand force field when AmberTools is absent. Every term follows RDKit's own
implementation (``ForceFieldHelpers/MMFF/Builder.cpp`` and ``ForceField/MMFF/*.cpp``): the same
term lists, functional forms and constants, so the energy equals RDKit's
``MMFFGetMoleculeForceField(...).CalcEnergy`` (tested to 0.01 kcal/mol). Electrostatics use
the dielectric model of :func:`ligfit.ligand.mmff_properties` (ε = 4r), as the docking strain does.
"""

from __future__ import annotations

import math

import numpy as np
import openmm as mm
from rdkit import Chem
from rdkit.Chem import AllChem

from ligfit.ligand import mmff_properties
from ligfit.refine.errors import UnsupportedLigandError

KJ_PER_KCAL = 4.184
MDYNE_A_TO_KCAL_MOL = 143.9325
DEG2RAD = math.pi / 180.0
RAD2DEG = 180.0 / math.pi
#: MMFF atom types whose bond angles are linear (the ``lin`` column of MMFFPROP.PAR).
LINEAR_TYPES = frozenset({4, 53, 61})
#: 332.0716 kcal/mol·Å/e², MMFF's Coulomb constant; the buffering δ = 0.05 Å.
COULOMB = 332.0716
ELECTROSTATIC_BUFFER = 0.05

_ANGLE_C2 = MDYNE_A_TO_KCAL_MOL * DEG2RAD * DEG2RAD
_BOND = f"{KJ_PER_KCAL}*0.5*{MDYNE_A_TO_KCAL_MOL}*kb*dr^2*(1-2*dr+(7/12)*4*dr^2); dr=10*r-r0"
_ANGLE = (
    f"{KJ_PER_KCAL}*select(linear, {MDYNE_A_TO_KCAL_MOL}*ka*(1+cos(theta)), 0.5*{_ANGLE_C2}*ka*d^2*(1-0.006981317*d));"
    f"d={RAD2DEG}*theta-theta0"
)
_STRETCH_BEND = (
    f"{KJ_PER_KCAL}*{MDYNE_A_TO_KCAL_MOL * DEG2RAD}*(kijk*(10*distance(p1,p2)-r1)+kkji*(10*distance(p3,p2)-r2))"
    f"*({RAD2DEG}*angle(p1,p2,p3)-theta0)"
)
# Wilson angle of bond J–L (p2–p4) out of the plane I–J–K (p1, p2, p3), as RDKit's calcOopChi.
_OUT_OF_PLANE = (
    f"{KJ_PER_KCAL}*0.5*{_ANGLE_C2}*koop*chi^2;"
    f"chi={RAD2DEG}*asin(max(-1,min(1,s)));"
    "s=(nx*lx+ny*ly+nz*lz)/(sqrt(nx^2+ny^2+nz^2)*sqrt(lx^2+ly^2+lz^2));"
    "nx=ay*bz-az*by; ny=az*bx-ax*bz; nz=ax*by-ay*bx;"
    "ax=x1-x2; ay=y1-y2; az=z1-z2; bx=x3-x2; by=y3-y2; bz=z3-z2; lx=x4-x2; ly=y4-y2; lz=z4-z2"
)
_TORSION = f"{KJ_PER_KCAL}*0.5*(v1*(1+cos(theta))+v2*(1-cos(2*theta))+v3*(1+cos(3*theta)))"
_VDW = f"{KJ_PER_KCAL}*eps*(1.07*rs/(ra+0.07*rs))^7*(1.12*rs^7/(ra^7+0.12*rs^7)-2); ra=10*r"
_DISTANCE_ELECTROSTATICS = f"{KJ_PER_KCAL}*{COULOMB}*qq/(10*r+{ELECTROSTATIC_BUFFER})^2"
_CONSTANT_ELECTROSTATICS = f"{KJ_PER_KCAL}*{COULOMB}*qq/(10*r+{ELECTROSTATIC_BUFFER})"


def mmff_system(mol_h: Chem.Mol) -> mm.System:
    """An OpenMM System holding the MMFF94 energy of ``mol_h`` (explicit hydrogens), atoms in its order.

    Besides the intramolecular terms, a ``NonbondedForce`` carries each atom's MMFF charge and
    a Lennard-Jones σ/ε matching its MMFF van der Waals minimum (R*/2^(1/6), ε), with every
    intramolecular pair excluded: it only serves interactions with other molecules.
    """
    if not AllChem.MMFFHasAllMoleculeParams(mol_h):
        raise UnsupportedLigandError(f"MMFF94 has no parameters for {Chem.MolToSmiles(Chem.RemoveHs(mol_h))}")
    properties = mmff_properties(mol_h)
    system = mm.System()
    for atom in mol_h.GetAtoms():
        system.addParticle(atom.GetMass())
    for force in (
        _bond_force(mol_h, properties),
        _angle_force(mol_h, properties),
        _stretch_bend_force(mol_h, properties),
        _out_of_plane_force(mol_h, properties),
        _torsion_force(mol_h, properties),
        *_pair_forces(mol_h, properties),
        _intermolecular_force(mol_h, properties),
    ):
        system.addForce(force)
    return system


def _bond_force(mol: Chem.Mol, properties) -> mm.CustomBondForce:
    force = mm.CustomBondForce(_BOND)
    force.addPerBondParameter("kb")
    force.addPerBondParameter("r0")
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        _, kb, r0 = properties.GetMMFFBondStretchParams(mol, i, j)
        force.addBond(i, j, [kb, r0])
    force.setName("MMFF bond stretch")
    return force


def _angle_force(mol: Chem.Mol, properties) -> mm.CustomAngleForce:
    force = mm.CustomAngleForce(_ANGLE)
    for name in ("ka", "theta0", "linear"):
        force.addPerAngleParameter(name)
    for i, j, k in _angles(mol):
        parameters = properties.GetMMFFAngleBendParams(mol, i, j, k)
        if parameters is None:
            continue
        _, ka, theta0 = parameters
        force.addAngle(i, j, k, [ka, theta0, float(properties.GetMMFFAtomType(j) in LINEAR_TYPES)])
    force.setName("MMFF angle bend")
    return force


def _stretch_bend_force(mol: Chem.Mol, properties) -> mm.CustomCompoundBondForce:
    force = mm.CustomCompoundBondForce(3, _STRETCH_BEND)
    for name in ("kijk", "kkji", "r1", "r2", "theta0"):
        force.addPerBondParameter(name)
    for i, j, k in _angles(mol):
        if properties.GetMMFFAtomType(j) in LINEAR_TYPES:
            continue
        parameters = properties.GetMMFFStretchBendParams(mol, i, j, k)
        if parameters is None:
            continue
        _, kijk, kkji = parameters
        r1 = properties.GetMMFFBondStretchParams(mol, i, j)[2]
        r2 = properties.GetMMFFBondStretchParams(mol, j, k)[2]
        theta0 = properties.GetMMFFAngleBendParams(mol, i, j, k)[2]
        force.addBond([i, j, k], [kijk, kkji, r1, r2, theta0])
    force.setName("MMFF stretch-bend")
    return force


def _out_of_plane_force(mol: Chem.Mol, properties) -> mm.CustomCompoundBondForce:
    force = mm.CustomCompoundBondForce(4, _OUT_OF_PLANE)
    force.addPerBondParameter("koop")
    for atom in mol.GetAtoms():
        if atom.GetDegree() != 3:
            continue
        j = atom.GetIdx()
        a, c, d = (n.GetIdx() for n in atom.GetNeighbors())
        koop = properties.GetMMFFOopBendParams(mol, a, j, c, d)
        if koop is None:
            continue
        # RDKit's three Wilson angles per trigonal centre: each neighbour out of the other two's plane.
        for i, k, out in ((a, c, d), (a, d, c), (c, d, a)):
            force.addBond([i, j, k, out], [koop])
    force.setName("MMFF out-of-plane")
    return force


def _torsion_force(mol: Chem.Mol, properties) -> mm.CustomTorsionForce:
    force = mm.CustomTorsionForce(_TORSION)
    for name in ("v1", "v2", "v3"):
        force.addPerTorsionParameter(name)
    pattern = Chem.MolFromSmarts("[!$(*#*)&!D1]~[!$(*#*)&!D1]")
    planar_or_tetrahedral = (Chem.HybridizationType.SP2, Chem.HybridizationType.SP3)
    for j, k in mol.GetSubstructMatches(pattern):
        if mol.GetAtomWithIdx(j).GetHybridization() not in planar_or_tetrahedral:
            continue
        if mol.GetAtomWithIdx(k).GetHybridization() not in planar_or_tetrahedral:
            continue
        for i in (n.GetIdx() for n in mol.GetAtomWithIdx(j).GetNeighbors() if n.GetIdx() != k):
            for m in (n.GetIdx() for n in mol.GetAtomWithIdx(k).GetNeighbors() if n.GetIdx() != j):
                if m == i:  # three-membered ring
                    continue
                parameters = properties.GetMMFFTorsionParams(mol, i, j, k, m)
                if parameters is not None:
                    force.addTorsion(i, j, k, m, list(parameters[1:]))
    force.setName("MMFF torsion")
    return force


def _pair_forces(mol: Chem.Mol, properties) -> tuple[mm.CustomBondForce, mm.CustomBondForce]:
    """Buffered 14-7 van der Waals and buffered Coulomb over 1-4 and more distant pairs (1-4 Coulomb × 0.75)."""
    vdw = mm.CustomBondForce(_VDW)
    vdw.addPerBondParameter("rs")
    vdw.addPerBondParameter("eps")
    distance_dependent = int(properties.GetMMFFDielectricModel()) == 2
    electrostatics = mm.CustomBondForce(_DISTANCE_ELECTROSTATICS if distance_dependent else _CONSTANT_ELECTROSTATICS)
    electrostatics.addPerBondParameter("qq")
    separation = Chem.GetDistanceMatrix(mol)
    charges = [properties.GetMMFFPartialCharge(i) for i in range(mol.GetNumAtoms())]
    dielectric = properties.GetMMFFDielectricConstant()
    for i, j in zip(*np.triu_indices(mol.GetNumAtoms(), k=1)):
        i, j = int(i), int(j)
        if separation[i, j] < 3:
            continue
        _, _, r_star, epsilon = properties.GetMMFFVdWParams(i, j)
        vdw.addBond(i, j, [r_star, epsilon])
        scale = 0.75 if separation[i, j] == 3 else 1.0
        product = scale * charges[i] * charges[j] / dielectric
        if product != 0.0:
            electrostatics.addBond(i, j, [product])
    vdw.setName("MMFF van der Waals")
    electrostatics.setName("MMFF electrostatics")
    return vdw, electrostatics


def _intermolecular_force(mol: Chem.Mol, properties) -> mm.NonbondedForce:
    """Charges and Lennard-Jones parameters for interactions with other molecules; intramolecular pairs excluded."""
    force = mm.NonbondedForce()
    for i in range(mol.GetNumAtoms()):
        r_star, epsilon = properties.GetMMFFVdWParams(i, i)[2:]
        sigma_nm = 0.1 * r_star / 2 ** (1 / 6)
        force.addParticle(properties.GetMMFFPartialCharge(i), sigma_nm, epsilon * KJ_PER_KCAL)
    for i, j in zip(*np.triu_indices(mol.GetNumAtoms(), k=1)):
        force.addException(int(i), int(j), 0.0, 0.1, 0.0)
    force.setName("MMFF intermolecular")
    return force


def _angles(mol: Chem.Mol) -> list[tuple[int, int, int]]:
    """Every bond angle i–j–k (i < k in neighbour order), as RDKit enumerates them."""
    angles = []
    for atom in mol.GetAtoms():
        neighbours = [n.GetIdx() for n in atom.GetNeighbors()]
        for a in range(len(neighbours)):
            for b in range(a + 1, len(neighbours)):
                angles.append((neighbours[a], atom.GetIdx(), neighbours[b]))
    return angles
