"""Side chains of a traced model placed into the density: the best of a grid of rotamers per residue.

The ideal CCD side chain superposed on a traced backbone points wherever the CCD's torsions put it,
often into a neighbour's or a ligand's density. Here every χ torsion is tried at the staggered
values (−60°, 60°, 180°; aromatic and amide χ2 at −90°, 0°, 90°), and the rotamer with the highest
mean map density at its atoms beyond Cβ, less a penalty for each atom within 2.8 Å of another
residue's backbone, is kept. Residues without a rotatable χ (Gly, Ala, Pro) are left as built.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree

from ligfit.maps import DensityMap
from ligfit.measures.torsions import dihedrals

#: χ axes (the rotation bond, as atom names) of each residue type with rotatable side-chain bonds.
CHI_AXES: dict[str, tuple[tuple[str, str], ...]] = {
    "ARG": (("CA", "CB"), ("CB", "CG"), ("CG", "CD"), ("CD", "NE")),
    "ASN": (("CA", "CB"), ("CB", "CG")),
    "ASP": (("CA", "CB"), ("CB", "CG")),
    "CYS": (("CA", "CB"),),
    "GLN": (("CA", "CB"), ("CB", "CG"), ("CG", "CD")),
    "GLU": (("CA", "CB"), ("CB", "CG"), ("CG", "CD")),
    "HIS": (("CA", "CB"), ("CB", "CG")),
    "ILE": (("CA", "CB"), ("CB", "CG1")),
    "LEU": (("CA", "CB"), ("CB", "CG")),
    "LYS": (("CA", "CB"), ("CB", "CG"), ("CG", "CD"), ("CD", "CE")),
    "MET": (("CA", "CB"), ("CB", "CG"), ("CG", "SD")),
    "PHE": (("CA", "CB"), ("CB", "CG")),
    "SER": (("CA", "CB"),),
    "THR": (("CA", "CB"),),
    "TRP": (("CA", "CB"), ("CB", "CG")),
    "TYR": (("CA", "CB"), ("CB", "CG")),
    "VAL": (("CA", "CB"),),
}
#: Residues whose χ2 turns a planar group (ring or amide/carboxylate): sampled at other angles.
PLANAR_CHI2 = {"ASN", "ASP", "HIS", "PHE", "TRP", "TYR"}
STAGGERED = (-60.0, 60.0, 180.0)
PLANAR = (-90.0, 0.0, 90.0)
#: Remoteness of a side-chain atom from the letter after its element (Cβ = 1 … Cη = 6).
_DEPTH = {"B": 1, "G": 2, "D": 3, "E": 4, "Z": 5, "H": 6}
BACKBONE = ("N", "CA", "C", "O")
CLASH_DISTANCE = 2.8  # Å to another residue's N, Cα, C, O or Cβ, or to an obstacle atom
CLASH_PENALTY = 1.0  # map σ per clashing atom
#: Moves of one step size tried at most this many times in a row when refining a rotamer (``fit_rotamers(refine=…)``).
REFINE_ROUNDS = 6


def depth(atom_name: str) -> int:
    """How far along the side chain an atom sits (CB 1, CG* 2, …; backbone 0)."""
    if atom_name in BACKBONE or len(atom_name) < 2:
        return 0
    return _DEPTH.get(atom_name[1], 0)


def grid_angles(name: str) -> list[tuple[float, ...]]:
    """The χ angles (degrees) of every grid rotamer of a residue type (one empty tuple without χ)."""
    axes = CHI_AXES.get(name, ())
    return list(itertools.product(*(PLANAR if k == 1 and name in PLANAR_CHI2 else STAGGERED for k in range(len(axes)))))


def rotamers(name: str, atom_names: list[str], coordinates: np.ndarray, angles: list[tuple[float, ...]] | None = None) -> np.ndarray:
    """Every grid rotamer (R, atoms, 3) of one residue built with ideal geometry; (1, atoms, 3) without χ.

    ``angles``: these χ angles (degrees, one tuple per rotamer) instead of the grid's.
    """
    axes = CHI_AXES.get(name, ())
    if not axes:
        return coordinates[None]
    index = {a: k for k, a in enumerate(atom_names)}
    if any(a not in index or b not in index for a, b in axes):
        return coordinates[None]
    current = [_dihedral(coordinates, index, atom_names, axes, k) for k in range(len(axes))]
    built = []
    for chosen in grid_angles(name) if angles is None else angles:
        xyz = coordinates.copy()
        for (a, b), target, now in zip(axes, chosen, current):
            moving = [k for k, atom in enumerate(atom_names) if depth(atom) > depth(b)]
            xyz[moving] = _rotate(xyz[moving], xyz[index[a]], xyz[index[b]], np.radians(target - now))
        built.append(xyz)
    return np.stack(built)


def _dihedral(coordinates: np.ndarray, index: dict[str, int], atom_names: list[str], axes: tuple[tuple[str, str], ...], k: int) -> float:
    """Current χ(k+1) in degrees: N–CA–CB–XG for χ1, then each χ starts one atom further along (CA–CB–CG–XD, …)."""
    a, b = axes[k]
    previous = "N" if k == 0 else axes[k - 1][0]
    following = next(n for n in atom_names if depth(n) == depth(b) + 1)
    quadruple = coordinates[[index[n] for n in (previous, a, b, following)]]
    return float(np.degrees(dihedrals(quadruple[None])[0]))


def _rotate(points: np.ndarray, origin: np.ndarray, through: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points about the axis origin→through by ``angle`` radians (right-handed)."""
    k = (through - origin) / np.linalg.norm(through - origin)
    p = points - through
    cos, sin = np.cos(angle), np.sin(angle)
    return through + p * cos + np.cross(k, p) * sin + np.outer(p @ k, k) * (1 - cos)


def fit_rotamers(
    residues: list[list[tuple[str, str, np.ndarray]]],
    names: list[str],
    density: DensityMap,
    obstacles: np.ndarray | None = None,
    refine: tuple[float, ...] = (),
) -> list[list[tuple[str, str, np.ndarray]]]:
    """Each residue's side chain turned to the grid rotamer that best fits ``density`` (normalised map, σ units).

    ``obstacles``: atoms of other residues (N, 3) a side chain must avoid as it avoids the given residues' backbone.
    ``refine``: steps (degrees) by which each χ of the best rotamer is then moved, one at a time, while that fits better.
    """
    anchors = [(row, position) for row, atoms in enumerate(residues) for atom, _, position in atoms if atom in (*BACKBONE, "CB")]
    anchors += [(-1, position) for position in ([] if obstacles is None else obstacles)]
    owners = np.array([row for row, _ in anchors])
    tree = cKDTree(np.array([position for _, position in anchors])) if anchors else None
    fitted = []
    for row, (atoms, name) in enumerate(zip(residues, names)):
        atom_names = [a for a, _, _ in atoms]
        coordinates = np.array([p for _, _, p in atoms])
        angles = grid_angles(name)
        options = rotamers(name, atom_names, coordinates, angles)
        if len(options) == 1 or tree is None:
            fitted.append(atoms)
            continue
        beyond = [k for k, a in enumerate(atom_names) if depth(a) >= 2]

        def score(options: np.ndarray, row: int = row, beyond: list[int] = beyond) -> np.ndarray:
            points = options[:, beyond].reshape(-1, 3)
            fit = density.interpolate(points).reshape(len(options), len(beyond)).mean(axis=1)
            clashes = np.zeros(len(points), dtype=int)
            for k, near in enumerate(tree.query_ball_point(points, CLASH_DISTANCE)):
                clashes[k] = int(np.sum(owners[near] != row)) > 0
            return fit - CLASH_PENALTY * clashes.reshape(len(options), len(beyond)).sum(axis=1)

        scores = score(options)
        chosen = int(np.argmax(scores))
        best, best_angles, best_score = options[chosen], angles[chosen], scores[chosen]
        for step in refine:
            for _ in range(REFINE_ROUNDS):
                trial = [
                    tuple(angle + sign * step if k == moved else angle for k, angle in enumerate(best_angles))
                    for moved in range(len(best_angles))
                    for sign in (-1.0, 1.0)
                ]
                options = rotamers(name, atom_names, coordinates, trial)
                scores = score(options)
                chosen = int(np.argmax(scores))
                if scores[chosen] <= best_score:
                    break
                best, best_angles, best_score = options[chosen], trial[chosen], scores[chosen]
        fitted.append([(a, e, best[k]) for k, (a, e, _) in enumerate(atoms)])
    return fitted
