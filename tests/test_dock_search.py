"""The docking optimiser: its Adam against torch's, and the pruned conformer search, on real EM density (8HFL)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from em_box_site import random_rotations, site_1xr

from ligfit.dock.options import DockingOptions
from ligfit.dock.search import SMOOTH, PoseBatch, TorsionTree, clash_limits, fit_loss, optimise


@pytest.fixture(scope="module")
def search_problem(data):
    """1XR in its real EMDB box (3.0 Å): the site around the top blob and 8 conformers × 8 random orientations at its centre."""
    ligand, conformers, site, blob = site_1xr(data)
    rotations = random_rotations(np.random.default_rng(0), 8 * len(conformers))
    index = np.repeat(np.arange(len(conformers)), 8)
    return (
        ligand,
        TorsionTree.from_ligand(ligand),
        site,
        conformers[index],
        rotations.numpy(),
        np.repeat(blob.centroid[None], len(index), 0),
    )


def _batch(problem) -> PoseBatch:
    ligand, tree, _, coordinates, rotations, positions = problem
    batch = PoseBatch(coordinates, rotations, positions, ligand.heavy_atom_count, np.arange(len(coordinates)))
    batch.enable_torsions(len(tree.axes))
    return batch


def test_optimise_takes_the_steps_torch_adam_takes(search_problem):
    ligand, tree, site, *_ = search_problem
    options = DockingOptions()
    limits = clash_limits(ligand.elements[: ligand.heavy_atom_count], options)
    ours = _batch(search_problem)
    our_loss = optimise(ours, site, tree, limits, SMOOTH, 30, options)

    reference = _batch(search_problem)  # torch.optim.Adam + CosineAnnealingLR, as optimise ran before it was written out
    groups = [{"params": [parameter], "lr": rate} for parameter, rate in reference.parameter_groups()]
    adam = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(adam, T_max=30)
    pairs, internal = tree.internal_pairs, tree.internal_limits
    for _ in range(30):
        adam.zero_grad()
        fit_loss(reference.coordinates(tree)[:, : reference.heavy], site, limits, SMOOTH, options, pairs, internal).sum().backward()
        adam.step()
        schedule.step()
    with torch.no_grad():
        reference_loss = fit_loss(reference.coordinates(tree)[:, : reference.heavy], site, limits, SMOOTH, options, pairs, internal)
    np.testing.assert_allclose(our_loss, reference_loss.numpy(), atol=1e-3)
    assert np.abs(ours.current(tree) - reference.current(tree)).max() < 1e-3  # Å, hydrogens too
    assert not math.isclose(float(our_loss.min()), float(np.mean(our_loss)))  # the poses did spread out


def test_pruned_search_keeps_the_best_poses_and_their_sources(search_problem):
    ligand, tree, site, *_ = search_problem
    options = DockingOptions()
    limits = clash_limits(ligand.elements[: ligand.heavy_atom_count], options)
    full = _batch(search_problem)
    full_loss = optimise(full, site, tree, limits, SMOOTH, options.smooth_steps, options)
    pruned = _batch(search_problem)
    pruned_loss = optimise(pruned, site, tree, limits, SMOOTH, options.smooth_steps, options, survivors=16)
    assert len(pruned) == len(pruned_loss) == len(pruned.source) == 16 < len(full)
    assert len(set(pruned.source.tolist())) == 16  # each survivor keeps its own start's label
    # The poses that would have ended best are among those kept: the best loss is the same to 1 %.
    assert pruned_loss.min() == pytest.approx(full_loss.min(), rel=0.01)
    # What optimise reports is the loss of the coordinates the batch now holds.
    heavy = ligand.heavy_atom_count
    with torch.no_grad():
        xyz = torch.as_tensor(pruned.current(tree)[:, :heavy], dtype=torch.float32)
        again = fit_loss(xyz, site, limits, SMOOTH, options, tree.internal_pairs, tree.internal_limits)
    np.testing.assert_allclose(again.numpy(), pruned_loss, atol=1e-3)
