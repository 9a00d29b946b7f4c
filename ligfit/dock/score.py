"""Final pose scoring: density correlation, clashes, MMFF strain, and symmetry-aware RMSD."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial import cKDTree

from ligfit.ligand import Ligand, mmff_properties
from ligfit.maps import DensityMap

_PERIODIC_TABLE = Chem.GetPeriodicTable()


def ligand_cc(density: DensityMap, heavy_coordinates: np.ndarray, elements: list[str], resolution: float) -> float:
    """Correlation between the ligand's simulated density and ``density`` inside the ligand mask.

    The mask holds the voxels within max(1.5 Å, resolution/2) of a heavy atom; the model
    density is one Gaussian per atom (σ = 0.225·resolution, as ChimeraX molmap) weighted by
    atomic number.
    """
    radius = max(1.5, resolution / 2)
    lower = heavy_coordinates.min(axis=0) - radius - density.voxel_size
    upper = heavy_coordinates.max(axis=0) + radius + density.voxel_size
    start = np.clip(np.floor(density.to_index(lower)).astype(int), 0, np.array(density.shape) - 1)
    stop = np.clip(np.ceil(density.to_index(upper)).astype(int) + 1, 1, np.array(density.shape))
    region = tuple(slice(a, b) for a, b in zip(start, stop))
    axes = [density.origin[a] + np.arange(start[a], stop[a]) * density.voxel_size[a] for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    distance_sq = ((points[:, None, :] - heavy_coordinates[None]) ** 2).sum(-1)
    mask = distance_sq.min(axis=1) <= radius**2
    if mask.sum() < 3:
        return 0.0
    sigma = 0.225 * resolution
    weights = np.array([_PERIODIC_TABLE.GetAtomicNumber(e) for e in elements], dtype=float)
    model = (np.exp(-distance_sq[mask] / (2 * sigma**2)) * weights).sum(axis=1)
    observed = density.values[region].reshape(-1)[mask]
    if observed.std() == 0 or model.std() == 0:
        return 0.0
    return float(np.corrcoef(model, observed)[0, 1])


def count_clashes(heavy_coordinates: np.ndarray, protein_coordinates: np.ndarray | None, cutoff: float = 2.5) -> int:
    """Protein–ligand heavy-atom pairs closer than ``cutoff`` Å."""
    if protein_coordinates is None or len(protein_coordinates) == 0:
        return 0
    return int(sum(len(row) for row in cKDTree(protein_coordinates).query_ball_point(heavy_coordinates, cutoff)))


def relax_pose(ligand: Ligand, coordinates: np.ndarray, restraint_force: float) -> tuple[np.ndarray, float | None]:
    """MMFF-minimise with heavy atoms held near the pose; return coordinates and strain (kcal/mol).

    Strain is the unrestrained MMFF energy of the relaxed pose above the lowest conformer energy.
    Without MMFF parameters the pose is returned unchanged and strain is None.
    """
    if ligand.force_field != "MMFF94":
        return coordinates, None
    mol = Chem.Mol(ligand.mol)
    mol.RemoveAllConformers()
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for index, position in enumerate(coordinates):
        conformer.SetAtomPosition(index, position.tolist())
    mol.AddConformer(conformer, assignId=True)
    properties = mmff_properties(mol)
    restrained = AllChem.MMFFGetMoleculeForceField(mol, properties)
    for index in range(ligand.heavy_atom_count):
        restrained.MMFFAddPositionConstraint(index, 0.0, restraint_force)
    restrained.Minimize(maxIts=200)
    relaxed = np.array(restrained.Positions()).reshape(-1, 3)
    energy = AllChem.MMFFGetMoleculeForceField(mol, properties).CalcEnergy(relaxed.ravel().tolist())
    return relaxed, float(energy - ligand.conformer_energies.min())


def symmetry_matches(ligand: Ligand) -> np.ndarray:
    """Heavy-atom permutations (k, n_heavy) that map the ligand graph onto itself."""
    heavy = Chem.RemoveHs(ligand.mol)
    matches = heavy.GetSubstructMatches(heavy, uniquify=False, useChirality=False, maxMatches=2000)
    return np.array(matches, dtype=int) if matches else np.arange(heavy.GetNumAtoms())[None]


def symmetric_rmsd(first: np.ndarray, second: np.ndarray, matches: np.ndarray) -> float:
    """Heavy-atom RMSD (Å) between two poses, minimised over graph symmetries, without superposition."""
    heavy = matches.shape[1]
    deviations = second[:heavy][matches] - first[:heavy][None]
    return float(np.sqrt((deviations**2).sum(-1).mean(-1)).min())
