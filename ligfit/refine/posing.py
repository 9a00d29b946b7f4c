"""A ligand pose from coordinates found elsewhere: a residue of a model, or a deposited SDF.

Atoms are matched by element and connectivity only (charges, bond orders and protonation may
differ between the model and the ligand definition); hydrogens are then placed by MMFF94 with
the heavy atoms held where the model has them.
"""

from __future__ import annotations

import gemmi
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign

from ligfit.errors import BadLigandError
from ligfit.ligand import Ligand, mmff_properties

#: Two atoms closer than this factor × the sum of their covalent radii are bonded.
BOND_TOLERANCE = 1.25


def pose_from_residue(ligand: Ligand, residue: gemmi.Residue) -> np.ndarray:
    """All-atom coordinates (Å, ligand order) with the heavy atoms on ``residue``'s and hydrogens placed."""
    atoms = [atom for atom in residue if not atom.is_hydrogen()]
    elements = [atom.element.name for atom in atoms]
    coordinates = np.array([atom.pos.tolist() for atom in atoms]).reshape(-1, 3)
    return pose_from_atoms(ligand, elements, coordinates, label=f"residue {residue.name} {residue.seqid.num}")


def pose_from_atoms(ligand: Ligand, elements: list[str], coordinates: np.ndarray, label: str = "the model's ligand") -> np.ndarray:
    """As :func:`pose_from_residue`, from heavy-atom element symbols and coordinates (Å); bonds from distances."""
    heavy = ligand.heavy_atom_count
    if len(elements) != heavy:
        raise BadLigandError(f"{label} has {len(elements)} heavy atoms but the ligand given has {heavy}; give the matching ligand")
    target = _skeleton_from_coordinates(elements, coordinates)
    match = target.GetSubstructMatch(_skeleton(Chem.RemoveHs(ligand.mol)))
    if len(match) != heavy:
        raise BadLigandError(
            f"{label} is not connected like the ligand given ({Chem.MolToSmiles(Chem.RemoveHs(ligand.mol))}); check --ligand"
        )
    return place_hydrogens(ligand, coordinates[list(match)])


def place_hydrogens(ligand: Ligand, heavy_coordinates: np.ndarray) -> np.ndarray:
    """All-atom coordinates with the heavy atoms at ``heavy_coordinates`` (Å, ligand order) and hydrogens relaxed by MMFF."""
    heavy = ligand.heavy_atom_count
    lowest = ligand.conformer_coordinates()[int(np.argmin(ligand.conformer_energies))]
    mol = _with_coordinates(ligand.mol, lowest)
    reference = _with_coordinates(Chem.RemoveHs(ligand.mol), heavy_coordinates)
    rdMolAlign.AlignMol(mol, reference, atomMap=[(i, i) for i in range(heavy)])
    xyz = mol.GetConformer().GetPositions()
    xyz[:heavy] = heavy_coordinates
    mol = _with_coordinates(ligand.mol, xyz)
    if AllChem.MMFFHasAllMoleculeParams(mol):
        force_field = AllChem.MMFFGetMoleculeForceField(mol, mmff_properties(mol))
        for index in range(heavy):
            force_field.AddFixedPoint(index)
        force_field.Minimize(maxIts=500)
        xyz = np.array(force_field.Positions()).reshape(-1, 3)
    return xyz


def _with_coordinates(mol: Chem.Mol, coordinates: np.ndarray) -> Chem.Mol:
    copy = Chem.Mol(mol)
    copy.RemoveAllConformers()
    conformer = Chem.Conformer(copy.GetNumAtoms())
    for index, position in enumerate(coordinates):
        conformer.SetAtomPosition(index, [float(v) for v in position])
    copy.AddConformer(conformer, assignId=True)
    return copy


def _skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Elements and connectivity only: no charges, bond orders or aromaticity."""
    skeleton = Chem.RWMol(mol)
    for atom in skeleton.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetIsAromatic(False)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
    for bond in skeleton.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    skeleton.UpdatePropertyCache(strict=False)
    return skeleton.GetMol()


def _skeleton_from_coordinates(elements: list[str], coordinates: np.ndarray) -> Chem.Mol:
    table = Chem.GetPeriodicTable()
    mol = Chem.RWMol()
    for element in elements:
        atom = Chem.Atom(element.capitalize())
        atom.SetNoImplicit(True)
        mol.AddAtom(atom)
    radii = np.array([table.GetRcovalent(element.capitalize()) for element in elements])
    distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=-1)
    bonded = distances < BOND_TOLERANCE * (radii[:, None] + radii[None])
    for i, j in zip(*np.nonzero(np.triu(bonded, k=1))):
        mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    mol.UpdatePropertyCache(strict=False)
    return mol.GetMol()
