"""How usual a pose's torsions are: the experimental torsion preferences RDKit's ETKDG embeds conformers with.

ETKDG (Riniker & Landrum, J. Chem. Inf. Model. 2015; Wang et al. 2020 for version 2) describes each rotatable bond
matched by one of its SMARTS patterns with a Fourier series fitted to the torsion's distribution in small-molecule
crystal structures (the CSD): E(φ) = Σₖ Vₖ (1 + sₖ cos kφ), k = 1 … 6. A torsion at the bottom of its well is one
crystal structures show often; one far up it is rare, as wwPDB validation flags torsions against Mogul's CSD
statistics. MMFF's strain says little of it: a force field's torsion terms are soft. As evidence of which docked pose
is right it did not help, and pulling docked poses into their wells, always or only where the density lets them go,
did not place more ligands (docs/benchmarks.md "Round 40", "Round 41"). The joint refinement adds these potentials
beside the ligand's force field (``RefinementOptions.torsion_preference_weight``, "Round 42"); ``ligfit evaluate``
reports rare torsions in each ligand's geometry, and build's refinement before and after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom

#: A torsion this far up its crystal-structure potential is rare: 58 of the 2,178 torsions (2.7 %) of the 427 deposited
#: ligands in ``../shared/data`` (PoseBusters set) are, in 48 of the ligands (11 %).
RARE_TORSION_ENERGY = 10.0
#: The Fourier orders of ETKDG's torsion potentials.
_ORDERS = np.arange(1, 7)
#: cos kφ at every whole degree (360, 6): where each potential's minimum and wells are looked for.
_GRID_COSINES = np.cos(np.outer(np.deg2rad(np.arange(360.0)), _ORDERS))


@dataclass(frozen=True)
class TorsionPreferences:
    """The ligand's torsions that ETKDG has a preference for: atom quadruples and their potentials."""

    atoms: np.ndarray  # (t, 4) heavy-atom indices
    coefficients: np.ndarray  # (t, 6) Vₖ × sₖ
    offsets: np.ndarray  # (t,) Σₖ Vₖ less the potential's minimum, so that each torsion's best angle costs 0

    @classmethod
    def of(cls, mol: Chem.Mol) -> TorsionPreferences:
        """The preferences of ``mol``'s torsions; atom indices count its heavy atoms only, in their order in ``mol``."""
        heavy = Chem.RemoveHs(mol)
        found = rdDistGeom.GetExperimentalTorsions(heavy)
        kept = [torsion for torsion in found if len(torsion["atomIndices"]) == 4]
        atoms = np.array([list(torsion["atomIndices"]) for torsion in kept], int).reshape(-1, 4)
        coefficients = np.array([np.multiply(list(t["V"]), list(t["signs"])) for t in kept], float).reshape(-1, 6)
        # E(φ) = Σₖ Vₖ + Σₖ Vₖsₖ cos kφ; less its minimum that is Σₖ Vₖsₖ cos kφ − min over φ of the same.
        offsets = -(_GRID_COSINES @ coefficients.T).min(axis=0) if len(kept) else np.zeros(0)
        return cls(atoms, coefficients, offsets)

    def energies(self, coordinates: np.ndarray) -> np.ndarray:
        """Each torsion's energy above its potential's minimum at ``coordinates`` (heavy atoms first, Å): ≥ 0."""
        if not len(self.atoms):
            return np.zeros(0)
        angles = dihedrals(np.asarray(coordinates, float)[self.atoms])
        values = self.offsets + (np.cos(angles[:, None] * _ORDERS) * self.coefficients).sum(axis=1)
        return values.clip(min=0.0)

    def windows(self, coordinates: np.ndarray, above: float, tolerance: float) -> list[tuple[int, int, int, int, float, float]]:
        """For each torsion more than ``above`` up its potential: its atoms and the angles (degrees) within ``tolerance``
        of the bottom of the well it sits in, found by walking downhill from its angle in 1° steps."""
        energies = self.energies(coordinates)
        chosen = np.flatnonzero(energies > above)
        if not len(chosen):
            return []
        angles = np.degrees(dihedrals(np.asarray(coordinates, float)[self.atoms[chosen]]))
        curves = self.offsets[chosen] + _GRID_COSINES @ self.coefficients[chosen].T  # (360, chosen)
        found = []
        for column, (index, angle) in enumerate(zip(chosen, angles)):
            curve, at = curves[:, column], int(round(angle)) % 360
            while True:
                lower = min((at - 1) % 360, (at + 1) % 360, key=lambda step: curve[step])
                if curve[lower] >= curve[at]:
                    break
                at = lower
            bottom = at if at <= 180 else at - 360
            i, j, k, m = (int(atom) for atom in self.atoms[index])
            found.append((i, j, k, m, bottom - tolerance, bottom + tolerance))
        return found

    def rare(self, coordinates: np.ndarray) -> int:
        """How many torsions sit more than :data:`RARE_TORSION_ENERGY` up their potential at ``coordinates``."""
        return int(np.sum(self.energies(coordinates) > RARE_TORSION_ENERGY))

    def total(self, coordinates: np.ndarray) -> float:
        """The summed energy of the ligand's preferred torsions above their minima (0 for a ligand with none)."""
        return float(self.energies(coordinates).sum())


def dihedrals(quadruples: np.ndarray) -> np.ndarray:
    """Dihedral angles (radians) of (t, 4, 3) atom positions."""
    b0 = quadruples[:, 0] - quadruples[:, 1]
    b1 = quadruples[:, 2] - quadruples[:, 1]
    b2 = quadruples[:, 3] - quadruples[:, 2]
    b1 = b1 / np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - (b0 * b1).sum(axis=1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(axis=1, keepdims=True) * b1
    x = (v * w).sum(axis=1)
    y = (np.cross(b1, v) * w).sum(axis=1)
    return np.arctan2(y, x)
