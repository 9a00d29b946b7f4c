"""Map I/O conventions, simulation and grid operations, on the real maps in ../shared/data."""

from __future__ import annotations

import gzip

import mrcfile
import numpy as np
import pytest

from ligfit import io, maps
from ligfit.errors import BadMapError
from ligfit.maps import DensityMap

REAL_MAPS = [
    "em/maps_with_models/EMD-3488_5ME2_hemoglobin/emd_3488.mrc",
    "em/maps_with_models/EMD-20026_apoferritin_crop/emd20026_prot.mrc",
    "em/maps_with_models/EMD-21457_6VYB_spike_NTD_segment/emd_21457_seg.mrc",
    "em/maps_with_models/EMD-2566_3J6B_chain9/emd_2566_3J6B_chain9_crop.mrc",
    "em/ligand_boxes/8gua/8gua_ligand_map.mrc",
]


@pytest.mark.parametrize("relative", REAL_MAPS)
def test_real_map_round_trip_keeps_values_origin_and_voxel(data, relative, tmp_path):
    original = maps.read_map(data / relative)
    maps.write_map(original, tmp_path / "copy.mrc")
    copy = maps.read_map(tmp_path / "copy.mrc")
    np.testing.assert_array_equal(copy.values, original.values)
    np.testing.assert_allclose(copy.origin, original.origin, atol=1e-4)
    np.testing.assert_allclose(copy.voxel_size, original.voxel_size, rtol=1e-6)


def test_model_sits_in_the_density_it_was_fitted_to(data):
    """Origin handling: 5ME2 atoms fall on high density of EMD-3488, not on noise."""
    folder = data / "em/maps_with_models/EMD-2566_3J6B_chain9"
    density = maps.read_map(folder / "emd_2566_3J6B_chain9_crop.mrc")
    atoms = io.heavy_atoms(io.read_structure(folder / "3J6B_chain9.pdb"))
    at_atoms = density.interpolate(atoms.coordinates)
    assert np.median(at_atoms) > density.values.mean() + 1.5 * density.values.std()


@pytest.mark.parametrize("order", [(3, 1, 2), (2, 3, 1), (3, 2, 1)])
def test_axis_order_and_nstart_are_honoured_to_the_voxel(data, order, tmp_path):
    """Write a real map with a permuted MAPC/MAPR/MAPS and NSTART instead of ORIGIN; read it back in x,y,z."""
    original = maps.read_map(data / "em/ligand_boxes/8txz/8txz_ligand_map.mrc")
    start = np.array([7, -3, 11])  # voxels, x y z
    mapc, mapr, maps_ = order
    xyz = original.values
    # Stored array is (sections, rows, columns); axis k of xyz is x/y/z.
    stored = np.transpose(xyz, (maps_ - 1, mapr - 1, mapc - 1))
    path = tmp_path / "permuted.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ascontiguousarray(stored))
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = mapc, mapr, maps_
        shape_xyz = np.array(xyz.shape)
        mrc.header.mx, mrc.header.my, mrc.header.mz = shape_xyz
        mrc.header.cella = tuple(shape_xyz * original.voxel_size)
        crs_start = [start[mapc - 1], start[mapr - 1], start[maps_ - 1]]
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = crs_start
        mrc.header.origin = (0.0, 0.0, 0.0)
    read = maps.read_map(path)
    np.testing.assert_array_equal(read.values, xyz)
    np.testing.assert_allclose(read.origin, start * original.voxel_size, atol=1e-4)


def test_simulated_model_density_correlates_with_the_real_map(hemoglobin):
    density, structure = hemoglobin
    simulated = maps.simulate(structure, 3.2, like=density)
    near = simulated.values > 0.05 * simulated.values.max()
    cc = np.corrcoef(simulated.values[near], density.values[near])[0, 1]
    assert cc > 0.6  # measured 0.68 around the model


def test_simulate_keeps_density_inside_a_small_box():
    """Atoms outside the box must not wrap into it (the gemmi cell is periodic)."""
    import gemmi

    structure = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for index, x in enumerate((0.0, 30.0)):
        residue = gemmi.Residue()
        residue.name, residue.seqid = "HOH", gemmi.SeqId(index + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "O", gemmi.Element("O"), gemmi.Position(x, 0, 0)
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    box = DensityMap(np.zeros((11, 11, 11)), 1.0, (-5, -5, -5))
    simulated = maps.simulate(structure, 3.0, like=box)
    peak = np.unravel_index(np.argmax(simulated.values), simulated.shape)
    assert peak == (5, 5, 5)
    assert simulated.values[0].max() < 0.01 * simulated.values.max()  # nothing from the atom 30 Å away


def test_noise_is_scaled_to_the_signal(hemoglobin):
    density, structure = hemoglobin
    clean = maps.simulate(structure, 3.0, like=density)
    noisy = maps.simulate(structure, 3.0, like=density, noise=0.2, seed=1)
    atoms = io.heavy_atoms(structure).coordinates
    ratio = (noisy.values - clean.values).std() / clean.interpolate(atoms).mean()
    assert ratio == pytest.approx(0.2, rel=0.02)


def test_crystallographic_map_is_cut_around_the_model(data):
    structure = io.read_structure(data / "xray/3NZD/3nzd.cif")
    atoms = io.heavy_atoms(structure).coordinates
    density = maps.read_map(data / "xray/3NZD/3nzd.ccp4.gz", around=atoms)
    assert maps.fraction_inside(density, atoms) == 1.0
    at_atoms = density.interpolate(atoms)
    assert np.median(at_atoms) > density.values.mean() + 1.0 * density.values.std()
    with pytest.raises(BadMapError, match="crystallographic"):
        maps.read_map(data / "xray/3NZD/3nzd.ccp4.gz")


def test_box_and_resample_preserve_values(hemoglobin):
    density, structure = hemoglobin
    atoms = io.heavy_atoms(structure).coordinates[:200]
    boxed = maps.box(density, atoms.mean(0), 30.0)
    inside = boxed.contains(atoms, margin=1.0)
    np.testing.assert_allclose(boxed.interpolate(atoms[inside]), density.interpolate(atoms[inside]), atol=1e-6)
    finer = maps.resample(density, 0.7)
    cc = np.corrcoef(finer.interpolate(atoms), density.interpolate(atoms))[0, 1]
    assert cc > 0.98


# --------------------------------------------------------------------------- bad input


def _small_map(path, **header):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32))
        mrc.voxel_size = 1.0
        for key, value in header.items():
            setattr(mrc.header, key, value)


def test_missing_map_names_the_file(tmp_path):
    with pytest.raises(BadMapError, match="no such map file"):
        maps.read_map(tmp_path / "absent.mrc")


def test_truncated_map_is_refused(tmp_path):
    path = tmp_path / "full.mrc"
    _small_map(path)
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(path.read_bytes()[:-700])
    with pytest.raises(BadMapError, match="truncated"):
        maps.read_map(truncated)


def test_not_a_map_is_refused(tmp_path):
    path = tmp_path / "junk.mrc"
    path.write_bytes(b"this is not a map" * 20)
    with pytest.raises(BadMapError, match="not a readable"):
        maps.read_map(path)


def test_gzip_that_is_not_a_map_is_refused(tmp_path):
    path = tmp_path / "junk.mrc.gz"
    path.write_bytes(gzip.compress(b"junk" * 100))
    with pytest.raises(BadMapError):
        maps.read_map(path)


def test_map_without_voxel_size_is_refused(tmp_path):
    path = tmp_path / "novoxel.mrc"
    _small_map(path)
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.cella = (0.0, 0.0, 0.0)
    with pytest.raises(BadMapError, match="voxel size"):
        maps.read_map(path)


def test_empty_map_is_refused(tmp_path):
    path = tmp_path / "empty.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((8, 8, 8), dtype=np.float32))
        mrc.voxel_size = 1.0
    with pytest.raises(BadMapError, match="empty"):
        maps.read_map(path)


def test_impossible_axis_order_is_refused(tmp_path):
    path = tmp_path / "axes.mrc"
    _small_map(path)
    with mrcfile.open(path, mode="r+", permissive=True) as mrc:
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 1, 1, 3
    with pytest.raises(BadMapError, match="axis order"):
        maps.read_map(path)
