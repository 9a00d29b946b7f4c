"""MolProbity-style clashscore: serious all-atom overlaps (≥ 0.4 Å) per 1000 atoms, hydrogens added.

Follows the definition of Word et al. 1999 (J. Mol. Biol. 285:1735) and Chen et al. 2010
(MolProbity): hydrogens are (re)built with hydride (Kunzmann et al. 2022), which places them
from CCD fragments and relaxes rotatable ones; two atoms clash when their van der Waals spheres
overlap by 0.4 Å or more. Pairs within three bonds are skipped, within four when one atom is a
hydrogen (Probe's default, -4H); covalent links between residues (non-metal atoms closer than
their covalent radii + 0.3 Å, as the PDB's struct_conn links) count as bonds; pairs that can hydrogen-bond
(polar H or N/O with N/O) may overlap by 0.6 Å more before they clash; pairs with a metal are
skipped (coordination, not a clash); waters are left out. The van der Waals radii are Probe's
(C 1.70, N 1.55, O 1.40, S 1.80, polar H 1.00, other H 1.17 Å), for hydrogens at
electron-cloud positions as in MolProbity 4.4+: hydride's hydrogens are moved along their bonds
to Reduce's electron-cloud lengths (C–H 0.97, N–H 0.86, O–H 0.84, S–H 1.2 Å).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from ligfit.evaluate.sites import ModelAtoms

log = logging.getLogger(__name__)

SERIOUS_OVERLAP = 0.4  # Å
HYDROGEN_BOND_ALLOWANCE = 0.6  # Å
PROBE_RADII = {"C": 1.70, "N": 1.55, "O": 1.40, "S": 1.80, "P": 1.80, "SE": 1.90, "F": 1.47, "CL": 1.75, "BR": 1.85, "I": 1.98, "B": 1.80}
POLAR_H_RADIUS, NONPOLAR_H_RADIUS = 1.00, 1.17
ELECTRON_CLOUD_LENGTH = {"C": 0.97, "N": 0.86, "O": 0.84, "S": 1.2}  # Å, X–H
_POLAR = {"N", "O"}
#: Covalent radii (Å, Cordero et al. 2008) of the non-metals; two residues' atoms closer than the sum + LINK_TOLERANCE are bonded.
COVALENT_RADII = {
    "C": 0.76,
    "N": 0.71,
    "O": 0.66,
    "S": 1.05,
    "P": 1.07,
    "SE": 1.20,
    "F": 0.57,
    "CL": 1.02,
    "BR": 1.20,
    "I": 1.39,
    "B": 0.84,
}
LINK_TOLERANCE = 0.3


@dataclass(frozen=True)
class ClashReport:
    """Serious clashes of a model: clashscore and the clashing atom pairs (indices into ``labels``)."""

    clashscore: float
    atom_count: int
    hydrogens: str  # "added (hydride)" or "as given"
    pairs: np.ndarray  # (k, 2)
    overlaps: np.ndarray  # (k,) Å
    labels: np.ndarray  # per atom "A:HEM 142 CHA"
    residue_keys: np.ndarray  # per atom "A:HEM 142"

    def involving(self, residue_key: str) -> list[dict]:
        """The clashes of one residue, worst first."""
        rows = np.flatnonzero((self.residue_keys[self.pairs[:, 0]] == residue_key) | (self.residue_keys[self.pairs[:, 1]] == residue_key))
        rows = rows[np.argsort(-self.overlaps[rows])]
        return [{"atoms": [str(self.labels[a]) for a in self.pairs[r]], "overlap": round(float(self.overlaps[r]), 3)} for r in rows]


def clashscore(atoms: ModelAtoms, add_hydrogens: bool = True) -> ClashReport:
    """Clashscore of the model's non-water atoms (see the module docstring)."""
    array = _atom_array(atoms.select(atoms.kind != "water"))
    hydrogens = "as given"
    if add_hydrogens:
        try:
            array = _with_hydrogens(array)
            hydrogens = "added (hydride)"
        except ImportError:
            log.warning("hydride is not installed: clashscore is computed without hydrogens (pip install 'ligfit[evaluate]')")
    return _clashes(array, hydrogens)


def _atom_array(atoms: ModelAtoms):
    import biotite.structure as struc

    array = struc.AtomArray(len(atoms))
    array.coord = atoms.coordinates.astype(np.float32)
    array.chain_id = atoms.chains.astype(str)
    array.res_id = atoms.numbers
    array.ins_code = atoms.insertion_codes.astype(str)
    array.res_name = atoms.residue_names.astype(str)
    array.atom_name = atoms.atom_names.astype(str)
    array.element = np.char.upper(atoms.elements.astype(str))
    array.hetero = atoms.kind != "polymer"
    array.set_annotation("charge", np.zeros(len(atoms), dtype=int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array.bonds = _bonds(array)
    return array


def _bonds(array):
    """Bonds from the CCD by residue and atom names, plus what the names cannot give.

    A residue whose names leave an atom unbonded is not the CCD entry of that name (or is named
    otherwise): its bond orders and formal charges are perceived from the coordinates (RDKit's
    rdDetermineBonds) so that hydride knows each atom's hybridisation, and the charges go into
    the array's ``charge`` annotation. Disulfides are added by distance.
    """
    import biotite.structure as struc

    named = struc.connect_via_residue_names(array).as_array()
    bonded = np.zeros(array.array_length(), dtype=bool)
    bonded[named[:, :2].ravel()] = True
    extra = []
    sulfur = np.flatnonzero((array.atom_name == "SG") & (array.element == "S"))
    if len(sulfur) > 1:
        extra += [(sulfur[i], sulfur[j], int(struc.BondType.SINGLE)) for i, j in cKDTree(array.coord[sulfur]).query_pairs(2.5)]
    redo = np.zeros(array.array_length(), dtype=bool)
    for start, stop in zip(*_residue_bounds(array)):
        if stop - start < 2 or bonded[start:stop].all():
            continue
        redo[start:stop] = True
        typed, charges = _perceived_bonds(array.element[start:stop], array.coord[start:stop].astype(float))
        extra += [(start + i, start + j, t) for i, j, t in typed]
        array.charge[start:stop] = charges
    kept = named[~(redo[named[:, 0]] | redo[named[:, 1]])]
    bonds = np.concatenate([kept, np.array(extra, dtype=int).reshape(-1, 3)]).astype(np.int64)
    return struc.BondList(array.array_length(), np.concatenate([bonds, _links(array, bonds)]))


def _links(array, bonds: np.ndarray) -> np.ndarray:
    """Bonds between residues that the names do not give (covalent links): non-metal atoms closer than covalent radii + 0.3 Å."""
    import biotite.structure as struc

    radius = np.array([COVALENT_RADII.get(str(e), np.nan) for e in array.element])
    candidates = np.flatnonzero(np.isfinite(radius))
    pairs = np.array(sorted(cKDTree(array.coord[candidates]).query_pairs(2 * max(COVALENT_RADII.values()) + LINK_TOLERANCE)), dtype=int)
    if len(pairs) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    a, b = candidates[pairs].T
    residue = struc.get_residue_positions(array, np.arange(array.array_length()))
    distance = np.linalg.norm(array.coord[a] - array.coord[b], axis=1)
    link = (residue[a] != residue[b]) & (distance < radius[a] + radius[b] + LINK_TOLERANCE)
    known = {(int(i), int(j)) for i, j in bonds[:, :2]} | {(int(j), int(i)) for i, j in bonds[:, :2]}
    new = [(int(i), int(j), int(struc.BondType.SINGLE)) for i, j in zip(a[link], b[link]) if (int(i), int(j)) not in known]
    return np.array(new, dtype=np.int64).reshape(-1, 3)


def _perceived_bonds(elements: np.ndarray, coordinates: np.ndarray) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """(i, j, biotite bond type) and formal charges of a residue from its heavy-atom coordinates."""
    import biotite.structure as struc
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    from ligfit.evaluate.sites import distance_bonds, element_symbol

    symbols = [element_symbol(e) for e in elements]
    block = f"{len(symbols)}\n\n" + "".join(f"{e} {x:.4f} {y:.4f} {z:.4f}\n" for e, (x, y, z) in zip(symbols, coordinates))
    order = {
        Chem.BondType.SINGLE: struc.BondType.SINGLE,
        Chem.BondType.DOUBLE: struc.BondType.DOUBLE,
        Chem.BondType.TRIPLE: struc.BondType.TRIPLE,
    }
    mol = Chem.MolFromXYZBlock(block)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=0, allowChargedFragments=True, embedChiral=False)
        Chem.Kekulize(mol, clearAromaticFlags=True)
        typed = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), int(order.get(b.GetBondType(), struc.BondType.ANY))) for b in mol.GetBonds()]
        return typed, np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=int)
    except (ValueError, RuntimeError, Chem.rdchem.MolSanitizeException):
        # No consistent bond orders (metals, odd geometry): connectivity only; hydride guesses from neighbour counts.
        return [(int(i), int(j), int(struc.BondType.ANY)) for i, j in distance_bonds(symbols, coordinates)], np.zeros(
            len(symbols), dtype=int
        )


def _residue_bounds(array):
    import biotite.structure as struc

    starts = struc.get_residue_starts(array)
    return starts, np.append(starts[1:], array.array_length())


def _with_hydrogens(array):
    import hydride

    without_h = array[array.element != "H"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hydride warns for every atom whose bond types are unknown
        with_h, _ = hydride.add_hydrogen(without_h)
        with_h.coord = hydride.relax_hydrogen(with_h)
    return _electron_cloud_positions(with_h)


def _electron_cloud_positions(array):
    """Move every hydrogen along its bond to the electron-cloud X–H length."""
    bonds = array.bonds.as_array()[:, :2]
    is_h = array.element == "H"
    pairs = bonds[is_h[bonds[:, 0]] ^ is_h[bonds[:, 1]]]
    hydrogen = np.where(is_h[pairs[:, 0]], pairs[:, 0], pairs[:, 1])
    heavy = np.where(is_h[pairs[:, 0]], pairs[:, 1], pairs[:, 0])
    length = np.array([ELECTRON_CLOUD_LENGTH.get(e, 1.0) for e in array.element[heavy]])
    vector = array.coord[hydrogen] - array.coord[heavy]
    coord = array.coord.copy()
    coord[hydrogen] = array.coord[heavy] + vector / np.linalg.norm(vector, axis=1, keepdims=True) * length[:, None]
    array.coord = coord
    return array


def _clashes(array, hydrogens: str) -> ClashReport:
    elements = np.asarray(array.element).astype(str)
    coordinates = array.coord.astype(float)
    count = len(coordinates)
    bond_array = array.bonds.as_array()[:, :2].astype(int)
    adjacency = sparse.coo_matrix((np.ones(len(bond_array)), (bond_array[:, 0], bond_array[:, 1])), shape=(count, count)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.int32)
    radii = _probe_radii(elements, adjacency)
    pairs = np.array(sorted(cKDTree(coordinates).query_pairs(2 * radii.max())), dtype=int).reshape(-1, 2)
    i, j = pairs.T
    overlap = radii[i] + radii[j] - np.linalg.norm(coordinates[i] - coordinates[j], axis=1)
    candidate = overlap >= SERIOUS_OVERLAP
    pairs, overlap = pairs[candidate], overlap[candidate]
    near = adjacency + adjacency @ adjacency
    near = (near + near @ adjacency).tocsr()  # within three bonds
    near_h = (near + near @ adjacency).tocsr()  # within four bonds: Probe's default (-4H) for pairs with a hydrogen
    if len(pairs):
        with_h = (elements[pairs[:, 0]] == "H") | (elements[pairs[:, 1]] == "H")
        bonded = (np.asarray(near[pairs[:, 0], pairs[:, 1]]).ravel() > 0) | (
            with_h & (np.asarray(near_h[pairs[:, 0], pairs[:, 1]]).ravel() > 0)
        )
    else:
        bonded = np.zeros(0, dtype=bool)
    hbond = _can_hydrogen_bond(elements, adjacency, pairs)
    metal = ~np.isin(elements[pairs], list(PROBE_RADII) + ["H"]).all(axis=1)
    serious = ~bonded & ~metal & (overlap >= SERIOUS_OVERLAP + np.where(hbond, HYDROGEN_BOND_ALLOWANCE, 0.0))
    labels = np.array(
        [
            f"{c}:{r} {n}{ic.strip()} {a}"
            for c, r, n, ic, a in zip(array.chain_id, array.res_name, array.res_id, array.ins_code, array.atom_name)
        ]
    )
    keys = np.array([f"{c}:{r} {n}{ic.strip()}" for c, r, n, ic in zip(array.chain_id, array.res_name, array.res_id, array.ins_code)])
    return ClashReport(float(1000.0 * serious.sum() / max(count, 1)), count, hydrogens, pairs[serious], overlap[serious], labels, keys)


def _probe_radii(elements: np.ndarray, adjacency: sparse.csr_matrix) -> np.ndarray:
    radii = np.array([PROBE_RADII.get(e, 1.70) for e in elements])
    hydrogen = np.flatnonzero(elements == "H")
    polar = np.array([bool(set(elements[adjacency[h].indices]) & _POLAR) for h in hydrogen], dtype=bool)
    radii[hydrogen] = np.where(polar, POLAR_H_RADIUS, NONPOLAR_H_RADIUS)
    return radii


def _can_hydrogen_bond(elements: np.ndarray, adjacency: sparse.csr_matrix, pairs: np.ndarray) -> np.ndarray:
    """Whether each pair is N/O–N/O, or an H on N/O facing an N/O."""
    polar_atom = np.isin(elements, list(_POLAR))
    polar_h = np.zeros(len(elements), dtype=bool)
    hydrogen = np.flatnonzero(elements == "H")
    polar_h[hydrogen] = [bool(polar_atom[adjacency[h].indices].any()) for h in hydrogen]
    a, b = pairs.T
    return (polar_atom[a] & polar_atom[b]) | (polar_h[a] & polar_atom[b]) | (polar_atom[a] & polar_h[b])
