"""Fitting predicted models: chains moved to random places return to their density; another protein fits nowhere."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ligfit import io, maps
from ligfit.predicted import (
    ModelDoesNotFitError,
    ModelTooLargeError,
    ResolutionTooLowError,
    fit_model,
    needs_fitting,
    plddt,
    split_domains,
    trim_low_confidence,
    uniform_rotations,
)

REPO = Path(__file__).resolve().parent.parent
#: Coarse search settings that keep each test to seconds.
QUICK = {"angular_spacing": 30.0, "candidates": 8}


def _one_chain(structure: gemmi.Structure, name: str) -> gemmi.Structure:
    single = structure.clone()
    single.remove_ligands_and_waters()
    for other in [chain.name for chain in single[0] if chain.name != name]:
        single[0].remove_chain(other)
    return single


def _move(structure: gemmi.Structure, seed: int, max_shift: float = 15.0) -> gemmi.Structure:
    """The structure rotated at random about its centroid and shifted up to ``max_shift`` Å."""
    rng = np.random.default_rng(seed)
    moved = structure.clone()
    atoms = [atom for chain in moved[0] for residue in chain for atom in residue]
    xyz = np.array([atom.pos.tolist() for atom in atoms])
    centre = xyz.mean(axis=0)
    rotation = Rotation.random(random_state=seed).as_matrix()
    new = (xyz - centre) @ rotation.T + centre + rng.uniform(-max_shift, max_shift, 3)
    for atom, position in zip(atoms, new):
        atom.pos = gemmi.Position(*position)
    return moved


def _ca(structure: gemmi.Structure) -> dict[str, np.ndarray]:
    return {chain.name: np.array([r["CA"][0].pos.tolist() for r in chain if r.find_atom("CA", "*")]) for chain in structure[0]}


def test_uniform_rotations_cover_so3():
    rotations = uniform_rotations(600)
    assert np.allclose(np.einsum("rij,rkj->rik", rotations, rotations), np.eye(3), atol=1e-9)
    # every random rotation lies within 30° of a grid rotation
    probes = Rotation.random(200, random_state=0).as_matrix()
    traces = np.einsum("pij,rij->pr", probes, rotations)
    nearest = np.degrees(np.arccos(np.clip((traces.max(axis=1) - 1) / 2, -1, 1)))
    assert nearest.max() < 30.0


def test_simulated_pocket_returns_to_its_map():
    """No shared data: the TYK2 pocket of examples/, its map simulated at 4 Å, the model moved and fitted back."""
    deposited = io.read_structure(REPO / "examples" / "tyk2" / "protein.pdb")
    density = maps.simulate(deposited, 4.0, voxel_size=1.2, margin=15.0, noise=0.2, seed=1)
    moved = _move(deposited, seed=5)
    assert needs_fitting(density, moved, 4.0)
    assert not needs_fitting(density, deposited, 4.0)
    result = fit_model(moved, density, 4.0, refine=False, **QUICK)
    truth, fitted = _ca(deposited)["A"], _ca(result.structure)["A"]
    assert np.mean(np.linalg.norm(fitted - truth, axis=1) < 3.0) >= 0.95
    assert result.placements[0].cc_mask > 0.7


def test_calpha_only_model_is_placed_too():
    deposited = io.read_structure(REPO / "examples" / "tyk2" / "protein.pdb")
    density = maps.simulate(deposited, 4.0, voxel_size=1.2, margin=15.0, noise=0.2, seed=2)
    trace = deposited.clone()
    for residue in (r for chain in trace[0] for r in chain):
        for position in reversed(range(len(residue))):
            if residue[position].name != "CA":
                del residue[position]
    result = fit_model(_move(trace, seed=8), density, 4.0, refine=False, **QUICK)
    fitted = _ca(result.structure)["A"]
    assert np.mean(np.linalg.norm(fitted - _ca(deposited)["A"], axis=1) < 3.0) >= 0.95


def test_domains_arranged_otherwise_are_placed_one_by_one():
    """A 'prediction' whose two domains are turned 60° against each other fits as two domains."""
    deposited = io.read_structure(REPO / "examples" / "tyk2" / "protein.pdb")
    density = maps.simulate(deposited, 4.0, voxel_size=1.2, margin=10.0, noise=0.2, seed=3)
    truth = _ca(deposited)["A"]
    labels = split_domains(truth, 2)
    hinged = deposited.clone()
    residues = [residue for residue in hinged[0]["A"] if residue.find_atom("CA", "*")]
    atoms = [(atom, labels[i]) for i, residue in enumerate(residues) for atom in residue]
    moving = np.array([atom.pos.tolist() for atom, label in atoms if label == 1])
    turn = Rotation.from_rotvec(np.radians(60) * np.array([0.0, 0.6, 0.8]))
    for atom, position in zip(
        [atom for atom, label in atoms if label == 1], turn.apply(moving - moving.mean(axis=0)) + moving.mean(axis=0)
    ):
        atom.pos = gemmi.Position(*position)
    result = fit_model(_move(hinged, seed=4), density, 4.0, refine=False, angular_spacing=35.0, candidates=6)
    assert len(result.placements) == 2 and all(":" in p.source_chain for p in result.placements)
    fitted = np.concatenate([_ca(result.structure)[p.chain] for p in result.placements])
    nearest = np.min(np.linalg.norm(fitted[:, None] - truth[None], axis=2), axis=1)
    assert np.mean(nearest < 3.0) >= 0.9


def test_hemoglobin_chain_returns_to_the_deposited_place(data):
    folder = data / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"
    density = maps.read_map(folder / "emd_3488.mrc")
    deposited = io.read_structure(folder / "5me2.pdb")
    chain = _one_chain(deposited, "B")
    result = fit_model(_move(chain, seed=11), density, 3.2, refine=False, **QUICK)
    fitted = _ca(result.structure)["B"]
    # chain B and chain D are the same β-globin: either site is right
    recovered = max(np.mean(np.linalg.norm(fitted - _ca(deposited)[name], axis=1) < 3.0) for name in ("B", "D"))
    assert recovered >= 0.95
    assert result.placements[0].cc_mask > 0.6


def test_another_protein_fits_nowhere(data):
    density = maps.read_map(data / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin" / "emd_3488.mrc")
    other = io.read_structure(data / "em" / "maps_with_models" / "EMD-2566_3J6B_chain9" / "3J6B_chain9.pdb")
    chain = other[0][0]
    for position in reversed(range(95, len(chain))):  # under 100 residues: one search, no domain split (fast)
        del chain[position]
    with pytest.raises(ModelDoesNotFitError, match="fits nowhere"):
        fit_model(other, density, 3.2, refine=False, **QUICK)


def test_bad_inputs_are_refused_in_one_line():
    deposited = io.read_structure(REPO / "examples" / "tyk2" / "protein.pdb")
    density = maps.simulate(deposited, 4.0, voxel_size=2.0, margin=2.0)
    with pytest.raises(ResolutionTooLowError, match="too coarse"):
        fit_model(deposited, density, 15.0)
    small = maps.box(density, density.origin + density.extent / 2, 20.0)
    with pytest.raises(ModelTooLargeError, match="spans"):
        fit_model(deposited, small, 4.0)


def test_plddt_trims_only_confidence_and_domains_split(data):
    folder = data / "em" / "maps_with_unfitted_af2" / "EMD-2513"
    predicted = io.read_structure(folder / "emd_2513_af2_model.pdb")
    confidence = plddt(predicted)
    assert confidence is not None and 0 <= confidence.min() and confidence.max() <= 100
    trimmed, removed = trim_low_confidence(predicted, 70.0)
    assert len(removed) == int(np.sum(confidence < 70.0))
    # experimental B-factors vary within residues: not pLDDT, nothing trimmed
    hemoglobin = io.read_structure(data / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin" / "5ni1_updated.cif")
    assert plddt(hemoglobin) is None or not trim_low_confidence(hemoglobin, 70.0)[1]
    ca = _ca(trimmed)["A"]
    labels = split_domains(ca, 2)
    assert set(labels) == {0, 1} and min(np.bincount(labels)) >= 10


def test_cli_refuses_a_map_too_coarse_in_one_line(tmp_path, capsys):
    from ligfit import cli

    deposited = io.read_structure(REPO / "examples" / "tyk2" / "protein.pdb")
    maps.write_map(maps.simulate(deposited, 4.0, voxel_size=2.0, margin=4.0), tmp_path / "map.mrc")
    code = cli.main(
        [
            "fit",
            str(REPO / "examples" / "tyk2" / "protein.pdb"),
            str(tmp_path / "map.mrc"),
            "--resolution",
            "15",
            "-o",
            str(tmp_path / "fitted.cif"),
            "-q",
        ]
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(error) == 1 and "too coarse" in error[0]


def test_api_fit_refines_the_placed_model_flexibly():
    """ligfit.fit: a 70-residue prediction (pLDDT in its B-factors) whose map was simulated from a bent copy of it is
    placed, then refined flexibly: CC_mask rises and the record says so."""
    from ligfit import api
    from tests.test_refine_whole_model import _bent, _fragment

    predicted = _fragment()
    for index, residue in enumerate(predicted[0][0]):
        for atom in residue:
            atom.b_iso = 85.0 + 10.0 * np.sin(index)
    density = maps.simulate(_bent(predicted, 1.2, seed=1), 3.5, voxel_size=1.0, margin=10.0, noise=0.1, seed=0)
    result = api.fit(_move(predicted, seed=6), density, 3.5)
    record = result.as_dict()["flexible"]
    assert record["refined"], record["message"]
    assert record["cc_mask_after"] > record["cc_mask_before"] + 0.05
    assert record["geometry_after"]["bond_rmsd_A"] < 0.02
    assert "flexible refinement: refined" in result.verdict
