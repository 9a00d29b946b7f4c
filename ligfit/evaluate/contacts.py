"""Protein–ligand contacts from heavy-atom geometry: hydrogen bonds, salt bridges, π-stacking.

Criteria follow PLIP (Salentin et al. 2015, Nucleic Acids Res. 43:W443) where they need no
hydrogens: a hydrogen bond is a donor–acceptor pair of N/O atoms 2.5–3.5 Å apart; a salt
bridge is a pair of oppositely charged groups with atoms ≤ 4.0 Å apart; π-stacking is two
aromatic rings with centroids ≤ 5.5 Å apart and an offset ≤ 2.0 Å, parallel (normals within
30°) or T-shaped (normals 60–90°); metal coordination is a ligand metal ≤ 2.8 Å from a protein
N, O or S. Protein donors, acceptors and charges come from atom names;
the ligand's from its graph (N with fewer than three heavy neighbours may donate, N/O with
fewer than three may accept; carboxylate, phosphate and sulfonate O are negative; terminal
sp3 N and amidine/guanidine N positive).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ligfit.evaluate.sites import LigandSite, ModelAtoms
from ligfit.measures import METAL_ELEMENTS

HBOND_DISTANCE = (2.5, 3.5)
SALT_BRIDGE_DISTANCE = 4.0
STACKING_DISTANCE, STACKING_OFFSET = 5.5, 2.0
METAL_DISTANCE = 2.8
_DONORS = {"N", "NE1", "ND2", "NE2", "ND1", "NZ", "NE", "NH1", "NH2", "OG", "OG1", "OH", "SG", "N1", "N2", "N3", "N4", "N6", "O2'"}
_ACCEPTORS = {
    "O",
    "OXT",
    "OD1",
    "OD2",
    "OE1",
    "OE2",
    "OG",
    "OG1",
    "OH",
    "ND1",
    "NE2",
    "SD",
    "O2'",
    "O3'",
    "O4'",
    "O5'",
    "OP1",
    "OP2",
    "N1",
    "N3",
    "N7",
    "O2",
    "O4",
    "O6",
}
_POSITIVE = {("LYS", "NZ"), ("ARG", "NE"), ("ARG", "NH1"), ("ARG", "NH2"), ("HIS", "ND1"), ("HIS", "NE2")}
_NEGATIVE = {("ASP", "OD1"), ("ASP", "OD2"), ("GLU", "OE1"), ("GLU", "OE2"), ("*", "OXT"), ("*", "OP1"), ("*", "OP2")}
_AROMATIC_RINGS = {
    "PHE": [("CG", "CD1", "CD2", "CE1", "CE2", "CZ")],
    "TYR": [("CG", "CD1", "CD2", "CE1", "CE2", "CZ")],
    "TRP": [("CD2", "CE2", "CE3", "CZ2", "CZ3", "CH2"), ("CG", "CD1", "NE1", "CE2", "CD2")],
    "HIS": [("CG", "ND1", "CD2", "CE1", "NE2")],
}


def protein_ligand_contacts(site: LigandSite, atoms: ModelAtoms, rings: list[np.ndarray]) -> list[dict]:
    """Hydrogen bonds, salt bridges and stacking between the ligand and the model's polymer atoms.

    ``rings``: the ligand's aromatic rings as index arrays into the site (flat rings of 5–6 atoms).
    """
    polymer = np.flatnonzero(atoms.kind == "polymer")
    near = polymer[cKDTree(site.coordinates).query(atoms.coordinates[polymer], distance_upper_bound=STACKING_DISTANCE + 3)[0] < np.inf]
    contacts = _hydrogen_bonds(site, atoms, near) + _salt_bridges(site, atoms, near) + _stacking(site, atoms, near, rings)
    contacts += _metal_coordination(site, atoms, near)
    return sorted(contacts, key=lambda c: (c["type"], c["distance"]))


def _neighbour_count(site: LigandSite) -> np.ndarray:
    return np.bincount(site.bonds.ravel(), minlength=len(site)) if len(site.bonds) else np.zeros(len(site), dtype=int)


def _hydrogen_bonds(site: LigandSite, atoms: ModelAtoms, near: np.ndarray) -> list[dict]:
    elements = np.array(site.elements)
    degree = _neighbour_count(site)
    ligand_donor = (elements == "N") & (degree < 3) | (elements == "O") & (degree < 2)
    ligand_acceptor = np.isin(elements, ["N", "O"]) & (degree < 3)
    names = atoms.atom_names[near].astype(str)
    protein_donor = np.isin(names, list(_DONORS)) & np.isin(atoms.elements[near].astype(str), ["N", "O", "S"])
    protein_acceptor = np.isin(names, list(_ACCEPTORS)) & np.isin(atoms.elements[near].astype(str), ["N", "O", "S"])
    distance = np.linalg.norm(site.coordinates[:, None] - atoms.coordinates[near][None], axis=-1)
    possible = (ligand_donor[:, None] & protein_acceptor[None]) | (ligand_acceptor[:, None] & protein_donor[None])
    hits = np.argwhere(possible & (distance >= HBOND_DISTANCE[0]) & (distance <= HBOND_DISTANCE[1]))
    return [_contact("hydrogen bond", site, atoms, [a], [near[p]], distance[a, p]) for a, p in hits]


def _ligand_charges(site: LigandSite) -> np.ndarray:
    """+1 / −1 / 0 per ligand atom, from the graph alone (see the module docstring)."""
    elements = np.array(site.elements)
    degree = _neighbour_count(site)
    neighbours: list[list[int]] = [[] for _ in range(len(site))]
    for i, j in site.bonds:
        neighbours[i].append(j)
        neighbours[j].append(i)
    charge = np.zeros(len(site), dtype=int)
    for atom, around in enumerate(neighbours):
        terminal_o = [n for n in around if elements[n] == "O" and degree[n] == 1]
        terminal_n = [n for n in around if elements[n] == "N" and degree[n] == 1]
        if elements[atom] == "C" and len(terminal_o) == 2:
            charge[terminal_o] = -1  # carboxylate
        if elements[atom] in ("P", "S") and len(terminal_o) >= 2:
            charge[terminal_o] = -1  # phosphate, sulfonate
        if elements[atom] == "C" and len(around) == 3 and len([n for n in around if elements[n] == "N"]) >= 2 and terminal_n:
            charge[[n for n in around if elements[n] == "N"]] = 1  # amidine, guanidine
        if elements[atom] == "N" and len(around) == 1 and elements[around[0]] == "C" and degree[around[0]] == 4:
            charge[atom] = 1  # primary amine on sp3 carbon
    return charge


def _salt_bridges(site: LigandSite, atoms: ModelAtoms, near: np.ndarray) -> list[dict]:
    ligand_charge = _ligand_charges(site)
    keys = list(zip(atoms.residue_names[near].astype(str), atoms.atom_names[near].astype(str)))
    protein_charge = np.array([1 if k in _POSITIVE else -1 if (k in _NEGATIVE or ("*", k[1]) in _NEGATIVE) else 0 for k in keys])
    distance = np.linalg.norm(site.coordinates[:, None] - atoms.coordinates[near][None], axis=-1)
    opposite = (ligand_charge[:, None] * protein_charge[None]) < 0
    hits = np.argwhere(opposite & (distance <= SALT_BRIDGE_DISTANCE))
    # One entry per ligand-atom / protein-residue pair, the closest.
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for a, p in hits:
        key = (int(a), int(atoms.residue_index[near[p]]))
        if key not in best or distance[a, p] < distance[best[key]]:
            best[key] = (a, p)
    return [_contact("salt bridge", site, atoms, [a], [near[p]], distance[a, p]) for a, p in best.values()]


def _stacking(site: LigandSite, atoms: ModelAtoms, near: np.ndarray, rings: list[np.ndarray]) -> list[dict]:
    contacts = []
    protein_rings = []
    for residue in np.unique(atoms.residue_index[near]):
        rows = np.flatnonzero(atoms.residue_index == residue)
        by_name = {str(atoms.atom_names[r]): r for r in rows}
        for ring in _AROMATIC_RINGS.get(str(atoms.residue_names[rows[0]]), []):
            if all(name in by_name for name in ring):
                protein_rings.append(np.array([by_name[name] for name in ring]))
    for ligand_ring in rings:
        centre_l, normal_l = _ring_frame(site.coordinates[ligand_ring])
        for protein_ring in protein_rings:
            centre_p, normal_p = _ring_frame(atoms.coordinates[protein_ring])
            separation = centre_p - centre_l
            distance = float(np.linalg.norm(separation))
            angle = float(np.degrees(np.arccos(min(1.0, abs(normal_l @ normal_p)))))
            offset = min(_offset(separation, normal_l), _offset(separation, normal_p))
            if distance > STACKING_DISTANCE or offset > STACKING_OFFSET:
                continue
            kind = "π-stacking (parallel)" if angle < 30 else "π-stacking (T-shaped)" if angle > 60 else None
            if kind:
                contacts.append(_contact(kind, site, atoms, list(ligand_ring), list(protein_ring), distance))
    return contacts


def _metal_coordination(site: LigandSite, atoms: ModelAtoms, near: np.ndarray) -> list[dict]:
    metals = np.flatnonzero([e in METAL_ELEMENTS for e in site.elements])
    donors = near[np.isin(atoms.elements[near].astype(str), ["N", "O", "S"])]
    if len(metals) == 0 or len(donors) == 0:
        return []
    distance = np.linalg.norm(site.coordinates[metals][:, None] - atoms.coordinates[donors][None], axis=-1)
    return [
        _contact("metal coordination", site, atoms, [metals[m]], [donors[d]], distance[m, d])
        for m, d in np.argwhere(distance <= METAL_DISTANCE)
    ]


def _ring_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = points.mean(axis=0)
    return centre, np.linalg.svd(points - centre, full_matrices=False)[2][-1]


def _offset(separation: np.ndarray, normal: np.ndarray) -> float:
    return float(np.linalg.norm(separation - (separation @ normal) * normal))


def _contact(kind: str, site: LigandSite, atoms: ModelAtoms, ligand_atoms: list[int], protein_atoms: list[int], distance: float) -> dict:
    residue = str(atoms.residue_keys[protein_atoms[0]])
    return {
        "type": kind,
        "ligand_atoms": [site.atom_names[int(a)] for a in ligand_atoms],
        "residue": residue,
        "protein_atoms": [str(atoms.atom_names[int(p)]) for p in protein_atoms],
        "distance": round(float(distance), 2),
    }


def contact_recovery(model_contacts: list[dict], reference_contacts: list[dict]) -> float:
    """Fraction of the reference's (type, residue) interactions that the model also makes (NaN if none)."""
    wanted = {(c["type"], c["residue"]) for c in reference_contacts}
    if not wanted:
        return float("nan")
    made = {(c["type"], c["residue"]) for c in model_contacts}
    return len(wanted & made) / len(wanted)
