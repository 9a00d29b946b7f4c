"""The docking's speed-ups compute the same numbers as the plain formulations, to the last bit (real ligand, 8HFL box)."""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import pytest
import torch
from em_box_site import random_rotations, site_1xr
from rdkit.Chem import AllChem
from test_screen import EXAMPLE, TEST_DOCKING, TRUE_LIGAND

from ligfit import io, maps, segment
from ligfit.dock import search
from ligfit.dock.grow import _overlap, _rotate, _rotate_each
from ligfit.dock.options import DockingOptions
from ligfit.dock.place import _each_blob, dock
from ligfit.dock.search import SMOOTH, PoseBatch, TorsionTree, clash_limits, fit_loss
from ligfit.ligand import load_ligand, mmff_properties, posed_mol
from ligfit.measures import relax_pose
from ligfit.records import LigandShape


@pytest.fixture(scope="module")
def poses(data):
    """1XR in its real EMDB box: 8 conformers, each in 24 random orientations and torsions about the blob centre."""
    ligand, conformers, site, blob = site_1xr(data)
    heavy = ligand.heavy_atom_count
    rng = np.random.default_rng(0)
    index = np.repeat(np.arange(len(conformers)), 24)
    rotations = random_rotations(rng, len(index)).numpy()
    batch = PoseBatch(conformers[index], rotations, np.repeat(blob.centroid[None], len(index), 0), heavy, index)
    tree = TorsionTree.from_ligand(ligand)
    batch.enable_torsions(len(tree.axes))
    with torch.no_grad():
        batch.torsion += torch.as_tensor(rng.uniform(-np.pi, np.pi, batch.torsion.shape), dtype=torch.float32)
    return ligand, tree, site, batch


def _plain_fit_loss(heavy_xyz, site, limits, channel, options, pairs, pair_limits):
    """fit_loss with the internal pairs gathered from (poses, atoms, 3), as it was written before."""
    loss = fit_loss(heavy_xyz, site, limits, channel, options)
    i, j = torch.as_tensor(pairs.T)
    separation = torch.sqrt(((heavy_xyz.index_select(1, i) - heavy_xyz.index_select(1, j)) ** 2).sum(-1) + 1e-9)
    return loss + options.internal_weight * (torch.relu(torch.as_tensor(pair_limits, dtype=separation.dtype) - separation) ** 2).sum(-1)


def test_internal_clash_term_gives_the_same_loss_and_gradients(poses):
    ligand, tree, site, batch = poses
    assert len(tree.internal_pairs) > 50
    options = DockingOptions()
    limits = clash_limits(ligand.elements[: ligand.heavy_atom_count], options)
    parameters = [batch.translation, batch.rotation, batch.torsion]
    results = []
    for loss_function in (fit_loss, _plain_fit_loss):
        loss = loss_function(
            batch.coordinates(tree, heavy_only=True), site, limits, SMOOTH, options, tree.internal_pairs, tree.internal_limits
        )
        results.append((loss.detach(), torch.autograd.grad(loss.sum(), parameters)))
    (fast_loss, fast_gradients), (plain_loss, plain_gradients) = results
    assert float((plain_loss - fit_loss(batch.coordinates(tree, heavy_only=True).detach(), site, limits, SMOOTH, options)).max()) > 0
    assert torch.equal(fast_loss, plain_loss)
    for fast, plain in zip(fast_gradients, plain_gradients):
        assert torch.equal(fast, plain)


def _first_bond_scan(tree, batch):
    """48 poses as 4 beams of 12, the first rotatable bond, its moving side and the scan's angles (every 15°)."""
    return batch.current(tree)[:48].reshape(4, 12, -1, 3), tree.axes[0], tree.moving[0], np.deg2rad(np.arange(0.0, 360.0, 15.0))


def test_torsion_scan_turns_only_the_moving_side_and_matches_turning_every_atom(poses):
    ligand, tree, _, batch = poses
    beams, (a, b), moving, angles = _first_bond_scan(tree, batch)
    atoms = np.arange(beams.shape[-2])
    turned = _rotate(beams, a, b, moving, angles, atoms)
    # Every atom turned (Rodrigues), then the fixed side put back: what the scan computed before.
    origin = beams[..., b, :][..., None, :]
    axis = beams[..., b, :] - beams[..., a, :]
    axis = (axis / np.linalg.norm(axis, axis=-1, keepdims=True))[..., None, :]
    v = (beams - origin)[:, :, None]
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    axis, origin = axis[:, :, None], origin[:, :, None]
    every = np.where(
        moving[:, None],
        v * cos + np.cross(axis, v) * sin + axis * (axis * v).sum(-1, keepdims=True) * (1 - cos) + origin,
        beams[:, :, None],
    )
    assert np.array_equal(turned, every)
    some = np.flatnonzero(moving)[:3].tolist() + np.flatnonzero(~moving)[:3].tolist()
    assert np.array_equal(_rotate(beams, a, b, moving, angles, np.array(some)), every[..., some, :])
    bond = np.linalg.norm(turned[..., b, :] - turned[..., a, :], axis=-1)
    assert np.allclose(bond, np.linalg.norm(beams[..., b, :] - beams[..., a, :], axis=-1)[..., None])
    # The poses kept from the scan, turned whole one by one, are the poses that were scored.
    beam_index = np.array([[0, 5, 11], [3, 3, 7], [1, 2, 4], [9, 10, 0]])
    angle_index = np.array([[0, 7, 23], [12, 1, 5], [6, 6, 6], [2, 18, 9]])
    rows = np.arange(4)[:, None]
    kept = _rotate_each(beams[rows, beam_index], a, b, moving, np.cos(angles)[angle_index], np.sin(angles)[angle_index])
    assert np.array_equal(kept, every[rows, beam_index, angle_index])


def test_internal_overlap_of_grown_poses_sums_the_same_squares(poses):
    ligand, tree, _, batch = poses
    beams, (a, b), moving, angles = _first_bond_scan(tree, batch)
    heavy = np.arange(ligand.heavy_atom_count)
    new, old = heavy[moving[heavy]][:6], heavy[~moving[heavy]]
    new_xyz, old_xyz = _rotate(beams, a, b, moving, angles, new), _rotate(beams, a, b, moving, angles, old)
    bonds_apart = np.random.default_rng(0).integers(2, 8, (len(new), len(old)))
    options = DockingOptions()
    limits = np.where(bonds_apart >= 5, 3.0, np.where(bonds_apart == 4, 2.6, 0.0))
    separation = np.linalg.norm(new_xyz[..., :, None, :] - old_xyz[..., None, :, :], axis=-1)  # as it was written before
    expected = options.internal_weight * (np.clip(limits - separation, 0, None) ** 2).sum((-1, -2))
    assert expected.max() > 0
    assert np.array_equal(_overlap(new_xyz, old_xyz, bonds_apart, options), expected)


def test_a_large_batch_optimised_in_lanes_ends_where_one_lane_does(poses, monkeypatch):
    """The conformer search's lanes (two threads, one torch thread each, with the survivors chosen across them) give
    every pose, loss and source that one batch on torch's own threads gives, to the bit."""
    ligand, tree, site, batch = poses
    options = DockingOptions()
    limits = clash_limits(ligand.elements[: ligand.heavy_atom_count], options)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for lane_poses in (16, 10**9):  # all the poses, then the 48 survivors in two lanes; one lane
            monkeypatch.setattr(search, "LANE_MIN_POSES", lane_poses)
            run = copy.deepcopy(batch)
            loss = search.optimise(run, site, tree, limits, SMOOTH, 12, options, survivors=48)
            results.append((loss, run.current(tree), run.source))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    (lanes_loss, lanes_xyz, lanes_source), (one_loss, one_xyz, one_source) = results
    assert len(batch) >= 96 and len(one_loss) == 48 and np.ptp(one_loss) > 0.1
    assert np.array_equal(lanes_loss, one_loss) and np.array_equal(lanes_xyz, one_xyz) and np.array_equal(lanes_source, one_source)


def _plain_torsions(coordinates: torch.Tensor, angles: torch.Tensor, tree: TorsionTree) -> torch.Tensor:
    """apply_torsions as it was written before: gathers by indexing, each atom turned by a 3×3 by 3×1 ``@``."""
    chain = tree.chain_on(coordinates.shape[1], coordinates.device)
    origin = coordinates[:, chain.second]
    axis = origin - coordinates[:, chain.first]
    axis = axis / torch.sqrt((axis**2).sum(-1, keepdim=True) + 1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis.shape[:2], 3, 3)
    sin, cos = torch.sin(angles)[..., None, None], torch.cos(angles)[..., None, None]
    rotation = torch.eye(3) + sin * cross + (1 - cos) * (cross @ cross)
    shift = origin - (rotation @ origin[..., None])[..., 0]
    composed_rotation, composed_shift = rotation[:, :0], shift[:, :0]
    for bonds, parents, nested in chain.levels:
        turn, offset = rotation[:, bonds], shift[:, bonds]
        if nested:
            above, above_shift = composed_rotation[:, parents], composed_shift[:, parents]
            turn, offset = above @ turn, (above @ offset[..., None])[..., 0] + above_shift
        composed_rotation = torch.cat([composed_rotation, turn], 1)
        composed_shift = torch.cat([composed_shift, offset], 1)
    fragment_rotation = torch.cat([torch.eye(3).expand(len(coordinates), 1, 3, 3), composed_rotation], 1)
    fragment_shift = torch.cat([torch.zeros_like(shift[:, :1]), composed_shift], 1)
    return (fragment_rotation[:, chain.fragment] @ coordinates[..., None])[..., 0] + fragment_shift[:, chain.fragment]


def test_torsions_applied_with_gathers_and_written_out_products_are_the_plain_ones(poses):
    """apply_torsions' index_select gathers and written-out 3×3 products give the poses and the torsions' gradient that
    indexing and ``@`` gave, to the bit."""
    _, tree, _, batch = poses
    assert len(tree.axes) >= 2 and len(tree.chain(batch.heavy)[0]) >= 2  # nested bonds: more than one level
    local = batch.local[:, : batch.heavy]
    weights = torch.as_tensor(np.random.default_rng(1).normal(size=local.shape), dtype=torch.float32)
    results = []
    for turn in (search.apply_torsions, _plain_torsions):
        angles = batch.torsion.detach().clone().requires_grad_(True)
        posed = turn(local, angles, tree)
        results.append((posed.detach(), torch.autograd.grad((posed * weights).sum(), [angles])[0]))
    (fast, fast_gradient), (plain, plain_gradient) = results
    assert not torch.equal(fast, local)
    assert torch.equal(fast, plain) and torch.equal(fast_gradient, plain_gradient)


def test_the_channels_the_score_reads_sample_as_all_four_do(poses):
    """fit_loss samples the one density channel it reads and the two distance channels: the same values and gradient as
    those rows of all four channels sampled, to the bit (poses partly outside the box too)."""
    _, tree, site, batch = poses
    points = batch.coordinates(tree, heavy_only=True).detach()
    points = torch.cat([points, points + 12.0])  # the second half mostly outside the box: density there reads 0
    weights = torch.as_tensor(np.random.default_rng(2).normal(size=(3, *points.shape[:2])), dtype=torch.float32)
    for channel in (search.SMOOTH, search.SHARP):
        read = (channel, search.APOLAR_DISTANCE, search.POLAR_DISTANCE)
        results = []
        for fewer_channels in (True, False):
            xyz = points.clone().requires_grad_(True)
            values = site.sample(xyz, read) if fewer_channels else site.sample(xyz)[list(read)]
            results.append((values.detach(), torch.autograd.grad((values * weights).sum(), [xyz])[0]))
        (fewer, fewer_gradient), (all_four, all_gradient) = results
        assert float((all_four[0] == 0).float().mean()) > 0.2 and float(all_four[0].abs().max()) > 0.5
        assert torch.equal(fewer, all_four) and torch.equal(fewer_gradient, all_gradient)


def _plain_relax(ligand, coordinates: np.ndarray, force: float) -> tuple[np.ndarray, float]:
    """relax_pose as it was written before: ForceField.Minimize, which holds the GIL."""
    mol = posed_mol(ligand, coordinates)
    properties = mmff_properties(mol)
    restrained = AllChem.MMFFGetMoleculeForceField(mol, properties)
    for index in range(ligand.heavy_atom_count):
        restrained.MMFFAddPositionConstraint(index, 0.0, force)
    restrained.Minimize(maxIts=500)
    relaxed = np.array(restrained.Positions()).reshape(-1, 3)
    energy = AllChem.MMFFGetMoleculeForceField(mol, properties).CalcEnergy(relaxed.ravel().tolist())
    return relaxed, float(energy - ligand.conformer_energies.min())


def test_relaxation_that_lets_go_of_the_gil_ends_where_forcefield_minimize_does(poses):
    """relax_pose minimises through OptimizeMoleculeConfs (so that poses relax on two cores at once): the coordinates
    and strain are ForceField.Minimize's, to the bit, at docking's restraint and the looser flexible one."""
    ligand, tree, _, batch = poses
    assert ligand.force_field == "MMFF94"
    options = DockingOptions()
    for coordinates in batch.current(tree)[::24].astype(float):
        for force in (options.restraint_force, options.flexible_relax_force):
            relaxed, strain = relax_pose(ligand, coordinates, force)
            plain, plain_strain = _plain_relax(ligand, coordinates, force)
            assert np.abs(relaxed - coordinates).max() > 0.05  # it did move
            assert np.array_equal(relaxed, plain) and strain == plain_strain


def test_docking_on_two_torch_threads_gives_the_poses_one_thread_gives(data, monkeypatch):
    """With two torch threads the conformer search runs in lanes, anchor-and-grow beside it and the scored poses relax
    two at a time; the poses and scores are those of one thread, to the bit (1XR in its real 8HFL box; on the CPU: a GPU
    sums in another order)."""
    ligand, _, site, blob = site_1xr(data)
    monkeypatch.setattr(search, "LANE_MIN_POSES", 32)  # this small search in lanes too
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(dock(ligand, site.density, [blob], 3.0, options=DockingOptions(device="cpu")))
    finally:
        torch.set_num_threads(threads)
    one, two = ([pose.coordinates for pose in result.poses] for result in results)
    assert len(one) >= 3 and results[0].best.cc > 0.6
    assert all(np.array_equal(a, b) for a, b in zip(one, two)) and len(one) == len(two)
    assert [pose.score for pose in results[0].poses] == [pose.score for pose in results[1].poses]


def test_blobs_docked_side_by_side_give_the_poses_of_one_after_the_other(monkeypatch):
    """The shipped Tyk2 map's blobs (and the first again, as a third): on two torch threads two blobs go side by side,
    the third in lanes on both; every pose, score and blob is what one thread gives, in the same order."""
    ligand = load_ligand(TRUE_LIGAND, max_conformers=3, seed=0)
    heavy = ligand.heavy_atom_count
    difference = segment.difference_map(maps.read_map(EXAMPLE / "map.mrc"), io.read_structure(EXAMPLE / "protein.pdb"), 3.0)
    blobs = segment.find_blobs(difference, LigandShape.from_conformers(ligand.conformer_coordinates()[:, :heavy]), None)
    blobs = [*blobs[:2], dataclasses.replace(blobs[0], rank=2)]
    assert len({len(blob.points) for blob in blobs[:2]}) == 2
    monkeypatch.setattr(search, "LANE_MIN_POSES", 16)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(dock(ligand, difference.difference, blobs, 3.0, options=dataclasses.replace(TEST_DOCKING, device="cpu")))
    finally:
        torch.set_num_threads(threads)
    one, two = results
    assert {pose.blob_rank for pose in one.poses} == {0, 1}  # the third blob's poses are the first's, clustered away
    assert [(pose.blob_rank, pose.score) for pose in one.poses] == [(pose.blob_rank, pose.score) for pose in two.poses]
    assert all(np.array_equal(a.coordinates, b.coordinates) for a, b in zip(one.poses, two.poses))


def test_an_error_in_one_blob_stops_the_blobs_not_yet_started():
    """Blobs side by side: a blob's error (or Ctrl-C) comes back at once, and the queued blobs are never docked."""
    started = []

    def dock_blob(blob: int) -> list[int]:
        started.append(blob)
        if blob == 1:
            raise ValueError("no conformer fits")
        time.sleep(0.2)
        return [blob]

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="no conformer fits"):
            _each_blob(dock_blob, list(range(12)), lambda *_: None)
        assert len(started) <= 4
        assert _each_blob(lambda blob: [blob], list(range(5)), lambda *_: None) == [[0], [1], [2], [3], [4]]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_an_error_relaxing_one_pose_comes_back_and_the_poses_not_started_are_not_relaxed(monkeypatch):
    """The scored poses relax on two threads: one pose's error comes back from _final_poses, and the poses still
    queued behind it are dropped, not relaxed (as Ctrl-C is)."""
    from ligfit.dock import place

    relaxed = []

    def final_pose(ligand, coordinates, source, *rest):
        if source == "bad":
            raise ValueError("MMFF failed")
        time.sleep(0.05)
        relaxed.append(source)
        return source

    monkeypatch.setattr(place, "_final_pose", final_pose)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sources = ["bad", *(f"pose {i}" for i in range(40))]
        with pytest.raises(ValueError, match="MMFF failed"):
            place._final_poses(None, np.zeros((len(sources), 3, 3)), sources, None, None, 3.0, None, DockingOptions())
        assert place._final_poses(None, np.zeros((3, 3, 3)), ["a", "b", "c"], None, None, 3.0, None, DockingOptions()) == ["a", "b", "c"]
    finally:
        torch.set_num_threads(threads)
    assert len(relaxed) < 40 + 3
