"""Where docking's search runs: the device option, its refusals, and (where there is a CUDA GPU) the same answer on it.

The GPU tests run only where torch sees a CUDA GPU (never in CI); the rest run everywhere.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from benchmarks.ligand_placement import ligand_rmsd
from ligfit import api
from ligfit.cli import main
from ligfit.dock import DockingOptions, search
from ligfit.dock.search import SHARP, SMOOTH, PoseBatch, Site, TorsionTree, clash_limits, fit_loss, optimise
from ligfit.errors import BadOptionError
from ligfit.ligand import heavy_atom_mol, load_ligand
from ligfit.pipeline import run_build
from ligfit.runtime import torch_device

GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA GPU here")


def test_auto_is_the_gpu_when_there_is_one_else_the_cpu():
    assert DockingOptions().device == "auto"
    assert torch_device("auto").type == ("cuda" if GPU else "cpu")
    assert torch_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(("name", "says"), [("gpu7", "not a torch device"), ("meta", "runs on cpu or cuda"), ("cuda:99", "CUDA GPU")])
def test_bad_device_names_are_refused_before_any_work(name, says):
    if name == "cuda:99" and not GPU:
        says = "no CUDA GPU is available"
    options = dataclasses.replace(FAST_BUILD, docking=dataclasses.replace(FAST_BUILD.docking, device=name))
    with pytest.raises(BadOptionError, match=says):
        run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options)


def test_the_cli_refuses_a_bad_device_in_one_line_with_nothing_written(tmp_path, capsys):
    arguments = ["build", str(EXAMPLE / "map.mrc"), "--ligand", SMILES, "--model", str(EXAMPLE / "protein.pdb")]
    assert main([*arguments, "--resolution", "3", "-o", str(tmp_path / "out"), "-q", "--device", "gpu7"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ligfit: error:") and "device 'gpu7'" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_screen_refuses_a_bad_device_before_any_work(tmp_path):
    with pytest.raises(BadOptionError, match="not a torch device"):
        api.screen(EXAMPLE / "map.mrc", model=EXAMPLE / "protein.pdb", ligands=[SMILES], resolution=3.0, device="gpu7", out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_identify_on_the_cli_refuses_a_bad_device_in_one_line(tmp_path, capsys):
    arguments = ["identify", str(EXAMPLE / "map.mrc"), "--model", str(EXAMPLE / "protein.pdb"), "--resolution", "3"]
    assert main([*arguments, "-o", str(tmp_path / "what"), "-q", "--device", "tpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device 'tpu'" in err[0], err
    assert not (tmp_path / "what").exists()


@pytest.mark.skipif(GPU, reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_refused_with_the_fix():
    with pytest.raises(BadOptionError, match="no CUDA GPU is available here; use --device cpu"):
        torch_device("cuda")


def test_the_torsion_chain_is_put_on_a_device_without_a_warning():
    """Its index tensors are made from read-only views of the cache key's bytes: torch warned on every screen and build.

    (torch warns once per process: run alone, this fails when the tensors share the read-only memory.)
    """
    moving = np.array([[False, False, True, True]])  # one torsion: a column of ``axes`` is then a contiguous view
    axes = np.array([[1, 2]], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chain = search._chain_on(moving.tobytes(), moving.shape, axes.tobytes(), 4, torch.device("cpu"))
    assert chain.first.tolist() == [1] and chain.second.tolist() == [2]
    assert chain.fragment.tolist() == [0, 0, 1, 1]  # the two atoms beyond the bond move with it


# --------------------------------------------------------------------------- the search on a GPU (and its arithmetic on the CPU)


@pytest.fixture(scope="module")
def example_site():
    """The example's ligand, the docking site around its blob (on the CPU) and the blob."""
    from ligfit.dock.place import _site
    from ligfit.pipeline import _read_protein, _unexplained_density
    from ligfit.runtime import StageTimer

    ligand = load_ligand(SMILES, max_conformers=8)
    protein = _read_protein(str(EXAMPLE / "map.mrc"), str(EXAMPLE / "protein.pdb"), FAST_BUILD, lambda *a, **k: None, StageTimer())
    protein, difference, blobs = _unexplained_density(protein, ligand, FAST_BUILD)
    blob = blobs[0]
    return ligand, _site(ligand, difference.difference, blob, protein.atoms, torch.device("cpu")), blob


def _poses_near(ligand, tree: TorsionTree, blob, count: int, seed: int, device: torch.device | str = "cpu") -> PoseBatch:
    """``count`` of the ligand's conformers, unrotated, within ~1 Å of the blob's centre, torsions on."""
    conformers = ligand.conformer_coordinates()
    index = np.arange(count) % len(conformers)
    positions = blob.centroid + np.random.default_rng(seed).normal(0, 1.0, (count, 3))
    rotations = np.repeat(np.eye(3)[None], count, 0)
    batch = PoseBatch(conformers[index], rotations, positions, ligand.heavy_atom_count, np.arange(count), device)
    batch.enable_torsions(len(tree.axes))
    return batch


def _assert_the_same_optimisation(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]) -> None:
    """Two runs' (loss, coordinates) of the same poses: the same ends, to float rounding amplified by 60 steps."""
    (first_loss, first_xyz), (second_loss, second_xyz) = first, second
    deviation = np.sqrt(((first_xyz - second_xyz) ** 2).sum(-1).mean(-1))
    assert np.ptp(first_loss) > 0.1  # the poses moved somewhere different from one another
    assert np.median(deviation) < 1e-3 and np.percentile(deviation, 90) < 0.05
    np.testing.assert_allclose(np.median(second_loss), np.median(first_loss), rtol=1e-3)


@needs_gpu
def test_the_score_grids_read_the_same_on_the_gpu(example_site):
    ligand, site, blob = example_site
    gpu = Site(site.grids.cuda(), site.density, site.scale)
    rng = np.random.default_rng(0)
    points = blob.centroid + rng.normal(0, 4, (64, ligand.heavy_atom_count, 3))
    on_cpu, on_gpu = site.sample(site.tensor(points)), gpu.sample(gpu.tensor(points))
    assert on_gpu.device.type == "cuda"
    np.testing.assert_allclose(on_gpu.cpu().numpy(), on_cpu.numpy(), atol=1e-5)
    limits = clash_limits(ligand.elements[: ligand.heavy_atom_count], DockingOptions())
    loss_cpu = fit_loss(site.tensor(points), site, limits, SHARP, DockingOptions())
    loss_gpu = fit_loss(gpu.tensor(points), gpu, limits.cuda(), SHARP, DockingOptions())
    np.testing.assert_allclose(loss_gpu.cpu().numpy(), loss_cpu.numpy(), rtol=1e-5, atol=1e-4)


@needs_gpu
def test_an_optimisation_on_the_gpu_ends_where_the_cpu_one_does(example_site):
    ligand, site, blob = example_site
    gpu = Site(site.grids.cuda(), site.density, site.scale)
    tree = TorsionTree.from_ligand(ligand)
    heavy, options = ligand.heavy_atom_count, DockingOptions()
    results = []
    for where in (site, gpu):
        batch = _poses_near(ligand, tree, blob, 256, 1, where.device)
        loss = optimise(batch, where, tree, clash_limits(ligand.elements[:heavy], options, where.device), SMOOTH, 80, options, survivors=64)
        results.append((loss, batch.current(tree), batch.source))
    (cpu_loss, cpu_xyz, cpu_source), (gpu_loss, gpu_xyz, gpu_source) = results
    # Float sums in another order: the same poses survive the pruning but for near ties, and end within a hair.
    assert len(set(cpu_source) & set(gpu_source)) >= 60
    assert abs(float(np.sort(gpu_loss)[:8].mean() - np.sort(cpu_loss)[:8].mean())) < 0.05 * abs(float(np.sort(cpu_loss)[:8].mean()))
    same = [int(np.flatnonzero(gpu_source == s)[0]) for s in cpu_source if s in set(gpu_source)]
    shared = [i for i, s in enumerate(cpu_source) if s in set(gpu_source)]
    deviation = np.sqrt(((cpu_xyz[shared] - gpu_xyz[same]) ** 2).sum(-1).mean(-1))
    assert np.median(deviation) < 0.05


@needs_gpu
def test_the_example_docked_on_the_gpu_lands_where_the_cpu_puts_it():
    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    placed = {}
    for device in ("cpu", "cuda"):
        options = dataclasses.replace(FAST_BUILD, docking=dataclasses.replace(FAST_BUILD.docking, device=device))
        result = run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options)
        assert result.found
        placed[device] = result.best_pose
    for pose in placed.values():
        assert ligand_rmsd(heavy_atom_mol(result.ligand, pose.coordinates), reference) <= 2.0
    assert np.sqrt(((placed["cpu"].coordinates - placed["cuda"].coordinates) ** 2).sum(-1).mean()) < 0.5
    assert abs(placed["cpu"].score - placed["cuda"].score) < 0.02


@needs_gpu
def test_the_adam_steps_replayed_as_a_cuda_graph_are_the_eager_ones(example_site):
    ligand, site, blob = example_site
    gpu = Site(site.grids.cuda(), site.density, site.scale)
    tree = TorsionTree.from_ligand(ligand)
    heavy, options = ligand.heavy_atom_count, DockingOptions()
    objective = search._Objective(gpu, tree, clash_limits(ligand.elements[:heavy], options, gpu.device), SHARP, 60, options)
    ends = []
    for advance in ("_advance_eager", "_advance_graphed"):
        batch = _poses_near(ligand, tree, blob, 64, 2, gpu.device)
        run = search._AdamRun(batch, search._AdamRun.zero_moments(batch), objective)
        getattr(run, advance)(0, 60)
        ends.append((run.loss(), batch.current(tree)))
    _assert_the_same_optimisation(*ends)


def test_a_gpu_out_of_memory_in_the_search_says_to_rerun_on_the_cpu(monkeypatch):
    from ligfit.dock import place

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(place, "_dock_blob", out_of_memory)
    options = dataclasses.replace(FAST_BUILD, docking=dataclasses.replace(FAST_BUILD.docking, device="cpu"))
    with pytest.raises(BadOptionError, match="ran out of memory in the docking search; rerun with --device cpu"):
        run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options)


def test_the_replayable_adam_step_is_the_eager_one_on_the_cpu_too(example_site):
    """The step a CUDA graph replays (learning-rate factors read from tables at a counter) runs on any device: here it
    must end where the eager Adam does, so that its arithmetic is checked where there is no GPU."""
    ligand, site, blob = example_site
    tree = TorsionTree.from_ligand(ligand)
    heavy, options, steps = ligand.heavy_atom_count, DockingOptions(), 60
    objective = search._Objective(site, tree, clash_limits(ligand.elements[:heavy], options), SHARP, steps, options)
    ends = []
    for replayable in (False, True):
        batch = _poses_near(ligand, tree, blob, 64, 2)
        run = search._AdamRun(batch, search._AdamRun.zero_moments(batch), objective)
        if replayable:
            step = run._replayable_step(0, steps)
            for _ in range(steps):
                step()
        else:
            run._advance_eager(0, steps)
        ends.append((run.loss(), batch.current(tree)))
    _assert_the_same_optimisation(*ends)
