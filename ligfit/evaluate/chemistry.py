"""A ligand's ideal geometry: the reference its bond lengths, angles, chirality and planes are checked against.

Sources, first that applies: a definition the user gives (SMILES, SDF/MOL2, ``ccd:CODE`` or an
RDKit Mol); the Chemical Component Dictionary entry of the residue name when its graph is the
ligand's (ideal coordinates, through biotite); otherwise bond orders perceived from the model's
own coordinates (RDKit's rdDetermineBonds). Without CCD coordinates the ideal geometry is the
lowest-energy of a few ETKDGv3 conformers minimised with MMFF94 (UFF where MMFF has no types).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds

from ligfit.errors import BadLigandError
from ligfit.evaluate.sites import LigandSite
from ligfit.ligand import generate_conformers, parse_ligand
from ligfit.measures import connectivity_mol, symmetry_matches
from ligfit.measures.torsions import TorsionPreferences

log = logging.getLogger(__name__)

LigandDefinition = str | os.PathLike | Chem.Mol


@dataclass(frozen=True)
class IdealGeometry:
    """Ideal heavy-atom coordinates (Å) in the site's atom order, and where they came from."""

    coordinates: np.ndarray  # (n, 3)
    source: str  # "CCD HEM", "definition (MMFF94)", "perceived from model (MMFF94)"
    torsions: TorsionPreferences | None = None  # the torsions crystal structures prefer, site atom indices


def ideal_geometry(site: LigandSite, definition: LigandDefinition | None = None) -> IdealGeometry | None:
    """The ideal geometry of ``site``; None (with a logged reason) when no source gives the ligand's graph."""
    if definition is not None:
        mol = parse_ligand(definition)
        coordinates, source = _ideal_coordinates(mol, "definition")
        order = _site_order(site, mol)
        if order is None:
            raise BadLigandError(
                f"ligand {site.label}: its atoms and bonds differ from the given definition {Chem.MolToSmiles(mol)}; "
                "check the ligand definition or the model's ligand"
            )
        return IdealGeometry(_heavy(mol, coordinates)[order], source, _torsions(mol, order))
    ccd = _ccd_mol(site.residue_name)
    if ccd is not None:
        order = _site_order(site, ccd)
        if order is not None:
            return IdealGeometry(_heavy(ccd, ccd.GetConformer().GetPositions())[order], f"CCD {site.residue_name}", _torsions(ccd, order))
    mol = _perceive(site)
    if mol is None:
        log.warning(
            "ligand %s: no CCD entry matches its graph and its bond orders could not be perceived; geometry not checked", site.label
        )
        return None
    try:
        coordinates, source = _ideal_coordinates(mol, "perceived from model")
    except BadLigandError as error:
        log.warning("ligand %s: %s; geometry not checked", site.label, error)
        return None
    # Perceived from the site itself: already in site order.
    return IdealGeometry(coordinates, source, _torsions(mol, np.arange(len(site))))


def _heavy(mol: Chem.Mol, coordinates: np.ndarray) -> np.ndarray:
    """The rows of ``coordinates`` (all of ``mol``'s atoms) that belong to heavy atoms, in ``mol``'s order."""
    return np.asarray(coordinates, dtype=float)[[a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]]


def _site_order(site: LigandSite, mol: Chem.Mol) -> np.ndarray | None:
    """For each of the site's atoms, the index among ``mol``'s heavy atoms of its match, or None if the graphs differ."""
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    index_of = {old: new for new, old in enumerate(heavy)}
    bonds = [
        (index_of[b.GetBeginAtomIdx()], index_of[b.GetEndAtomIdx()])
        for b in mol.GetBonds()
        if b.GetBeginAtomIdx() in index_of and b.GetEndAtomIdx() in index_of
    ]
    elements = [mol.GetAtomWithIdx(i).GetSymbol() for i in heavy]
    matches = symmetry_matches(site.graph, connectivity_mol(elements, np.array(bonds, dtype=int)), max_matches=1)
    return matches[0] if len(matches) else None


def _torsions(mol: Chem.Mol, order: np.ndarray) -> TorsionPreferences | None:
    """``mol``'s torsion preferences with its heavy atoms renumbered to the site's (``order`` from :func:`_site_order`)."""
    try:
        preferences = TorsionPreferences.of(mol)
    except (ValueError, RuntimeError, Chem.rdchem.MolSanitizeException) as error:
        log.info("torsion preferences not found (%s)", error)
        return None
    site_index = np.empty(len(order), dtype=int)
    site_index[order] = np.arange(len(order))
    return TorsionPreferences(site_index[preferences.atoms], preferences.coefficients, preferences.offsets)


def _ccd_mol(code: str) -> Chem.Mol | None:
    """The CCD entry with its ideal coordinates (hydrogens included), or None if there is none."""
    import biotite.interface.rdkit as biotite_rdkit
    import biotite.structure.info as ccd

    try:
        atoms = ccd.residue(code)
    except KeyError:
        return None
    if atoms.array_length() == 0 or not np.all(np.isfinite(atoms.coord)):
        return None
    try:
        return biotite_rdkit.to_mol(atoms, explicit_hydrogen=True)
    except (ValueError, KeyError, RuntimeError) as error:
        log.info("CCD %s could not be converted to RDKit (%s)", code, error)
        return None


def _perceive(site: LigandSite) -> Chem.Mol | None:
    """Bond orders from the model's coordinates (xyz2mol), trying net charges 0, ±1, ±2."""
    block = f"{len(site)}\n{site.label}\n" + "".join(
        f"{e} {x:.4f} {y:.4f} {z:.4f}\n" for e, (x, y, z) in zip(site.elements, site.coordinates)
    )
    for charge in (0, -1, 1, -2, 2):
        mol = Chem.MolFromXYZBlock(block)
        if mol is None:
            return None
        try:
            rdDetermineBonds.DetermineConnectivity(mol)
            # The model's heavy atoms only: hydrogens are implicit and bond orders must make valences work.
            rdDetermineBonds.DetermineBondOrders(mol, charge=charge, allowChargedFragments=True, embedChiral=False)
            Chem.SanitizeMol(mol)
        except (ValueError, RuntimeError, Chem.rdchem.MolSanitizeException):
            continue
        if len(symmetry_matches(site.graph, connectivity_mol([a.GetSymbol() for a in mol.GetAtoms()], _bond_array(mol)), max_matches=1)):
            return mol
    return None


def _bond_array(mol: Chem.Mol) -> np.ndarray:
    return np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=int).reshape(-1, 2)


def _ideal_coordinates(mol: Chem.Mol, label: str) -> tuple[np.ndarray, str]:
    """Heavy-atom coordinates of the lowest-energy minimised conformer (hydrogens follow the heavy atoms)."""
    try:
        embedded, energies, force_field = generate_conformers(Chem.RemoveHs(mol), max_conformers=4, seed=0, time_budget=8.0)
    except BadLigandError:
        raise BadLigandError(
            f"RDKit could not build an ideal geometry for {Chem.MolToSmiles(mol)}; give the ligand as a CCD code or SDF"
        ) from None
    best = int(np.argmin(energies))
    positions = embedded.GetConformer(embedded.GetConformers()[best].GetId()).GetPositions()
    # generate_conformers adds hydrogens after the heavy atoms; put the coordinates back in mol's atom order.
    full = np.zeros((mol.GetNumAtoms(), 3))
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    full[heavy] = positions[: len(heavy)]
    return full, f"{label} ({force_field})"
