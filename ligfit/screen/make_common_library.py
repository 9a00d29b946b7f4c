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

from rdkit import Chem

from ligfit.errors import LigfitError
from ligfit.ligand import parse_ligand

OUTPUT = Path(__file__).with_name("common_ligands.csv")

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
            smiles = Chem.MolToSmiles(Chem.RemoveHs(mol))
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
