"""Pictures of a ligand in its density, measured on the shipped example (Tyk2 inhibitor in its 3 Å map)."""

from __future__ import annotations

import io as _io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread
from rdkit import Chem
from scipy.spatial import cKDTree

from ligfit import io, maps, pictures

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"


@pytest.fixture(scope="module")
def scene():
    density = maps.read_map(EXAMPLE / "map.mrc")
    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    xyz = reference.GetConformer().GetPositions()
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in reference.GetBonds()]
    ligand = pictures.Sticks(xyz, [a.GetSymbol() for a in reference.GetAtoms()], bonds)
    protein = io.heavy_atoms(io.read_structure(EXAMPLE / "protein.pdb"))
    residue_ids = [f"{c}:{n}" for c, n in zip(protein.chain, protein.residue_number)]
    pocket = pictures.pocket_sticks(protein.coordinates, protein.elements, residue_ids, xyz)
    return density, reference, ligand, pocket


def _image(png: bytes) -> np.ndarray:
    return imread(_io.BytesIO(png), format="png")


def test_pocket_holds_whole_residues_near_the_ligand_with_bonds_guessed(scene):
    _, _, ligand, pocket = scene
    distance = cKDTree(ligand.coordinates).query(pocket.coordinates)[0]
    assert distance.min() > 2.5 and distance.min() < 4.0  # the nearest pocket atom is in contact, none overlaps
    assert 40 < len(pocket) < 400
    lengths = np.linalg.norm(pocket.coordinates[pocket.bonds[:, 0]] - pocket.coordinates[pocket.bonds[:, 1]], axis=1)
    assert lengths.min() > 1.1 and lengths.max() < 2.0 and len(pocket.bonds) > 0.9 * len(pocket)


def test_contour_covers_the_ligand_and_isosurface_stays_in_its_zone(scene):
    density, _, ligand, pocket = scene
    level = pictures.contour_level(density, pocket.coordinates)
    assert level == pytest.approx(0.5 * np.median(density.interpolate(pocket.coordinates)), rel=1e-6)
    assert np.mean(density.interpolate(ligand.coordinates) > level) >= 0.95  # the ligand's atoms are inside the contour
    triangles = pictures.isosurface(density, level, ligand.coordinates, pictures.ZONE)
    assert len(triangles) > 200
    distance = cKDTree(ligand.coordinates).query(triangles.reshape(-1, 3))[0]
    assert distance.max() <= pictures.ZONE + 1e-6
    assert np.allclose(density.interpolate(triangles.reshape(-1, 3)), level, atol=0.25 * level)  # vertices on the contour


def test_density_views_are_three_coloured_panels_and_leave_pyplot_alone(scene):
    density, _, ligand, pocket = scene
    backend = matplotlib.get_backend()
    png = pictures.density_views(density, ligand, pocket=pocket, atom_q=np.linspace(0.2, 0.9, len(ligand)))
    image = _image(png)
    assert image.shape[1] > 2.5 * image.shape[0] and len(png) < 400_000
    blue = (image[..., 2] > image[..., 0] + 0.2).mean()  # the mesh
    assert blue > 0.02
    assert matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_ligand_2d_and_q_chart(scene):
    _, reference, _, _ = scene
    q = np.linspace(0.1, 0.9, reference.GetNumAtoms())
    depiction = pictures.ligand_2d(reference, q)
    assert depiction[:4] == b"\x89PNG" or depiction.lstrip().startswith(b"<")
    if depiction[:4] == b"\x89PNG":
        image = _image(depiction)
        red = (image[..., 0] > 0.7) & (image[..., 1] < 0.5) & (image[..., 2] < 0.4)
        green = (image[..., 1] > 0.5) & (image[..., 0] < 0.4)
        assert red.mean() > 0.001 and green.mean() > 0.001  # low-Q atoms red, high-Q atoms green
    chart = _image(pictures.q_score_chart([f"A{i}" for i in range(len(q))], q, 0.6))
    assert chart.shape[0] > 100 and chart.shape[1] > 400
