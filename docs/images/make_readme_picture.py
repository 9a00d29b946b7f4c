"""Make README's picture: a ligand ligfit placed, in its real cryo-EM density, drawn by ligfit.pictures.

    python docs/images/make_readme_picture.py BUILD_FOLDER MAP RESOLUTION OUT.png [--title TEXT]
    python docs/images/make_readme_picture.py MODEL MAP RESOLUTION OUT.png --residue A:142 [--title TEXT]

BUILD_FOLDER is the output of ``ligfit build`` (ligand.sdf, model.cif); MAP the map it was built
into. The picture is the first placement, coloured by per-atom Q-score, pocket in sticks, at the
contour report.html uses. With ``--residue`` the ligand is that residue of MODEL (bonds from
covalent radii), e.g. a deposited heme.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rdkit import Chem

from ligfit import io, maps, pictures
from ligfit.measures import q_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("map", type=Path)
    parser.add_argument("resolution", type=float)
    parser.add_argument("output", type=Path)
    parser.add_argument("--title", default=None)
    parser.add_argument("--ligand-name", default="LIG")
    parser.add_argument("--residue", help="CHAIN:NUMBER of the ligand in a model (instead of a build folder)")
    args = parser.parse_args()
    density = maps.read_map(args.map)
    if args.residue:
        protein = io.heavy_atoms(io.read_structure(args.build))
        chain, number = args.residue.split(":")
        chosen = (protein.chain == chain) & (protein.residue_number == int(number)) & (protein.residue_name != "HOH")
        sticks = pictures.Sticks.from_atoms(protein.coordinates[chosen], protein.elements[chosen])
        xyz, keep = sticks.coordinates, ~chosen
    else:
        ligand = Chem.MolFromMolFile(str(args.build / "ligand.sdf"))
        xyz = ligand.GetConformer().GetPositions()
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ligand.GetBonds()]
        sticks = pictures.Sticks(xyz, [a.GetSymbol() for a in ligand.GetAtoms()], bonds)
        protein = io.heavy_atoms(io.read_structure(args.build / "model.cif"))
        keep = protein.residue_name != args.ligand_name
    residue_ids = [f"{c}:{n}" for c, n in zip(protein.chain[keep], protein.residue_number[keep])]
    pocket = pictures.pocket_sticks(protein.coordinates[keep], protein.elements[keep], residue_ids, xyz)
    q = q_scores(density, np.concatenate([xyz, protein.coordinates[keep]]), np.arange(len(xyz)))
    title = args.title or f"{args.map.name}, {args.resolution:g} Å: mean Q {np.nanmean(q):.2f}"
    png = pictures.density_views(density, sticks, pocket=pocket, atom_q=q, title=title, panel_inches=3.0, dpi=90)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(png)
    print(f"wrote {args.output} ({len(png) / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
