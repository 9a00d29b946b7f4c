"""What else a run knows about a placement: burial of the site (pockets hold ligands, surfaces hold detergent and waters)."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from tyk2_example import EXAMPLE

from ligfit import io
from ligfit.dock.place import burial


def test_the_tyk2_pocket_is_buried_and_a_surface_point_is_not():
    protein = io.heavy_atoms(io.read_structure(EXAMPLE / "protein.pdb"))
    ligand = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf")).GetConformer().GetPositions()
    pocket = burial(ligand, protein)
    centre = protein.coordinates.mean(axis=0)
    outward = protein.coordinates[np.argmax(np.linalg.norm(protein.coordinates - centre, axis=1))] - centre
    surface = centre + outward * (1 + 4.0 / np.linalg.norm(outward))  # 4 Å beyond the farthest atom
    assert pocket > 0.6
    assert burial(surface[None], protein) < 0.4
    assert burial(ligand, None) == 1.0
