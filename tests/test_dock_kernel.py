"""The compiled docking search (ligfit/dock/kernel.py) against the torch form it replaces on the CPU: the same loss and
gradient to float rounding, the same optimised poses, and the same numbers however the poses are split over threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ligfit.dock import kernel
from ligfit.dock.options import DockingOptions
from ligfit.dock.search import (
    SHARP,
    SMOOTH,
    PoseBatch,
    Site,
    TorsionTree,
    _compiled_inputs,
    _Objective,
    clash_limits,
    optimise,
)
from ligfit.ligand import load_ligand
from ligfit.maps import DensityMap

#: Flexible (8 rotatable bonds, nested moving sides) with N and O for the polar clash limits.
SMILES = "CCOC(=O)c1ccc(NC(=O)CCN2CCN(CC(O)c3ccccc3)CC2)cc1"
TORCH, COMPILED = DockingOptions(compiled_search=False), DockingOptions(compiled_search=True)


@pytest.fixture(scope="module")
def site_and_poses():
    """A 33 × 32 × 31 Å site of smooth random grids (density, and distances to protein of 1–6 Å, so poses clash), and
    96 poses of the ligand: random conformers, orientations, torsions, some reaching past the box."""
    rng = np.random.default_rng(3)
    ligand = load_ligand(SMILES, max_conformers=6, seed=0)
    shape = (44, 42, 40)
    density = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    density = np.clip(density / density.std(), -0.5, 1.2)
    distances = [1.0 + 5.0 * ndimage.uniform_filter(rng.random(shape), 7) for _ in range(2)]
    smooth = ndimage.gaussian_filter(density, 1.3)
    grids = torch.as_tensor(np.stack([smooth, density, *distances])[None], dtype=torch.float32)
    frame = DensityMap(np.zeros(shape, dtype=np.float32), np.array([0.75, 0.76, 0.77]), np.array([-3.0, 2.0, 1.0]))
    site = Site(grids, frame, 1.0)
    heavy = ligand.heavy_atom_count
    conformers = ligand.conformer_coordinates()
    count = 96
    index = rng.integers(0, len(conformers), count)
    rotations = Rotation.random(count, random_state=4).as_matrix()
    centre = frame.origin + frame.extent / 2
    positions = centre + rng.normal(0, 3.0, (count, 3))
    positions[:8] += frame.extent / 2  # past the box's far corner: border reads, no density
    tree = TorsionTree.from_ligand(ligand)
    assert len(tree.axes) >= 6 and len(tree.internal_pairs) > 100

    def batch() -> PoseBatch:
        poses = PoseBatch(conformers[index], rotations, positions, heavy, index)
        poses.enable_torsions(len(tree.axes))
        with torch.no_grad():
            poses.rotation += torch.as_tensor(rng_kick(0).normal(0, 0.4, (count, 3)), dtype=torch.float32)
            poses.torsion += torch.as_tensor(rng_kick(1).uniform(-np.pi, np.pi, poses.torsion.shape), dtype=torch.float32)
        return poses

    return ligand, site, tree, clash_limits(ligand.elements[:heavy], TORCH), batch


def rng_kick(stream: int) -> np.random.Generator:
    return np.random.default_rng([7, stream])


@pytest.mark.parametrize("channel", [SMOOTH, SHARP])
def test_compiled_loss_and_gradient_equal_torch(site_and_poses, channel):
    ligand, site, tree, limits, batch = site_and_poses
    poses = batch()
    objective = _Objective(site, tree, limits, channel, 10, TORCH)
    loss = objective.loss(poses)
    gradients = torch.autograd.grad(loss.sum(), [poses.translation, poses.rotation, poses.torsion])

    def values(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().numpy().astype(np.float64)

    compiled = kernel.losses_and_gradients(
        values(poses.local[:, : poses.heavy]), values(poses.rotation0), values(poses.position0), values(poses.translation),
        values(poses.rotation), values(poses.torsion), *_compiled_inputs(objective, poses.heavy),
    )  # fmt: skip
    # Every term is at work: density, border reads, both clash terms and internal overlaps.
    assert float(loss.detach().max()) > 10 and float(loss.detach().min()) < 0
    for torch_values, compiled_values in zip([loss, *gradients], compiled):
        expected = values(torch_values)
        assert np.abs(compiled_values - expected).max() <= 1e-5 * np.abs(expected).max() + 1e-5


def _searched(batch, site, tree, limits, steps: int, options: DockingOptions, survivors: int | None = None, channel: int = SHARP):
    poses = batch()
    loss = optimise(poses, site, tree, limits, channel, steps, options, survivors=survivors)
    return loss, poses.current(tree)[:, : poses.heavy], poses.source


def test_compiled_search_steps_as_the_torch_search_does(site_and_poses):
    """Five steps on the smoothed map: the same poses to 0.001 Å where every atom feels the density. Sixty on the sharp
    one, with a prune to 48 survivors: the same survivors, and (float32 against float64 rounding grows on this rugged random
    landscape) most poses the same, the mean loss within 1 %.

    An atom past the box, or on the sharp map's clipped plateaus, feels no density: where a pose's or a moving side's
    atoms feel nothing else either, the true gradient is zero, and Adam scales torch's float32 rounding (~1e-6) into
    full-rate turns that the float64 kernel's rounding (~1e-13) stays below ε for. Those poses are held to the
    sixty-step terms only.
    """
    ligand, site, tree, limits, batch = site_and_poses
    (_, torch_xyz, _), (_, compiled_xyz, _) = (
        _searched(batch, site, tree, limits, 5, options, channel=SMOOTH) for options in (TORCH, COMPILED)
    )
    frame = site.density
    margin = 1.0
    inside = ((torch_xyz > frame.origin + margin) & (torch_xyz < frame.origin + frame.extent - margin)).all((1, 2))
    assert inside.sum() >= 60
    assert np.sqrt(((torch_xyz[inside] - compiled_xyz[inside]) ** 2).sum(-1).mean(-1)).max() < 1e-3
    ends = [_searched(batch, site, tree, limits, 60, options, survivors=48) for options in (TORCH, COMPILED)]
    (torch_loss, torch_xyz, torch_source), (compiled_loss, compiled_xyz, compiled_source) = ends
    assert np.array_equal(torch_source, compiled_source)  # the same survivors kept at the prune
    deviation = np.sqrt(((torch_xyz - compiled_xyz) ** 2).sum(-1).mean(-1))
    assert np.median(deviation) < 0.01 and np.mean(deviation < 0.05) >= 0.6
    assert compiled_loss.mean() < -10.0  # the search did its job: the poses moved into density
    assert abs(compiled_loss.mean() - torch_loss.mean()) < 0.01 * abs(torch_loss.mean())


def test_compiled_search_gives_the_same_numbers_on_any_number_of_threads(site_and_poses):
    ligand, site, tree, limits, batch = site_and_poses
    threads = torch.get_num_threads()
    ends = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            poses = batch()
            loss = optimise(poses, site, tree, limits, SMOOTH, 30, COMPILED)
            ends.append((loss, poses.current(tree)))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(ends[0][0], ends[1][0]) and np.array_equal(ends[0][1], ends[1][1])


def test_compiled_rigid_search_moves_unused_torsions_as_torch_does(site_and_poses):
    """Without a tree (anchor-and-grow's polish) the batch's torsions are not applied and get a zero gradient; a rigid
    search of a batch that has torsion parameters must end the same both ways, the torsions where they were."""
    ligand, site, tree, limits, batch = site_and_poses
    ends = []
    for options in (TORCH, COMPILED):
        poses = batch()
        loss = optimise(poses, site, None, limits, SHARP, 20, options)
        ends.append((loss, poses.current(None)[:, : poses.heavy], poses.torsion.detach().numpy()))
    assert np.median(np.abs(ends[0][0] - ends[1][0])) < 1e-3
    assert np.median(np.sqrt(((ends[0][1] - ends[1][1]) ** 2).sum(-1).mean(-1))) < 1e-3
    assert np.allclose(ends[0][2], ends[1][2], atol=1e-5)
