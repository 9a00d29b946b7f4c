"""ligfit.segment on self-made fixtures (no ../shared/data): the shipped Tyk2 example and a map simulated here.

The shipped example map holds the protein and its ligand at 3 Å with noise; the simulated one is made
from the example protein plus the reference ligand with ``ligfit.maps.simulate``. In both the
difference map must show the ligand as the first blob.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gemmi
import numpy as np
import pytest
from rdkit import Chem

from ligfit import io, maps, segment
from ligfit.errors import BadModelError
from ligfit.ligand import load_ligand
from ligfit.records import LigandShape

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"
RESOLUTION = 3.0


@pytest.fixture(scope="module")
def protein() -> gemmi.Structure:
    return io.read_structure(EXAMPLE / "protein.pdb")


@pytest.fixture(scope="module")
def protein_xyz(protein) -> np.ndarray:
    return io.heavy_atoms(protein).coordinates


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, list[str]]:
    mol = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    return mol.GetConformer().GetPositions(), [atom.GetSymbol() for atom in mol.GetAtoms()]


@pytest.fixture(scope="module")
def shape() -> LigandShape:
    ligand = load_ligand((EXAMPLE / "ligand.smi").read_text().strip(), max_conformers=6, seed=0)
    return LigandShape.from_conformers(ligand.conformer_coordinates()[:, : ligand.heavy_atom_count])


@pytest.fixture(scope="module")
def example_map() -> maps.DensityMap:
    return maps.read_map(EXAMPLE / "map.mrc")


@pytest.fixture(scope="module")
def simulated_map(protein, reference, example_map) -> maps.DensityMap:
    """Protein plus reference ligand simulated at 3 Å on the example's grid, with 10 % noise."""
    coordinates, elements = reference
    complex_structure = io.add_ligand(protein, elements, [f"{e}{i}" for i, e in enumerate(elements)], coordinates)
    return maps.simulate(complex_structure, RESOLUTION, like=example_map, noise=0.1, seed=5)


@pytest.fixture(scope="module", params=["example", "simulated"])
def difference(request, protein) -> segment.DifferenceMap:
    density = request.getfixturevalue(f"{request.param}_map")
    return segment.difference_map(density, protein, RESOLUTION)


def test_difference_map_explains_the_protein(difference, example_map):
    assert difference.model_cc > 0.75
    assert difference.noise > 0 and np.isfinite(difference.noise)
    assert difference.scale > 0
    assert difference.model_resolution in [RESOLUTION * f for f in (0.8, 1.0, 1.2, 1.45, 1.7)]
    assert difference.heavy_atom_density is not None and difference.heavy_atom_density > 0
    grid = difference.difference
    assert grid.shape == example_map.shape
    np.testing.assert_allclose(grid.origin, example_map.origin)
    # In σ units: the bulk of the difference map is noise of about unit spread.
    values = grid.values.ravel()
    assert 0.3 < 1.4826 * np.median(np.abs(values - np.median(values))) < 3.0


def test_difference_map_of_a_noiseless_simulation_matches_the_model_closely(protein, example_map):
    clean = maps.simulate(protein, RESOLUTION, like=example_map, noise=0.02, seed=1)
    difference = segment.difference_map(clean, protein, RESOLUTION)
    assert difference.model_cc > 0.95
    assert difference.model_resolution == pytest.approx(RESOLUTION)


def test_ligand_density_stands_out_in_the_difference_map(difference, reference):
    coordinates, _ = reference
    at_ligand = difference.difference.interpolate(coordinates)
    assert np.mean(at_ligand) > 3.0  # σ
    assert np.mean(at_ligand >= 1.0) > 0.8


def test_find_blobs_puts_the_ligand_first(difference, reference, shape, protein_xyz):
    coordinates, _ = reference
    blobs = segment.find_blobs(difference, shape, protein_xyz, threshold=3.0)
    assert blobs, "no blob found"
    assert [blob.rank for blob in blobs] == list(range(len(blobs)))
    first = blobs[0]
    assert np.linalg.norm(first.centroid - coordinates.mean(axis=0)) < 2.0
    assert 12 < first.estimated_heavy_atoms < 35  # the ligand has 21
    assert first.ligand_match > 0.5
    assert first.peak >= 3.0 and first.mean >= 3.0
    assert 1.5 < first.protein_distance < 4.5 and first.protein_contacts > 10
    assert np.all(np.diff(first.extents) <= 0)
    assert np.all([b.ligand_match <= first.ligand_match for b in blobs])


def test_find_blobs_without_a_model(example_map, reference, shape):
    coordinates, _ = reference
    difference = segment.difference_map(example_map, None, RESOLUTION)
    assert difference.scale == 0.0 and difference.noise > 0 and difference.heavy_atom_density is None
    blobs = segment.find_blobs(difference, shape, None, threshold=3.0)
    assert blobs and all(blob.protein_distance == np.inf and blob.estimated_heavy_atoms is None for blob in blobs)
    # Without a model the protein itself is one big region: the ligand lies inside the blobs found.
    assert any(np.min(np.linalg.norm(blob.points - coordinates.mean(axis=0), axis=1)) < 2.0 for blob in blobs)


def test_blobs_far_from_the_protein_are_dropped(difference, shape, protein_xyz):
    near = segment.find_blobs(difference, shape, protein_xyz, threshold=3.0)
    none_near = segment.find_blobs(difference, shape, protein_xyz + 500.0, threshold=3.0)
    assert near and none_near == []


def test_site_blob_collects_the_density_at_a_named_site(difference, reference, shape, protein_xyz):
    coordinates, _ = reference
    centre = coordinates.mean(axis=0)
    blob = segment.site_blob(difference, centre, 6.0, shape, protein_xyz)
    assert blob.rank == 0
    assert np.linalg.norm(blob.centroid - centre) < 2.0
    assert np.all(np.linalg.norm(blob.points - centre, axis=1) <= 6.0 + 1e-6)
    assert np.all(blob.values > 1.0)  # only the positive voxels, when there are enough
    assert blob.estimated_heavy_atoms > 10


def test_site_blob_outside_the_map_is_refused(difference, shape, protein_xyz):
    outside = difference.difference.upper + 50.0
    with pytest.raises(BadModelError, match="outside the map"):
        segment.site_blob(difference, outside, 4.0, shape, protein_xyz)


def test_select_blobs_keeps_the_competitive_ones(difference, shape, protein_xyz):
    blobs = segment.find_blobs(difference, shape, protein_xyz, threshold=2.5)
    assert blobs
    best = blobs[0]
    made = [
        dataclasses.replace(best, rank=0, ligand_match=0.9),
        dataclasses.replace(best, rank=1, ligand_match=0.5),
        dataclasses.replace(best, rank=2, ligand_match=0.095),  # above 0.1 × 0.9 = 0.09 (a weak ligand's blob)
        dataclasses.replace(best, rank=3, ligand_match=0.085),  # below
    ]
    assert [b.rank for b in segment.select_blobs(made, 5)] == [0, 1, 2]
    assert [b.rank for b in segment.select_blobs(made, 2)] == [0, 1]
    assert [b.rank for b in segment.select_blobs(made, 5, relative_match=0.6)] == [0]
    assert segment.select_blobs([], 3) == []
    chosen = segment.select_blobs(blobs, 3)
    assert chosen[0] is best and len(chosen) <= 3


def test_a_model_far_from_the_map_is_refused(example_map, protein):
    far = protein.clone()
    for chain in far[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = gemmi.Position(atom.pos.x + 300.0, atom.pos.y, atom.pos.z)
    with pytest.raises(BadModelError, match="hardly overlaps"):
        segment.difference_map(example_map, far, RESOLUTION)
    with pytest.raises(BadModelError, match="does not overlap"):
        maps.check_overlap(example_map, io.heavy_atoms(far).coordinates, "far.pdb")
    assert maps.check_overlap(example_map, io.heavy_atoms(protein).coordinates, "protein.pdb") > 0.9


def test_a_map_simulated_from_the_model_alone_is_refused(protein, example_map):
    exact = maps.simulate(protein, RESOLUTION, like=example_map)
    with pytest.raises(BadModelError, match="flat"):
        segment.difference_map(exact, protein, RESOLUTION)


def test_a_map_simulated_from_the_model_alone_has_no_blobs(protein, example_map, shape, protein_xyz):
    exact = maps.simulate(protein, RESOLUTION, like=example_map)
    try:
        difference = segment.difference_map(exact, protein, RESOLUTION)
    except BadModelError:
        return  # the clear refusal is also right
    assert difference.model_cc > 0.999
    assert difference.noise < 1e-6 * float(exact.values.std())
    assert segment.find_blobs(difference, shape, protein_xyz) == []
