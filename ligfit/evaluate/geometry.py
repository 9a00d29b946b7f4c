"""Ligand geometry against its ideal geometry: bond and angle Z-scores, chirality, planarity.

Z = (model − ideal) / σ with the σ of Phenix eLBOW restraints (0.02 Å for bonds, 3° for
angles); the ideal values are measured on the ideal coordinates (CCD or MMFF, see
:mod:`ligfit.evaluate.chemistry`). Stereocentres and planes are found from the graph and the
ideal coordinates alone, so the checks need no bond orders: a stereocentre is a C, Si, P or S
with three or four heavy neighbours that are pairwise inequivalent in the graph and not coplanar
in the ideal geometry; a plane is a ring flat in the ideal geometry (with its substituents) or an
sp2 centre with its three neighbours. Torsions are checked against the distributions crystal structures show
(ETKDG's potentials, :mod:`ligfit.measures.torsions`), as wwPDB validation checks them against Mogul's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem

from ligfit.evaluate.sites import LigandSite
from ligfit.measures.torsions import RARE_TORSION_ENERGY, TorsionPreferences

BOND_SIGMA = 0.02  # Å
ANGLE_SIGMA = 3.0  # degrees
#: |Z| above which a bond or angle is an outlier (wwPDB validation reports use 2 for ligands with Mogul).
OUTLIER_Z = 2.0
#: Ideal chiral volume (Å³) below which a centre counts as flat, and the plane tests' tolerances (Å).
FLAT_VOLUME = 0.5
IDEAL_PLANE_RMS = 0.05
#: A plane fails when an atom lies farther than this from it (PoseBusters' flatness limit, Å).
PLANE_DEVIATION_LIMIT = 0.25
_STEREO_ELEMENTS = {"C", "Si", "P", "S"}
#: Bonds and angles that involve any other element (metals) are not scored: their ideal CCD geometry is rarely meaningful.
ORGANIC_ELEMENTS = {"H", "B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I"}


@dataclass(frozen=True)
class GeometryReport:
    """Geometry of one ligand; bond/angle Z-scores are signed, one per scored bond / angle."""

    bonds: np.ndarray  # (m, 2) scored bonds
    bond_z: np.ndarray
    angle_z: np.ndarray
    angles: np.ndarray  # (k, 3) atom triples i-j-k, j central
    chiral_centres: np.ndarray  # atom indices checked
    chirality_errors: np.ndarray  # atom indices whose handedness differs from the ideal
    plane_deviation: np.ndarray  # max distance (Å) from each plane
    planes: list[np.ndarray] = field(default_factory=list)
    source: str = ""
    torsion_energy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per preferred torsion, above its minimum

    def summary(self) -> dict:
        def rms(z: np.ndarray) -> float:
            return float(np.sqrt(np.mean(z**2))) if len(z) else float("nan")

        return {
            "ideal_geometry": self.source,
            "bond_rmsz": rms(self.bond_z),
            "angle_rmsz": rms(self.angle_z),
            "bond_outliers": int(np.sum(np.abs(self.bond_z) > OUTLIER_Z)),
            "angle_outliers": int(np.sum(np.abs(self.angle_z) > OUTLIER_Z)),
            "worst_bond_z": float(np.max(np.abs(self.bond_z))) if len(self.bond_z) else float("nan"),
            "worst_angle_z": float(np.max(np.abs(self.angle_z))) if len(self.angle_z) else float("nan"),
            "chiral_centres": len(self.chiral_centres),
            "chirality_errors": len(self.chirality_errors),
            "planes": len(self.planes),
            "nonplanar_planes": int(np.sum(self.plane_deviation > PLANE_DEVIATION_LIMIT)),
            "worst_plane_deviation": float(self.plane_deviation.max()) if len(self.plane_deviation) else float("nan"),
            "torsions_checked": len(self.torsion_energy),
            "rare_torsions": int(np.sum(self.torsion_energy > RARE_TORSION_ENERGY)),
            "worst_torsion_energy": float(self.torsion_energy.max()) if len(self.torsion_energy) else float("nan"),
        }


def ligand_geometry(site: LigandSite, ideal: np.ndarray, source: str = "", torsions: TorsionPreferences | None = None) -> GeometryReport:
    """Compare the site's coordinates with ``ideal`` (same atom order, Å), and its torsions with ``torsions``."""
    model = site.coordinates
    organic = np.array([e in ORGANIC_ELEMENTS for e in site.elements])
    bonds = site.bonds[organic[site.bonds].all(axis=1)]
    angles = bond_angles(bonds, len(site))
    bond_z = (bond_lengths(model, bonds) - bond_lengths(ideal, bonds)) / BOND_SIGMA
    angle_z = (angle_values(model, angles) - angle_values(ideal, angles)) / ANGLE_SIGMA
    centres, neighbours = stereocentres(site, ideal)
    volume_model = chiral_volumes(model, centres, neighbours)
    volume_ideal = chiral_volumes(ideal, centres, neighbours)
    errors = centres[np.sign(volume_model) != np.sign(volume_ideal)]
    planes = flat_groups(site, ideal)
    deviation = np.array([plane_deviations(model[p]).max() for p in planes]) if planes else np.zeros(0)
    torsion_energy = torsions.energies(model) if torsions is not None else np.zeros(0)
    return GeometryReport(bonds, bond_z, angle_z, angles, centres, errors, deviation, planes, source, torsion_energy)


def bond_lengths(coordinates: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(coordinates[bonds[:, 0]] - coordinates[bonds[:, 1]], axis=1)


def bond_angles(bonds: np.ndarray, count: int) -> np.ndarray:
    """Every i-j-k triple with bonds i-j and j-k (i < k), shape (m, 3)."""
    neighbours = _neighbour_lists(bonds, count)
    triples = [(i, j, k) for j in range(count) for a, i in enumerate(neighbours[j]) for k in neighbours[j][a + 1 :]]
    return np.array(triples, dtype=int).reshape(-1, 3)


def angle_values(coordinates: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Angles in degrees at the central atom of each triple."""
    u = coordinates[angles[:, 0]] - coordinates[angles[:, 1]]
    v = coordinates[angles[:, 2]] - coordinates[angles[:, 1]]
    cosine = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def chiral_volumes(coordinates: np.ndarray, centres: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Signed volume (Å³) spanned by the first three neighbours around each centre."""
    if len(centres) == 0:
        return np.zeros(0)
    c = coordinates[centres]
    a, b, d = (coordinates[neighbours[:, k]] - c for k in range(3))
    return np.einsum("ij,ij->i", a, np.cross(b, d))


def stereocentres(site: LigandSite, ideal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (k,) and three of their neighbours (k, 3), as defined in the module docstring."""
    neighbours = _neighbour_lists(site.bonds, len(site))
    ranks = np.array(Chem.CanonicalRankAtoms(site.graph, breakTies=False))
    centres, chosen = [], []
    for atom, around in enumerate(neighbours):
        if site.elements[atom] not in _STEREO_ELEMENTS or len(around) not in (3, 4):
            continue
        if len(set(ranks[around])) != len(around):
            continue
        trio = np.array(around[:3])
        if abs(chiral_volumes(ideal, np.array([atom]), trio[None])[0]) < FLAT_VOLUME:
            continue
        centres.append(atom)
        chosen.append(trio)
    return np.array(centres, dtype=int), np.array(chosen, dtype=int).reshape(-1, 3)


def flat_groups(site: LigandSite, ideal: np.ndarray) -> list[np.ndarray]:
    """Atom groups that are planar in the ideal geometry: flat rings with substituents, and sp2 centres."""
    neighbours = _neighbour_lists(site.bonds, len(site))
    groups = []
    for ring in Chem.GetSymmSSSR(site.graph):
        ring = list(ring)
        if plane_deviations(ideal[ring]).max() > IDEAL_PLANE_RMS:
            continue
        with_substituents = sorted(set(ring) | {n for a in ring for n in neighbours[a]})
        groups.append(np.array(with_substituents if plane_deviations(ideal[with_substituents]).max() <= 2 * IDEAL_PLANE_RMS else ring))
    for atom, around in enumerate(neighbours):
        if len(around) == 3 and abs(chiral_volumes(ideal, np.array([atom]), np.array([around]))[0]) < 0.1:
            group = np.array([atom, *around])
            if not any(set(group) <= set(g) for g in groups):
                groups.append(group)
    return groups


def aromatic_rings(site: LigandSite, ideal: np.ndarray | None) -> list[np.ndarray]:
    """5- and 6-membered rings that are flat in the ideal geometry (in the model when there is none)."""
    coordinates = site.coordinates if ideal is None else ideal
    limit = PLANE_DEVIATION_LIMIT if ideal is None else IDEAL_PLANE_RMS
    rings = [np.array(list(r)) for r in Chem.GetSymmSSSR(site.graph) if len(r) in (5, 6)]
    return [r for r in rings if plane_deviations(coordinates[r]).max() <= limit]


def plane_deviations(points: np.ndarray) -> np.ndarray:
    """Distance (Å) of each point from the least-squares plane through them."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return np.abs(centred @ normal)


def _neighbour_lists(bonds: np.ndarray, count: int) -> list[list[int]]:
    neighbours: list[list[int]] = [[] for _ in range(count)]
    for i, j in bonds:
        neighbours[int(i)].append(int(j))
        neighbours[int(j)].append(int(i))
    return neighbours
