"""The parts of a model that evaluation looks at: heavy atoms with their residues, and ligand sites.

Everything is computed on heavy atoms (hydrogens present in a file are dropped, so a model
scores the same with or without them); coordinates are in Å in the model's frame. A ligand is
any residue that is neither polymer nor water; its chemistry is its bond graph, taken from the
Chemical Component Dictionary when the atom names match the residue name's entry and from
interatomic distances otherwise, so ligands are matched by graph, never by atom names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import gemmi
import numpy as np
from rdkit import Chem
from scipy.spatial import cKDTree

from ligfit.errors import BadModelError
from ligfit.measures import connectivity_mol

log = logging.getLogger(__name__)

_PERIODIC_TABLE = Chem.GetPeriodicTable()
#: Bond when the distance is below the sum of covalent radii plus this tolerance (Å), as RDKit's DetermineConnectivity.
COVALENT_TOLERANCE = 0.45


@dataclass(frozen=True)
class ModelAtoms:
    """Heavy atoms of a model as arrays, one row per atom; coordinates in Å."""

    coordinates: np.ndarray  # (n, 3)
    elements: np.ndarray  # element symbols as RDKit spells them ("C", "Fe")
    atom_names: np.ndarray
    residue_names: np.ndarray
    chains: np.ndarray  # author chain names
    numbers: np.ndarray  # author residue numbers
    insertion_codes: np.ndarray
    label_chains: np.ndarray  # mmCIF label_asym_id ("" for PDB files)
    label_numbers: np.ndarray  # mmCIF label_seq_id (-1 where none)
    occupancies: np.ndarray
    b_factors: np.ndarray
    residue_index: np.ndarray  # which residue (0 … n_residues-1) each atom belongs to
    kind: np.ndarray  # "polymer", "water" or "ligand", per atom

    def __len__(self) -> int:
        return len(self.coordinates)

    @cached_property
    def residue_keys(self) -> np.ndarray:
        """Readable residue label per atom, e.g. "A:HEM 142"."""
        keys = [f"{c}:{r} {n}{i.strip()}" for c, r, n, i in zip(self.chains, self.residue_names, self.numbers, self.insertion_codes)]
        return np.array(keys, dtype=object)

    def select(self, mask: np.ndarray) -> ModelAtoms:
        return ModelAtoms(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})


def model_atoms(structure: gemmi.Structure) -> ModelAtoms:
    """Heavy atoms of the first model (alternate conformations already reduced by ``io.read_structure``)."""
    rows, residue_count = [], 0
    for chain in structure[0]:
        for residue in chain:
            residue_count += 1
            kind = residue_kind(residue)
            label_number = residue.label_seq if residue.label_seq is not None else -1
            for atom in residue:
                if atom.is_hydrogen():
                    continue
                rows.append(
                    (*atom.pos.tolist(), atom.element.name, atom.name, residue.name, chain.name, residue.seqid.num,
                     residue.seqid.icode, residue.subchain, label_number, atom.occ, atom.b_iso, kind, residue_count - 1)
                )  # fmt: skip
    if not rows:
        raise BadModelError(f"{structure.name or 'the model'}: no heavy atoms; check the file")
    columns = list(zip(*rows))
    residue_index = np.unique(np.array(columns[14]), return_inverse=True)[1]  # renumber residues with heavy atoms
    return ModelAtoms(
        coordinates=np.array(columns[0:3], dtype=float).T,
        elements=np.array(columns[3], dtype=object),
        atom_names=np.array(columns[4], dtype=object),
        residue_names=np.array(columns[5], dtype=object),
        chains=np.array(columns[6], dtype=object),
        numbers=np.array(columns[7], dtype=int),
        insertion_codes=np.array(columns[8], dtype=object),
        label_chains=np.array(columns[9], dtype=object),
        label_numbers=np.array(columns[10], dtype=int),
        occupancies=np.array(columns[11], dtype=float),
        b_factors=np.array(columns[12], dtype=float),
        residue_index=residue_index.astype(int).ravel(),
        kind=np.array(columns[13], dtype=object),
    )


def residue_kind(residue: gemmi.Residue) -> str:
    """ "polymer" (amino acid or nucleotide), "water" or "ligand"."""
    info = gemmi.find_tabulated_residue(residue.name)
    if info is not None and info.is_water():
        return "water"
    if residue.entity_type == gemmi.EntityType.Polymer or (info is not None and (info.is_amino_acid() or info.is_nucleic_acid())):
        return "polymer"
    return "ligand"


@dataclass(frozen=True)
class LigandSite:
    """One ligand residue: its heavy atoms (indices into the model's :class:`ModelAtoms`) and bond graph."""

    label: str  # "A:HEM 142"
    residue_name: str
    atom_indices: np.ndarray  # (n,) into ModelAtoms
    atom_names: tuple[str, ...]
    elements: tuple[str, ...]
    coordinates: np.ndarray  # (n, 3) Å
    occupancies: np.ndarray
    bonds: np.ndarray  # (m, 2) indices into this site's atoms
    bonds_from: str  # "CCD" or "distances"

    def __len__(self) -> int:
        return len(self.atom_indices)

    @cached_property
    def graph(self) -> Chem.Mol:
        return connectivity_mol(self.elements, self.bonds)


def ligand_sites(atoms: ModelAtoms, names: set[str] | None = None, min_heavy_atoms: int = 2) -> list[LigandSite]:
    """Ligand residues of a model; ``names`` picks residue names, else every ligand with ≥ ``min_heavy_atoms`` atoms.

    Single-atom ions are skipped unless named: they have no pose to compare.
    """
    sites = []
    ligand_atoms = np.flatnonzero(atoms.kind == "ligand")
    for residue in np.unique(atoms.residue_index[ligand_atoms]):
        indices = np.flatnonzero(atoms.residue_index == residue)
        name = str(atoms.residue_names[indices[0]])
        if names is not None and name not in names:
            continue
        if names is None and len(indices) < min_heavy_atoms:
            continue
        sites.append(make_site(atoms, indices))
    return sites


def make_site(atoms: ModelAtoms, indices: np.ndarray) -> LigandSite:
    name = str(atoms.residue_names[indices[0]])
    atom_names = tuple(str(n) for n in atoms.atom_names[indices])
    elements = tuple(str(e) for e in atoms.elements[indices])
    coordinates = atoms.coordinates[indices]
    bonds, source = ccd_bonds(name, atom_names)
    if bonds is None:
        bonds, source = distance_bonds(elements, coordinates), "distances"
    return LigandSite(
        label=str(atoms.residue_keys[indices[0]]),
        residue_name=name,
        atom_indices=indices,
        atom_names=atom_names,
        elements=elements,
        coordinates=coordinates,
        occupancies=atoms.occupancies[indices],
        bonds=bonds,
        bonds_from=source,
    )


def ccd_bonds(residue_name: str, atom_names: tuple[str, ...]) -> tuple[np.ndarray | None, str]:
    """Heavy-atom bonds from the CCD entry of ``residue_name`` when every atom name is in it and each atom is bonded."""
    import biotite.structure.info as ccd

    try:
        entry = ccd.bonds_in_residue(residue_name)
    except KeyError:
        return None, ""
    position = {name: i for i, name in enumerate(atom_names)}
    pairs = [(position[a], position[b]) for a, b in entry if a in position and b in position]
    if not pairs:
        return None, ""
    bonds = np.array(sorted({tuple(sorted(p)) for p in pairs}), dtype=int)
    bonded = np.zeros(len(atom_names), dtype=bool)
    bonded[bonds.ravel()] = True
    if len(atom_names) > 1 and not bonded.all():
        return None, ""  # names that do not fit the entry: a different molecule under a reused code
    return bonds, "CCD"


def distance_bonds(elements: tuple[str, ...] | list[str], coordinates: np.ndarray) -> np.ndarray:
    """Bonds (m, 2) where atoms are closer than their covalent radii + 0.45 Å."""
    radii = np.array([_PERIODIC_TABLE.GetRcovalent(_PERIODIC_TABLE.GetAtomicNumber(e)) for e in elements])
    pairs = np.array(sorted(cKDTree(coordinates).query_pairs(2 * radii.max() + COVALENT_TOLERANCE)), dtype=int).reshape(-1, 2)
    if len(pairs) == 0:
        return pairs
    distance = np.linalg.norm(coordinates[pairs[:, 0]] - coordinates[pairs[:, 1]], axis=1)
    keep = (distance < radii[pairs[:, 0]] + radii[pairs[:, 1]] + COVALENT_TOLERANCE) & (distance > 0.4)
    return pairs[keep]


def element_symbol(name: str) -> str:
    """RDKit's spelling of an element symbol ("FE" → "Fe")."""
    return _PERIODIC_TABLE.GetElementSymbol(_PERIODIC_TABLE.GetAtomicNumber(name.capitalize()))


def site_from_mol(mol: Chem.Mol, label: str = "ligand", residue_name: str = "LIG") -> LigandSite:
    """A ligand site from an RDKit molecule with a conformer (e.g. an SDF pose); hydrogens are dropped."""
    heavy = Chem.RemoveHs(mol, sanitize=False)
    if heavy.GetNumConformers() == 0:
        raise BadModelError(f"ligand {label}: the molecule has no coordinates")
    coordinates = heavy.GetConformer().GetPositions()
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in heavy.GetBonds()], dtype=int).reshape(-1, 2)
    names = tuple(a.GetProp("_Name") if a.HasProp("_Name") else f"{a.GetSymbol()}{a.GetIdx() + 1}" for a in heavy.GetAtoms())
    return LigandSite(
        label=label,
        residue_name=residue_name,
        atom_indices=np.arange(heavy.GetNumAtoms()),
        atom_names=names,
        elements=tuple(a.GetSymbol() for a in heavy.GetAtoms()),
        coordinates=coordinates,
        occupancies=np.ones(heavy.GetNumAtoms()),
        bonds=bonds,
        bonds_from="molecule",
    )
