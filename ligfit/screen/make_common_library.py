"""Rebuild ligfit/screen/common_ligands.csv: ligands that turn up in cryo-EM and crystal maps.

Every molecule comes from the Chemical Component Dictionary that ships with biotite
(``biotite.structure.info``), read the way ``ligfit build --ligand ccd:CODE`` reads it; the
CSV keeps the CCD code, the CCD's name, a category and the SMILES.

    python -m ligfit.screen.make_common_library
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from ligfit.errors import LigfitError
from ligfit.ligand import parse_ligand

OUTPUT = Path(__file__).with_name("common_ligands.csv")
#: elements whose CCD stereo tags are dropped (:func:`without_metal_tetrahedra`)
METALS = frozenset({"Fe", "Zn", "Mg", "Ca", "Na", "K", "Mn", "Ni", "Cu", "Co", "Cd"})

#: CCD codes by category (what the identification library holds).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "nucleotide": ("ATP", "ADP", "AMP", "ANP", "AGS", "ACP", "GTP", "GDP", "GNP", "UDP", "CTP"),
    "cofactor": (
        "NAD",
        "NAI",
        "NAP",
        "NDP",
        "FAD",
        "FMN",
        "COA",
        "ACO",
        "SAM",
        "SAH",
        "PLP",
        "TPP",
        "HEM",
        "HEC",
        "HEA",
        "SF4",
        "FES",
        "BCR",
    ),
    "buffer/cryo": (
        "GOL",
        "EDO",
        "PEG",
        "PGE",
        "PG4",
        "1PE",
        "P6G",
        "MPD",
        "DMS",
        "SO4",
        "PO4",
        "MES",
        "EPE",
        "TRS",
        "ACT",
        "CIT",
        "FMT",
        "IMD",
        "BTB",
    ),
    "detergent": ("LMT", "LMN", "AJP", "Y01", "BOG", "DDR", "UND"),
    "lipid": ("POV", "PCW", "PEE", "3PE", "CDL", "CLR", "PLM", "OLA", "PEF", "LBN"),
    "sugar": ("NAG", "NDG", "MAN", "BMA", "BGC", "GLC", "GAL", "FUC", "SIA"),
    "ion": ("ZN", "MG", "CA", "NA", "K", "MN", "FE", "FE2", "CL", "NI", "CU", "CO", "CD", "IOD", "BR"),
}


def ccd_name(code: str) -> str:
    import biotite.structure.info as ccd

    try:
        return str(ccd.full_name(code)).strip()
    except (AttributeError, KeyError):
        return code


def without_metal_tetrahedra(mol: Chem.Mol) -> Chem.Mol:
    """The molecule with a metal's tetrahedral tag among four ligands made square-planar.

    The CCD marks HEA's iron, bound to four porphyrin nitrogens in a plane, as a tetrahedral
    centre; ETKDG cannot satisfy that (nor an unspecified centre) and embedding ran for minutes
    without an answer. Of the three square-planar arrangements the one kept embeds with its
    two trans angles closest to 180° (HEM and HEC come from the CCD square-planar already).
    """
    metals = [
        atom.GetIdx()
        for atom in mol.GetAtoms()
        if atom.GetSymbol() in METALS
        and atom.GetDegree() == 4
        and atom.GetChiralTag() in (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
    ]
    for index in metals:
        candidates = []
        for permutation in (1, 2, 3):
            copy = Chem.RWMol(mol)
            copy.GetAtomWithIdx(index).SetChiralTag(Chem.ChiralType.CHI_SQUAREPLANAR)
            copy.GetAtomWithIdx(index).SetUnsignedProp("_chiralPermutation", permutation)
            candidates.append((_trans_angles(copy.GetMol(), index), permutation, copy.GetMol()))
        mol = max(candidates, key=lambda item: item[0])[2]
    return mol


def _trans_angles(mol: Chem.Mol, metal: int) -> float:
    """The two largest ligand–metal–ligand angles (degrees, summed) of one ETKDG conformer (0 if none embeds)."""
    embedded = Chem.AddHs(mol)
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = 1
    params.useRandomCoords = True
    if rdDistGeom.EmbedMolecule(embedded, params) < 0:
        return 0.0
    xyz = embedded.GetConformer().GetPositions()
    neighbours = [atom.GetIdx() for atom in embedded.GetAtomWithIdx(metal).GetNeighbors() if atom.GetAtomicNum() > 1]
    bonds = xyz[neighbours] - xyz[metal]
    bonds /= np.linalg.norm(bonds, axis=1)[:, None]
    angles = np.degrees(np.arccos(np.clip(bonds @ bonds.T, -1.0, 1.0)))[np.triu_indices(len(neighbours), 1)]
    return float(np.sort(angles)[-2:].sum())


def build(output: Path = OUTPUT) -> list[dict]:
    """Read every code from the CCD and write the CSV; codes the CCD lacks are reported and left out."""
    rows = []
    for category, codes in CATEGORIES.items():
        for code in codes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mol = parse_ligand(f"ccd:{code}")
            except LigfitError as error:
                print(f"left out {code}: {error}", file=sys.stderr)
                continue
            smiles = Chem.MolToSmiles(without_metal_tetrahedra(Chem.RemoveHs(mol)))
            if Chem.MolFromSmiles(smiles) is None:
                print(f"left out {code}: its SMILES does not read back", file=sys.stderr)
                continue
            rows.append(
                {"code": code, "name": ccd_name(code), "category": category, "heavy_atoms": mol.GetNumHeavyAtoms(), "smiles": smiles}
            )
    with open(output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["code", "name", "category", "heavy_atoms", "smiles"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


if __name__ == "__main__":
    written = build()
    print(f"wrote {len(written)} ligands to {OUTPUT}")
