"""Comparison with a reference model: ligand RMSD, LDDT-PLI, and the protein backbone around the ligand.

Model and reference must share a frame (they are fitted to the same map): nothing is superposed.

- Ligand RMSD: heavy-atom RMSD minimised over the graph automorphisms (symmetry-corrected),
  as spyrmsd computes it (Meli & Biggin 2020) but without the superposition.
- LDDT-PLI (CASP15; Robin et al. 2023, Proteins 91:1811): lDDT (Mariani et al. 2013) over
  ligand–protein heavy-atom distances: every pair closer than 6 Å in the reference, plus every
  pair closer than 6 Å in the model (contacts the reference lacks are penalised); a pair is
  conserved at threshold t when the distances differ by less than t, t ∈ {0.5, 1, 2, 4} Å; the
  score is the conserved fraction averaged over the thresholds, maximised over ligand symmetry.
  Reference protein atoms missing from the model count as not conserved.
- Pocket backbone: Cα RMSD and Cα lDDT (15 Å inclusion radius, same thresholds) over the
  reference residues with a heavy atom within 6 Å of the reference ligand.

Protein atoms are paired by chain, residue number, residue name and atom name (author numbering,
or mmCIF label numbering when that pairs more atoms); the naming of symmetric side-chain atoms
(Asp, Glu, Phe, Tyr, Arg) is swapped where that brings the model closer to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ligfit.evaluate.sites import LigandSite, ModelAtoms
from ligfit.measures import symmetric_rmsd, symmetry_matches

LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)  # Å
LDDT_PLI_RADIUS = 6.0  # Å
LDDT_RADIUS = 15.0  # Å, Cα lDDT inclusion radius
POCKET_RADIUS = 6.0  # Å
_SYMMETRIC_ATOMS = {
    "ASP": [("OD1", "OD2")],
    "GLU": [("OE1", "OE2")],
    "PHE": [("CD1", "CD2"), ("CE1", "CE2")],
    "TYR": [("CD1", "CD2"), ("CE1", "CE2")],
    "ARG": [("NH1", "NH2")],
}


@dataclass(frozen=True)
class LigandPair:
    """A model ligand and the reference ligand it was matched to, with the graph isomorphisms between them."""

    model: LigandSite
    reference: LigandSite
    matches: np.ndarray  # (k, n): reference atom p[i] ↔ model atom i
    rmsd: float


def pair_ligands(model_sites: list[LigandSite], reference_sites: list[LigandSite]) -> tuple[list[LigandPair], list[LigandSite]]:
    """Match model ligands to reference ligands of the same graph, one to one, minimising the summed RMSD.

    Returns the pairs and the model ligands that no reference ligand matches (other chemistry, or
    more copies in the model than in the reference).
    """
    cost = np.full((len(model_sites), len(reference_sites)), np.inf)
    matches: dict[tuple[int, int], np.ndarray] = {}
    for i, model in enumerate(model_sites):
        for j, reference in enumerate(reference_sites):
            found = symmetry_matches(model.graph, reference.graph)
            if len(found):
                matches[i, j] = found
                cost[i, j] = symmetric_rmsd(model.coordinates, reference.coordinates, found)
    pairs, paired = [], set()
    finite = np.where(np.isfinite(cost), cost, 1e9)
    if cost.size:
        for i, j in zip(*linear_sum_assignment(finite)):
            if np.isfinite(cost[i, j]):
                pairs.append(LigandPair(model_sites[i], reference_sites[j], matches[i, j], float(cost[i, j])))
                paired.add(i)
    unpaired = [site for i, site in enumerate(model_sites) if i not in paired]
    return pairs, unpaired


def matched_polymer_atoms(model: ModelAtoms, reference: ModelAtoms) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices (model, reference) of the polymer atoms present in both, and the numbering that paired them."""
    best = (np.zeros(0, dtype=int), np.zeros(0, dtype=int), "author")
    for numbering in ("author", "label"):
        model_keys = _atom_keys(model, numbering)
        reference_keys = _atom_keys(reference, numbering)
        if model_keys is None or reference_keys is None:
            continue
        _, model_index, reference_index = np.intersect1d(model_keys, reference_keys, return_indices=True)
        keep = (model.kind[model_index] == "polymer") & (reference.kind[reference_index] == "polymer")
        if keep.sum() > len(best[0]):
            best = (model_index[keep], reference_index[keep], numbering)
    model_index, reference_index, numbering = best
    return _swap_symmetric_names(model, reference, model_index, reference_index), reference_index, numbering


def _atom_keys(atoms: ModelAtoms, numbering: str) -> np.ndarray | None:
    if numbering == "author":
        parts = (atoms.chains, atoms.numbers, atoms.insertion_codes, atoms.residue_names, atoms.atom_names)
    else:
        if np.all(atoms.label_numbers < 0):
            return None
        parts = (atoms.label_chains, atoms.label_numbers, atoms.residue_names, atoms.atom_names)
    keys = np.array(["|".join(map(str, row)) for row in zip(*parts)])
    # Keys must be unique for intersect1d's indices to mean one atom each.
    unique, counts = np.unique(keys, return_counts=True)
    duplicated = set(unique[counts > 1])
    return np.array([k if k not in duplicated else f"{k}|#{i}" for i, k in enumerate(keys)]) if duplicated else keys


def _swap_symmetric_names(model: ModelAtoms, reference: ModelAtoms, model_index: np.ndarray, reference_index: np.ndarray) -> np.ndarray:
    """Model indices with symmetric side-chain atoms swapped wherever the swap lies closer to the reference."""
    model_index = model_index.copy()
    residue = model.residue_index[model_index]
    names = model.atom_names[model_index]
    for position in np.flatnonzero(np.isin(model.residue_names[model_index], list(_SYMMETRIC_ATOMS)) & (names == "CA")):
        rows = np.flatnonzero(residue == residue[position])
        pairs = _SYMMETRIC_ATOMS[str(model.residue_names[model_index[position]])]
        by_name = {str(names[r]): r for r in rows}
        swaps = [(by_name[a], by_name[b]) for a, b in pairs if a in by_name and b in by_name]
        if not swaps:
            continue
        first, second = np.array(swaps).T
        kept = _squared(model, reference, model_index[first], reference_index[first]) + _squared(
            model, reference, model_index[second], reference_index[second]
        )
        swapped = _squared(model, reference, model_index[second], reference_index[first]) + _squared(
            model, reference, model_index[first], reference_index[second]
        )
        if swapped < kept:
            model_index[first], model_index[second] = model_index[second].copy(), model_index[first].copy()
    return model_index


def _squared(model: ModelAtoms, reference: ModelAtoms, model_rows: np.ndarray, reference_rows: np.ndarray) -> float:
    return float(((model.coordinates[model_rows] - reference.coordinates[reference_rows]) ** 2).sum())


def lddt_pli(
    pair: LigandPair,
    model: ModelAtoms,
    reference: ModelAtoms,
    model_index: np.ndarray,
    reference_index: np.ndarray,
) -> dict[str, float]:
    """LDDT-PLI of a ligand pair and the number of contacts it was computed over (see the module docstring)."""
    reference_polymer = np.flatnonzero(reference.kind == "polymer")
    near_reference = reference_polymer[
        np.isfinite(
            cKDTree(pair.reference.coordinates).query(reference.coordinates[reference_polymer], distance_upper_bound=LDDT_PLI_RADIUS)[0]
        )
    ]
    missing = np.setdiff1d(near_reference, reference_index)
    model_protein = model.coordinates[model_index]
    reference_protein = reference.coordinates[reference_index]
    best, contacts = -1.0, 0
    for permutation in pair.matches:
        reference_ligand = pair.reference.coordinates[permutation]
        d_reference = np.linalg.norm(reference_ligand[:, None] - reference_protein[None], axis=-1)
        d_model = np.linalg.norm(pair.model.coordinates[:, None] - model_protein[None], axis=-1)
        considered = (d_reference < LDDT_PLI_RADIUS) | (d_model < LDDT_PLI_RADIUS)
        # Missing protein atoms: their contacts with the reference ligand are lost in the model.
        lost = int((np.linalg.norm(reference_ligand[:, None] - reference.coordinates[missing][None], axis=-1) < LDDT_PLI_RADIUS).sum())
        difference = np.abs(d_model - d_reference)[considered]
        total = len(difference) + lost
        if total == 0:
            continue
        score = float(np.mean([(difference < t).sum() / total for t in LDDT_THRESHOLDS]))
        if score > best:
            best, contacts = score, total
    return {"lddt_pli": best if best >= 0 else float("nan"), "lddt_pli_contacts": contacts}


def pocket_backbone(
    pair: LigandPair, model: ModelAtoms, reference: ModelAtoms, model_index: np.ndarray, reference_index: np.ndarray
) -> dict[str, float]:
    """Cα RMSD (no superposition) and Cα lDDT of the reference pocket residues."""
    reference_ca = np.flatnonzero((reference.kind == "polymer") & (reference.atom_names == "CA"))
    if len(reference_ca) == 0:
        return {"pocket_ca_rmsd": float("nan"), "pocket_ca_lddt": float("nan"), "pocket_residues": 0}
    heavy_polymer = np.flatnonzero(reference.kind == "polymer")
    close = heavy_polymer[cKDTree(pair.reference.coordinates).query(reference.coordinates[heavy_polymer])[0] < POCKET_RADIUS]
    pocket_residues = np.unique(reference.residue_index[close])
    pocket_ca = reference_ca[np.isin(reference.residue_index[reference_ca], pocket_residues)]
    model_of = dict(zip(reference_index.tolist(), model_index.tolist()))
    present = np.array([i in model_of for i in pocket_ca])
    rmsd = float("nan")
    if present.any():
        deviations = reference.coordinates[pocket_ca[present]] - model.coordinates[[model_of[i] for i in pocket_ca[present]]]
        rmsd = float(np.sqrt((deviations**2).sum(-1).mean()))
    return {
        "pocket_ca_rmsd": rmsd,
        "pocket_ca_lddt": ca_lddt(pocket_ca, reference_ca, reference, model, model_of),
        "pocket_residues": len(pocket_ca),
    }


def ca_lddt(scored: np.ndarray, all_ca: np.ndarray, reference: ModelAtoms, model: ModelAtoms, model_of: dict[int, int]) -> float:
    """Cα lDDT of the ``scored`` reference Cα atoms against every reference Cα within 15 Å."""
    if len(scored) == 0:
        return float("nan")
    d_reference = np.linalg.norm(reference.coordinates[scored][:, None] - reference.coordinates[all_ca][None], axis=-1)
    considered = (d_reference < LDDT_RADIUS) & (scored[:, None] != all_ca[None])
    model_rows = np.array([model_of.get(i, -1) for i in all_ca])
    model_scored = np.array([model_of.get(i, -1) for i in scored])
    available = (model_scored[:, None] >= 0) & (model_rows[None] >= 0)
    model_xyz = model.coordinates[np.maximum(model_rows, 0)]
    d_model = np.linalg.norm(model.coordinates[np.maximum(model_scored, 0)][:, None] - model_xyz[None], axis=-1)
    difference = np.where(available, np.abs(d_model - d_reference), np.inf)[considered]
    if len(difference) == 0:
        return float("nan")
    return float(np.mean([(difference < t).mean() for t in LDDT_THRESHOLDS]))
