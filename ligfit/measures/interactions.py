"""A Vina-like protein–ligand interaction score: the chemistry of a pose against its pocket, heavy atoms only.

The five intermolecular terms of AutoDock Vina (Trott & Olson, J. Comput. Chem. 2010) with its weights: two steric
Gaussians, repulsion, hydrophobic contact and hydrogen bonding, each a function of the surface distance
d = r − R₁ − R₂ between a ligand and a protein heavy atom within :data:`CUTOFF`. Atom types follow Vina's: a carbon
bonded to N or O is polar, not hydrophobic; N/O carrying a hydrogen donate; O and N without hydrogen (and a free lone
pair) accept; halogens are hydrophobic; metals donate. Protein atoms are typed from their residue and atom names.

Docking uses it only to break near-ties between poses of one blob (``DockingOptions.interaction_tie_break_weight``):
of two poses that fit the density about equally well, the one that makes the pocket's contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from scipy.spatial import cKDTree

from ligfit.io import AtomTable

#: Å: pairs further apart than this do not interact (Vina's cutoff).
CUTOFF = 8.0
#: Vina's weights for gauss1, gauss2, repulsion, hydrophobic, hydrogen bond.
WEIGHTS = np.array([-0.0356, -0.00516, 0.840, -0.0351, -0.587])
#: Vina's van der Waals radii (Å) by element (upper case); any other element is a metal.
RADII = {"C": 1.9, "N": 1.8, "O": 1.7, "S": 2.0, "P": 2.1, "F": 1.5, "CL": 1.8, "BR": 2.0, "I": 2.2, "SE": 2.1}
METAL_RADIUS = 1.2
_HALOGENS = frozenset({"F", "CL", "BR", "I"})
#: Side-chain carbons bonded to N, O, S or Se (polar in Vina's typing, where any element but C and H makes its carbons
#: polar); backbone C and CA are polar in every residue.
_POLAR_CARBONS = {
    "CYS": {"CB"},
    "MET": {"CG", "CE"},
    "MSE": {"CG", "CE"},
    "SER": {"CB"},
    "THR": {"CB"},
    "TYR": {"CZ"},
    "ASP": {"CG"},
    "GLU": {"CD"},
    "ASN": {"CG"},
    "GLN": {"CD"},
    "LYS": {"CE"},
    "ARG": {"CD", "CZ"},
    "HIS": {"CG", "CD2", "CE1"},
    "TRP": {"CD1", "CE2"},
    "PRO": {"CD"},
}
_DONOR_NITROGENS = {"LYS": {"NZ"}, "ARG": {"NE", "NH1", "NH2"}, "ASN": {"ND2"}, "GLN": {"NE2"}, "HIS": {"ND1", "NE2"}, "TRP": {"NE1"}}
_ACCEPTOR_NITROGENS = {"HIS": {"ND1", "NE2"}}
_DONOR_OXYGENS = {"SER": {"OG"}, "THR": {"OG1"}, "TYR": {"OH"}, "HOH": {"O"}}


@dataclass(frozen=True)
class AtomTypes:
    """Per heavy atom: Vina radius (Å) and whether it is hydrophobic, a hydrogen-bond donor, an acceptor."""

    radius: np.ndarray
    hydrophobic: np.ndarray
    donor: np.ndarray
    acceptor: np.ndarray


def _empty_types(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(count), np.zeros(count, bool), np.zeros(count, bool), np.zeros(count, bool)


def ligand_types(mol: Chem.Mol) -> AtomTypes:
    """Types of ``mol``'s heavy atoms, in their order (hydrogens, explicit or implicit, decide donors)."""
    heavy = [atom for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]
    radius, hydrophobic, donor, acceptor = _empty_types(len(heavy))
    for i, atom in enumerate(heavy):
        element = atom.GetSymbol().upper()
        radius[i] = RADII.get(element, METAL_RADIUS)
        hydrogens = atom.GetTotalNumHs(includeNeighbors=True)
        if element == "C":
            hydrophobic[i] = all(n.GetAtomicNum() in (1, 6) for n in atom.GetNeighbors())  # Vina: bonded to C and H only
        elif element == "N":
            donor[i] = hydrogens > 0
            acceptor[i] = hydrogens == 0 and atom.GetFormalCharge() <= 0 and atom.GetDegree() < 3
        elif element == "O":
            acceptor[i] = True
            donor[i] = hydrogens > 0
        elif element in _HALOGENS:
            hydrophobic[i] = True
        elif element not in RADII:
            donor[i] = True
    return AtomTypes(radius, hydrophobic, donor, acceptor)


def protein_types(protein: AtomTable, atoms: np.ndarray | None = None) -> AtomTypes:
    """Types of the protein's heavy atoms (those at indices ``atoms``, or all) from element, residue and atom names
    (blank names: carbons hydrophobic)."""
    atoms = np.arange(len(protein)) if atoms is None else np.asarray(atoms)
    radius, hydrophobic, donor, acceptor = _empty_types(len(atoms))
    names = zip(protein.elements[atoms], protein.residue_name[atoms], protein.atom_name[atoms])
    for i, (element, residue, name) in enumerate(names):
        element, residue, name = str(element).upper(), str(residue), str(name)
        if element not in RADII:
            radius[i], donor[i] = METAL_RADIUS, True
            continue
        radius[i] = RADII[element]
        if element == "C":
            hydrophobic[i] = name not in ("C", "CA") and name not in _POLAR_CARBONS.get(residue, ())
        elif element == "N":
            donor[i] = (name == "N" and residue != "PRO") or name in _DONOR_NITROGENS.get(residue, ())
            acceptor[i] = name in _ACCEPTOR_NITROGENS.get(residue, ())
        elif element == "O":
            acceptor[i] = True
            donor[i] = name in _DONOR_OXYGENS.get(residue, ())
        elif element in _HALOGENS:
            hydrophobic[i] = True
    return AtomTypes(radius, hydrophobic, donor, acceptor)


def interaction_score(heavy_coordinates: np.ndarray, ligand: AtomTypes, protein: AtomTable | None) -> float:
    """Vina-like intermolecular score of a pose per ligand heavy atom (lower is better; 0 without a protein).

    ``ligand``: :func:`ligand_types` of the ligand. Only the protein atoms within :data:`CUTOFF` are typed.
    """
    heavy_coordinates = np.asarray(heavy_coordinates, dtype=float)
    if protein is None or len(protein) == 0 or len(heavy_coordinates) == 0:
        return 0.0
    pairs = cKDTree(protein.coordinates).query_ball_point(heavy_coordinates, CUTOFF)
    rows = np.repeat(np.arange(len(pairs)), [len(p) for p in pairs])
    if len(rows) == 0:
        return 0.0
    cols = np.concatenate([np.asarray(p, dtype=int) for p in pairs])
    near, cols = np.unique(cols, return_inverse=True)
    typed = protein_types(protein, near)
    distance = np.linalg.norm(heavy_coordinates[rows] - protein.coordinates[near][cols], axis=1)
    surface = distance - ligand.radius[rows] - typed.radius[cols]
    hydrophobic = ligand.hydrophobic[rows] & typed.hydrophobic[cols]
    hydrogen_bond = (ligand.donor[rows] & typed.acceptor[cols]) | (ligand.acceptor[rows] & typed.donor[cols])
    terms = np.array(
        [
            np.exp(-((surface / 0.5) ** 2)).sum(),
            np.exp(-(((surface - 3.0) / 2.0) ** 2)).sum(),
            np.where(surface < 0, surface**2, 0.0).sum(),
            np.where(hydrophobic, np.clip(1.5 - surface, 0.0, 1.0), 0.0).sum(),
            np.where(hydrogen_bond, np.clip(-surface / 0.7, 0.0, 1.0), 0.0).sum(),
        ]
    )
    return float(WEIGHTS @ terms) / len(heavy_coordinates)
