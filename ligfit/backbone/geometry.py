"""Full-atom residues from a Cα trace: backbone from Cα quadrilaterals, side chains from ideal CCD residues.

Backbone: each peptide Cα(i)→Cα(i+1) takes the C(i), O(i), N(i+1) positions that real proteins
show for the same Cα(i-1..i+2) quadrilateral (the BBQ idea: Gront, Kmiecik & Kolinski 2007,
J Comput Chem 28:1593), looked up by nearest neighbours in a table measured on the training
pockets and shipped as data (``weights/peptides.npz``, rebuilt by ``python -m
ligfit.backbone.geometry``). Cβ from the ideal tetrahedral geometry; side chains are the
Chemical Component Dictionary's ideal residue (biotite) superposed on N, Cα, C — one rotamer,
no packing. Coordinates in Å.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ligfit import io
from ligfit.backbone.errors import BadWeightsError
from ligfit.backbone.weights import check_sha256, sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TABLE = WEIGHTS_DIR / "peptides.npz"
#: The twenty standard amino acids' ideal residues from the CCD (biotite's), written by ``--amino-acids``.
AMINO_ACIDS = WEIGHTS_DIR / "amino_acids.json"
STANDARD_AMINO_ACIDS = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)  # fmt: skip
#: Ideal backbone bond lengths (Å; Engh & Huber 2001).
BOND_N_CA, BOND_CA_C, BOND_C_O = 1.458, 1.525, 1.231


def sphere_directions(count: int) -> np.ndarray:
    """``count`` unit vectors (count, 3) spread evenly over the sphere (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5**0.5) * index
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def peptide_frames(ca: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local frames (origin Cα(i), rows x, y, z) and quadrilateral features of each peptide of a chain.

    ``ca`` (L, 3) with L ≥ 2; the chain is extended by one virtual Cα at each end (the next
    Cα step repeated backwards/forwards) so every peptide has a quadrilateral. Returns origins
    (L-1, 3), axes (L-1, 3, 3), features (L-1, 3): r13, r24 and r14 signed by chirality (Å).
    """
    if len(ca) < 2:
        raise ValueError("a chain needs at least two Cα atoms")
    if len(ca) == 2:
        offset = np.cross(ca[1] - ca[0], [0.0, 0.0, 1.0] if abs(ca[1, 2] - ca[0, 2]) < 3 else [1.0, 0.0, 0.0])
        before, after = ca[0] - (ca[1] - ca[0]) + offset, ca[1] + (ca[1] - ca[0]) + offset
    else:
        before, after = ca[0] - (ca[2] - ca[1]), ca[-1] + (ca[-2] - ca[-3])
    full = np.concatenate([before[None], ca, after[None]])
    p1, p2, p3, p4 = full[:-3], full[1:-2], full[2:-1], full[3:]
    x = _unit(p3 - p2)
    v = (p1 - p2) + (p4 - p3)
    y = _unit(v - np.sum(v * x, axis=1, keepdims=True) * x)
    z = np.cross(x, y)
    chirality = np.sign(np.sum(np.cross(p2 - p1, p3 - p2) * (p4 - p3), axis=1))
    features = np.stack([_norm(p3 - p1), _norm(p4 - p2), chirality * _norm(p4 - p1)], axis=1)
    return p2, np.stack([x, y, z], axis=1), features


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1)


class PeptideTable:
    """Nearest-neighbour lookup of C, O, N+1 local coordinates from quadrilateral features."""

    def __init__(self, features: np.ndarray, local: np.ndarray, neighbours: int = 8) -> None:
        self.features = features.astype(float)
        self.local = local.astype(float)  # (s, 3 atoms C/O/N+1, 3)
        self.neighbours = neighbours
        self.tree = cKDTree(self.features)

    def place(self, ca: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """N (L, 3), C (L, 3), O (L, 3) of a chain of Cα positions (L ≥ 2)."""
        origins, axes, features = peptide_frames(ca)
        _, nearest = self.tree.query(features, k=self.neighbours)
        local = self.local[nearest].mean(axis=1)  # (L-1, 3, 3)
        world = origins[:, None] + np.einsum("pak,pkj->paj", local, axes)
        n = np.empty_like(ca)
        c = np.empty_like(ca)
        o = np.empty_like(ca)
        # Keep the directions, restore the bond lengths: averaging neighbours shortens vectors when the
        # traced Cα quadrilateral is unusual, and N(i+1) must sit on Cα(i+1) even when the trace's Cα
        # spacing is off 3.8 Å (the error then goes into the C–N peptide bond, where refinement fixes it).
        c[:-1] = ca[:-1] + BOND_CA_C * _unit(world[:, 0] - ca[:-1])
        o[:-1] = c[:-1] + BOND_C_O * _unit(world[:, 1] - world[:, 0])
        n[1:] = ca[1:] + BOND_N_CA * _unit(world[:, 2] - ca[1:])
        # Chain ends: the terminal N and C/O come from the neighbouring peptide's shape moved onto the end.
        _, first_axes, _ = peptide_frames(np.concatenate([[2 * ca[0] - ca[1]], ca[:2]]))
        n[0] = ca[0] + (n[1] - ca[1]) @ axes[0].T @ first_axes[0]
        c[-1] = ca[-1] + (c[-2] - ca[-2])
        o[-1] = ca[-1] + (o[-2] - ca[-2])
        return n, c, o


def lone_residue_backbone(ca: np.ndarray, n_and_c: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, C, O (each (1, 3)) of a residue with no neighbours: N and C given (or along x), O trans to N about Cα–C."""
    if n_and_c is None:
        angle = np.radians(111.0)
        n_and_c = ca + np.array([[BOND_N_CA, 0.0, 0.0], [BOND_CA_C * np.cos(angle), BOND_CA_C * np.sin(angle), 0.0]])
    n, c = n_and_c
    axis = _unit(c - ca)
    away = _unit((n - ca) - np.dot(n - ca, axis) * axis)  # in the N–Cα–C plane, perpendicular to Cα–C
    angle = np.radians(120.5)  # Cα–C=O
    o = c + BOND_C_O * (np.cos(angle) * -axis - np.sin(angle) * away)
    return n[None], c[None], o[None]


@lru_cache(maxsize=1)
def peptide_table() -> PeptideTable:
    """The shipped table (checked against the sha256 in peptides.json)."""
    meta_path = TABLE.with_suffix(".json")
    if not TABLE.is_file() or not meta_path.is_file():
        raise BadWeightsError(f"{TABLE}: the peptide geometry table is missing; rebuild it with `python -m ligfit.backbone.geometry`")
    meta = json.loads(meta_path.read_text())
    check_sha256(TABLE, meta["sha256"], meta_path.name, "reinstall or rebuild the table")
    with np.load(TABLE, allow_pickle=False) as table:
        return PeptideTable(table["features"], table["local"])


def beta_carbon(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Ideal Cβ (Å) from N, Cα, C (tetrahedral geometry; coefficients as in Dauparas et al. 2022)."""
    b = ca - n
    d = c - ca
    a = np.cross(b, d)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * d + ca


@lru_cache(maxsize=32)
def ideal_residue(name: str) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Heavy-atom names, elements and ideal coordinates of a CCD residue (biotite), without OXT.

    The twenty standard amino acids come from ``weights/amino_acids.json``, the same CCD entries written out
    (``python -m ligfit.backbone.geometry --amino-acids``): reading biotite's whole CCD costs ~4 s per process.
    """
    shipped = _shipped_amino_acids()
    if name in shipped:
        atom_names, elements, coordinates = shipped[name]
        return tuple(atom_names), tuple(elements), np.array(coordinates, dtype=float)
    return _ccd_residue(name)


def _ccd_residue(name: str) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    from biotite.structure import info

    residue = info.residue(name)
    keep = (residue.element != "H") & (residue.atom_name != "OXT")
    return tuple(residue.atom_name[keep]), tuple(residue.element[keep]), residue.coord[keep].astype(float)


@lru_cache(maxsize=1)
def _shipped_amino_acids() -> dict[str, list]:
    return json.loads(AMINO_ACIDS.read_text()) if AMINO_ACIDS.is_file() else {}


def write_amino_acids() -> None:
    """Write the standard amino acids' ideal CCD residues to ``AMINO_ACIDS`` (float32 values, as biotite holds them)."""
    table = {}
    for name in STANDARD_AMINO_ACIDS:
        atom_names, elements, coordinates = _ccd_residue(name)
        table[name] = [list(atom_names), list(elements), coordinates.tolist()]
    io.write_text(AMINO_ACIDS, json.dumps(table) + "\n")


def superpose(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (m, 3, 3) and translations (m, 3) taking ``mobile`` (k, 3) onto each ``target`` (m, k, 3) (Kabsch)."""
    mobile_center = mobile.mean(axis=0)
    target_center = target.mean(axis=1)
    covariance = np.einsum("ki,mkj->mij", mobile - mobile_center, target - target_center[:, None])
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(np.einsum("mij,mjk->mik", u, vt)))
    u[:, :, -1] *= sign[:, None]
    rotation = np.einsum("mij,mjk->mik", u, vt)  # applied as x @ rotation
    return rotation, target_center - mobile_center @ rotation


def full_atoms(n: np.ndarray, ca: np.ndarray, c: np.ndarray, o: np.ndarray, names: list[str]) -> list[list[tuple[str, str, np.ndarray]]]:
    """Every heavy atom of each residue: the given backbone plus the ideal CCD side chain superposed on N, Cα, C."""
    residues: list[list[tuple[str, str, np.ndarray]]] = [[] for _ in names]
    backbone = np.stack([n, ca, c], axis=1)
    for name in sorted(set(names)):
        rows = [i for i, r in enumerate(names) if r == name]
        atom_names, elements, coords = ideal_residue(name)
        index = {a: k for k, a in enumerate(atom_names)}
        rotation, shift = superpose(coords[[index["N"], index["CA"], index["C"]]], backbone[rows])
        placed = np.einsum("ak,mkj->maj", coords, rotation) + shift[:, None]
        for slot, row in enumerate(rows):
            atoms = [("N", "N", n[row]), ("CA", "C", ca[row]), ("C", "C", c[row]), ("O", "O", o[row])]
            atoms += [(a, e, placed[slot, k]) for k, (a, e) in enumerate(zip(atom_names, elements)) if a not in ("N", "CA", "C", "O")]
            residues[row] = atoms
    return residues


def build_table(root: Path, entries: list[str], samples: int = 40000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Quadrilateral features and local C/O/N+1 coordinates of every peptide in the given pockets."""
    from ligfit.backbone.data import peptide_bonded, residue_table

    features, local = [], []
    for entry in entries:
        residues = residue_table(io.read_structure(root / "complexes" / entry / f"{entry}_pocket.pdb"))
        if len(residues) < 4:
            continue
        bonded = peptide_bonded(residues.c, residues.n)
        valid = np.isfinite(residues.o).all(axis=1)
        for segment in np.split(np.arange(len(residues)), np.flatnonzero(~bonded) + 1):
            if len(segment) < 4:
                continue
            ca = residues.ca[segment]
            origins, axes, feature = peptide_frames(ca)
            inner = np.arange(1, len(segment) - 2)  # peptides whose real neighbours exist
            inner = inner[valid[segment[inner]]]
            atoms = np.stack([residues.c[segment[inner]], residues.o[segment[inner]], residues.n[segment[inner + 1]]], axis=1)
            local.append(np.einsum("paj,pkj->pak", atoms - origins[inner, None], axes[inner]))
            features.append(feature[inner])
    features_array, local_array = np.concatenate(features), np.concatenate(local)
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(features_array))[:samples]
    return features_array[keep], local_array[keep]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ligfit.backbone.geometry",
        description="Rebuild weights/peptides.npz from the training split (or, with --amino-acids, weights/amino_acids.json).",
    )
    parser.add_argument("--split", type=Path, default=WEIGHTS_DIR / "split.json")
    parser.add_argument("--data", type=Path, help="unpacked shared data (default: $LIGFIT_DATA)")
    parser.add_argument("--amino-acids", action="store_true", help=f"write {AMINO_ACIDS.name} from biotite's CCD instead")
    args = parser.parse_args(argv)
    if args.amino_acids:
        write_amino_acids()
        print(f"wrote {AMINO_ACIDS} ({len(STANDARD_AMINO_ACIDS)} amino acids)")
        return 0
    from ligfit.backbone.data import data_root, read_split

    root = data_root(args.data)
    split = read_split(args.split)
    features, local = build_table(root, split.entries("train"))
    np.savez_compressed(TABLE, features=features.astype(np.float32), local=local.astype(np.float32))
    meta = {"sha256": sha256(TABLE), "peptides": len(features), "split_sha256": split.sha256}
    meta["source"] = "peptides of the training split's pockets (--data FOLDER/complexes), python -m ligfit.backbone.geometry"
    io.write_text(TABLE.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {TABLE} ({len(features)} peptides)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
