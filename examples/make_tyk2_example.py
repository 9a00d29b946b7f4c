"""Rebuild examples/tyk2/ from the Tyk2 system that ships with openmmforcefields (MIT, PyPI).

The protein and the first ligand (ejm_31) come from
openmmforcefields/data/perses_jacs_systems/tyk2 (the JACS 2015 FEP benchmark, Wang et al.);
the map is what `ligfit simulate` makes from protein + ligand at 3.0 Å with noise.

    pip install openmmforcefields && python examples/make_tyk2_example.py
"""

from __future__ import annotations

from pathlib import Path

from rdkit import Chem

from ligfit import io, maps

RESOLUTION = 3.0
NOISE = 0.2  # noise σ as a fraction of the mean density at atom centres
SEED = 7


def main() -> None:
    import openmmforcefields

    source = Path(openmmforcefields.__file__).parent / "data" / "perses_jacs_systems" / "tyk2"
    out = Path(__file__).parent / "tyk2"
    out.mkdir(exist_ok=True)

    protein = io.read_structure(source / "Tyk2_protein.pdb")
    protein.remove_hydrogens()
    protein.setup_entities()
    for chain in protein[0]:  # the file has a blank chain ID
        chain.name = chain.name.strip() or "A"
    for residue in (r for chain in protein[0] for r in chain):
        for atom in residue:  # the file has no B-factors and occupancy 0
            atom.b_iso = 30.0
            atom.occ = 1.0
    ligand = next(iter(Chem.SDMolSupplier(str(source / "Tyk2_ligands_shifted.sdf"), removeHs=False)))
    ligand_heavy = Chem.RemoveHs(ligand)

    complex_structure = io.add_ligand(
        protein,
        [a.GetSymbol() for a in ligand_heavy.GetAtoms()],
        [f"{a.GetSymbol()}{i + 1}" for i, a in enumerate(ligand_heavy.GetAtoms())],
        ligand_heavy.GetConformer().GetPositions(),
    )
    coordinates = io.heavy_atoms(complex_structure).coordinates
    grid = maps.grid_around(coordinates, 1.0, 5.0)
    density = maps.simulate(complex_structure, RESOLUTION, like=grid, use_b_factors=True, noise=NOISE, seed=SEED)

    maps.write_map(density, out / "map.mrc")
    io.write_structure(protein, out / "protein.pdb")
    io.write_text(out / "ligand.smi", Chem.MolToSmiles(ligand_heavy) + "\n")
    with Chem.SDWriter(str(out / "reference_ligand.sdf")) as writer:
        writer.write(ligand_heavy)
    print(f"wrote {out}: map {density.shape}, {len(coordinates)} heavy atoms, ligand {Chem.MolToSmiles(ligand_heavy)}")


if __name__ == "__main__":
    main()
