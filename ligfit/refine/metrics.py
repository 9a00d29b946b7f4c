"""Before/after measures of a ligand pose: fit to the map, strain, clashes, and geometry against the ideal conformer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from rdkit import Chem
from scipy.spatial import cKDTree

from ligfit.io import AtomTable
from ligfit.ligand import Ligand
from ligfit.maps import DensityMap
from ligfit.measures import close_contacts, count_clashes, ligand_cc, q_scores, relax_pose
from ligfit.measures.torsions import TorsionPreferences

#: Heavy atoms held with this force (kcal/mol/Å²) while hydrogens relax for the strain energy, as docking does.
STRAIN_RESTRAINT = 100.0
#: Protein atoms this close (Å) to the ligand take part in the Q-score's shell-point exclusion (≥ 0.9 × 2 Å).
Q_SCORE_NEIGHBOURS = 4.0


@dataclass(frozen=True)
class PoseMetrics:
    """One ligand pose scored against the map and the protein around it."""

    ligand_cc: float  # correlation with the map in the ligand mask (:func:`ligfit.measures.ligand_cc`)
    q_score: float | None  # mean Q-score of the heavy atoms (Pintilie et al. 2020); None outside the map
    strain: float | None  # MMFF94 energy above the lowest conformer, hydrogens relaxed, kcal/mol
    clashes: int  # protein–ligand heavy-atom pairs closer than 0.75 × summed vdW radii (PoseBusters)
    close_contacts: int  # protein–ligand heavy-atom pairs closer than 2.2 Å (metal coordination excepted)
    min_distance: float | None  # closest protein–ligand heavy-atom distance, Å
    bond_rmsd: float  # heavy-atom bond lengths against the lowest-energy conformer, Å
    angle_rmsd: float  # heavy-atom bond angles against the lowest-energy conformer, degrees
    rare_torsions: int  # torsions far up their crystal-structure potential (> RARE_TORSION_ENERGY; Mogul-like outliers)
    worst_torsion_energy: float | None  # the highest any torsion sits up its potential; None when none is matched

    def as_dict(self) -> dict:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def pose_metrics(
    ligand: Ligand,
    coordinates: np.ndarray,
    density: DensityMap,
    resolution: float,
    protein: AtomTable | None,
) -> PoseMetrics:
    """Score ``coordinates`` (all ligand atoms, Å) against the map and the protein's heavy atoms (or None)."""
    heavy = ligand.heavy_atom_count
    elements = ligand.elements[:heavy]
    xyz = coordinates[:heavy]
    _, strain = relax_pose(ligand, coordinates, STRAIN_RESTRAINT)
    clashes, close, closest = 0, 0, None
    neighbours = np.zeros((0, 3))
    if protein is not None and len(protein):
        clashes = count_clashes(xyz, elements, protein)
        tree = cKDTree(protein.coordinates)
        closest = float(tree.query(xyz)[0].min())
        close = close_contacts(xyz, elements, protein)
        near = sorted({i for group in tree.query_ball_point(xyz, Q_SCORE_NEIGHBOURS) for i in group})
        neighbours = protein.coordinates[near]
    q = q_scores(density, np.concatenate([xyz, neighbours]), np.arange(heavy))
    bond_rmsd, angle_rmsd = geometry_deviations(ligand, coordinates)
    preferences = TorsionPreferences.of(ligand.mol)
    torsions = preferences.energies(xyz)
    return PoseMetrics(
        ligand_cc=float(ligand_cc(density, xyz, elements, resolution)),
        q_score=None if np.all(np.isnan(q)) else float(np.nanmean(q)),
        strain=None if strain is None else float(strain),
        clashes=int(clashes),
        close_contacts=close,
        min_distance=closest,
        bond_rmsd=bond_rmsd,
        angle_rmsd=angle_rmsd,
        rare_torsions=preferences.rare(xyz),
        worst_torsion_energy=float(torsions.max()) if len(torsions) else None,
    )


def geometry_deviations(ligand: Ligand, coordinates: np.ndarray) -> tuple[float, float]:
    """RMS deviation of heavy-atom bond lengths (Å) and angles (°) from the ligand's lowest-energy conformer."""
    ideal = ligand.conformer_coordinates()[int(np.argmin(ligand.conformer_energies))]
    bonds, angles = heavy_bonds_and_angles(ligand.mol)
    if len(bonds) == 0:
        return 0.0, 0.0
    bond_delta = _lengths(coordinates, bonds) - _lengths(ideal, bonds)
    angle_delta = _angles(coordinates, angles) - _angles(ideal, angles) if len(angles) else np.zeros(1)
    return float(np.sqrt(np.mean(bond_delta**2))), float(np.sqrt(np.mean(angle_delta**2)))


def heavy_bonds_and_angles(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """Atom-index pairs of bonds and triples of bond angles between heavy atoms."""
    bonds = [
        (b.GetBeginAtomIdx(), b.GetEndAtomIdx())
        for b in mol.GetBonds()
        if b.GetBeginAtom().GetAtomicNum() > 1 and b.GetEndAtom().GetAtomicNum() > 1
    ]
    angles = []
    for atom in mol.GetAtoms():
        neighbours = [n.GetIdx() for n in atom.GetNeighbors() if n.GetAtomicNum() > 1]
        if atom.GetAtomicNum() == 1:
            continue
        angles += [(neighbours[a], atom.GetIdx(), neighbours[b]) for a in range(len(neighbours)) for b in range(a + 1, len(neighbours))]
    return np.array(bonds, dtype=int).reshape(-1, 2), np.array(angles, dtype=int).reshape(-1, 3)


def _lengths(xyz: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(xyz[bonds[:, 0]] - xyz[bonds[:, 1]], axis=1)


def _angles(xyz: np.ndarray, angles: np.ndarray) -> np.ndarray:
    first = xyz[angles[:, 0]] - xyz[angles[:, 1]]
    second = xyz[angles[:, 2]] - xyz[angles[:, 1]]
    cosine = (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def stereo_signature(mol_h: Chem.Mol, coordinates: np.ndarray) -> tuple:
    """Tetrahedral centres and double-bond configurations as perceived from 3D coordinates (Å)."""
    mol = Chem.Mol(mol_h)
    mol.RemoveAllConformers()
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for index, position in enumerate(coordinates):
        conformer.SetAtomPosition(index, position.tolist())
    mol.AddConformer(conformer, assignId=True)
    Chem.AssignStereochemistryFrom3D(mol)
    centres = tuple(Chem.FindMolChiralCenters(mol, includeUnassigned=False, useLegacyImplementation=False))
    double_bonds = tuple((b.GetIdx(), str(b.GetStereo())) for b in mol.GetBonds() if b.GetStereo() != Chem.BondStereo.STEREONONE)
    return centres, double_bonds
