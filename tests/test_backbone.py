"""The backbone network: shipped weights, training targets and loss, seamless cube stitching on a real map."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from ligfit import io, maps
from ligfit.backbone import contract, geometry, infer, train
from ligfit.backbone import data as training_data
from ligfit.backbone.errors import BadWeightsError
from ligfit.backbone.net import BackboneUNet, NetConfig
from ligfit.trace import TraceOptions, ca_candidates

HAEMOGLOBIN = "em/maps_with_models/EMD-3488_5ME2_hemoglobin/5ni1_updated.cif"
CHAIN9 = "em/maps_with_models/EMD-2566_3J6B_chain9"

#: The shipped weights' exported validation Cα peak F1 (see weights/backbone.json) must stay above this.
VALIDATION_F1_FLOOR = 0.5


@pytest.fixture(scope="module")
def network() -> infer.Network:
    return infer.load_network()


@pytest.fixture(scope="module")
def chain9_map(data):
    return maps.read_map(data / CHAIN9 / "emd_2566_3J6B_chain9_crop.mrc")


@pytest.fixture(scope="module")
def chain9_predictions(network, chain9_map):
    return infer.predict(chain9_map, network)


def test_shipped_weights_match_their_checksum_config_and_split(network):
    config = json.loads((infer.WEIGHTS_DIR / "backbone.json").read_text())
    digest = hashlib.sha256((infer.WEIGHTS_DIR / config["weights"]).read_bytes()).hexdigest()
    assert digest == config["sha256"]
    assert NetConfig.from_dict(config["net"]) == network.model.config
    split = training_data.read_split(infer.WEIGHTS_DIR / "split.json")
    assert split.sha256 == config["training"]["split"]["sha256"]
    # Trained, not random: a fresh network scores F1 0 and residue types at chance (1/20).
    assert config["validation"]["ca_peak_f1"] > VALIDATION_F1_FLOOR
    assert config["validation"]["aa_accuracy"] > 0.1


def test_corrupted_or_mismatched_weights_are_refused(tmp_path):
    for name in ("backbone.json", "backbone.pt"):
        shutil.copy(infer.WEIGHTS_DIR / name, tmp_path / name)
    blob = bytearray((tmp_path / "backbone.pt").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "backbone.pt").write_bytes(bytes(blob))
    with pytest.raises(BadWeightsError, match="sha256"):
        infer.load_network(tmp_path)
    config = json.loads((infer.WEIGHTS_DIR / "backbone.json").read_text())
    (tmp_path / "backbone.json").write_text(json.dumps({**config, "contract_version": 1}))
    with pytest.raises(BadWeightsError, match="contract"):
        infer.load_network(tmp_path)
    # Strict loading: a state dict for another architecture does not load silently.
    state = torch.load(infer.WEIGHTS_DIR / "backbone.pt", weights_only=True)
    with pytest.raises(RuntimeError):
        BackboneUNet(NetConfig(base_channels=8)).load_state_dict(state, strict=True)


def test_every_shipped_artefact_is_loaded_through_one_checked_loader(tmp_path):
    """The peptide table and the residue-type classifier are refused like the network when their bytes change."""
    from ligfit.backbone import residue_types, weights

    weights.check_sha256(geometry.TABLE, json.loads(geometry.TABLE.with_suffix(".json").read_text())["sha256"], "peptides.json")
    for name in ("residue_types.json", "residue_types.pt"):
        shutil.copy(residue_types.WEIGHTS_DIR / name, tmp_path / name)
    blob = bytearray((tmp_path / "residue_types.pt").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "residue_types.pt").write_bytes(bytes(blob))
    with pytest.raises(BadWeightsError, match="sha256"):
        residue_types.load_classifier(tmp_path)
    (tmp_path / "residue_types.pt").unlink()
    with pytest.raises(BadWeightsError, match="missing"):
        residue_types.load_classifier(tmp_path)


def test_training_needs_its_data_named(tmp_path, monkeypatch):
    """Training scripts take the data folder as an argument (or $LIGFIT_DATA), never from the benchmarks package."""
    monkeypatch.delenv("LIGFIT_DATA", raising=False)
    with pytest.raises(SystemExit, match="--data"):
        training_data.data_root(None)
    with pytest.raises(SystemExit, match="complexes"):
        training_data.data_root(tmp_path)
    monkeypatch.setenv("LIGFIT_DATA", str(tmp_path))
    (tmp_path / "complexes").mkdir()
    assert training_data.data_root(None) == tmp_path


def test_secondary_structure_of_haemoglobin_is_helical(data):
    residues = training_data.residue_table(io.read_structure(data / HAEMOGLOBIN))
    fractions = np.bincount(residues.ss, minlength=3) / len(residues)
    # Haemoglobin is all-α: DSSP assigns ~75% helix and no strands.
    assert 0.65 < fractions[training_data.HELIX] < 0.9
    assert fractions[training_data.STRAND] < 0.03


def test_strands_found_in_a_beta_pocket(data):
    # 5SAK's pocket lies in a β-rich domain: the H-bond rule finds its strands.
    residues = training_data.residue_table(io.read_structure(data / "complexes" / "5SAK_ZRY" / "5SAK_ZRY_pocket.pdb"))
    assert np.mean(residues.ss == training_data.STRAND) > 0.2


def test_weakened_side_chains_fade_at_the_tips_and_leave_the_backbone(data):
    # The residue-type trainer's cryo-EM-like side chains: density at the tip atoms (≥ 4 Å from Cα) falls, the backbone's does not.
    structure = io.read_structure(data / "complexes" / "5S8I_2LY" / "5S8I_2LY_pocket.pdb")
    structure.remove_hydrogens()
    b_before = [a.b_iso for m in structure for c in m for r in c for a in r]
    weakened = training_data.weakened_side_chains(structure, tip_b=80.0, acid_b=60.0)
    assert [a.b_iso for m in structure for c in m for r in c for a in r] == b_before  # a copy; the input is not changed
    atoms = [(r.name, a, r.find_atom("CA", "*")) for m in structure for c in m for r in c for a in r]
    backbone = np.array([a.pos.tolist() for _, a, _ in atoms if a.name in training_data.BACKBONE_ATOMS])
    tips = np.array(
        [
            a.pos.tolist()
            for _, a, ca in atoms
            if ca is not None and a.name not in training_data.BACKBONE_ATOMS and a.pos.dist(ca.pos) >= 4.0
        ]
    )
    grid = maps.grid_around(backbone, 1.0, 4.0)
    before, after = (maps.simulate(s, 3.0, like=grid, use_b_factors=True) for s in (structure, weakened))
    assert np.mean(after.interpolate(tips)) < 0.65 * np.mean(before.interpolate(tips))  # measured 0.52
    assert np.mean(after.interpolate(backbone)) > 0.9 * np.mean(before.interpolate(backbone))
    assert structure[0].count_atom_sites() == weakened[0].count_atom_sites()


def test_voxel_targets_peak_on_the_atoms(data):
    residues = training_data.residue_table(io.read_structure(data / "complexes" / "5S8I_2LY" / "5S8I_2LY_pocket.pdb"))
    origin = np.floor(residues.ca.min(axis=0)) - 3
    labels = training_data.voxel_labels(origin, (40, 40, 40), residues)
    inside = np.all((np.round(residues.ca - origin) >= 0) & (np.round(residues.ca - origin) <= 39), axis=1)
    peaks = np.argwhere(labels["heat"][1] >= 1.0) + origin
    # One peak per Cα inside the box (two Cα never share a voxel), each within half a voxel diagonal.
    assert len(peaks) == inside.sum()
    nearest = np.min(np.linalg.norm(peaks[:, None] - residues.ca[None], axis=-1), axis=1)
    assert nearest.max() <= np.sqrt(3) / 2 + 1e-6
    # A Cα's heat at its own N and C is low: the heat-maps tell the three atoms apart.
    n_voxels = np.round(residues.n[inside] - origin).astype(int)
    assert np.median(labels["heat"][1][tuple(n_voxels.T)]) < 0.35
    assert labels["trace"].sum() > 10 * inside.sum()
    known = labels["aa"] >= 0
    assert set(np.unique(labels["aa"][known])) <= set(residues.aa)


def test_focal_loss_prefers_peaks_on_the_atoms():
    target = torch.zeros(1, 1, 12, 12, 12)
    target[0, 0, 5:8, 5:8, 5:8] = 0.3  # the Gaussian's shoulder around the atom
    target[0, 0, 6, 6, 6] = 1.0
    right = torch.full_like(target, -6.0)
    right[0, 0, 6, 6, 6] = 4.0
    wrong = torch.full_like(target, -6.0)
    wrong[0, 0, 2, 2, 2] = 4.0
    silent = torch.full_like(target, -6.0)
    loss = train.heatmap_focal_loss
    assert loss(right, target) < 0.1 < loss(silent, target) < loss(wrong, target)


def test_stitching_is_seamless_and_a_shifted_map_gives_the_same_answer(network, chain9_map, chain9_predictions):
    # Different cube sizes put the seams in different places; the kept centres must agree
    # (measured with the default 16-voxel margin: max |ΔP(Cα)| 0.04; with 8 voxels 0.2).
    big = chain9_predictions
    other = infer.predict(chain9_map, network, cube=96, margin=16)
    assert np.abs(big.ca.astype(np.float32) - other.ca.astype(np.float32)).max() < 0.05
    # The map on the network's 1 Å grid, and a copy cropped by (5, 3, 7) voxels: the same P(Cα)
    # and the same Cα candidates at the same positions in Å, away from the new edges (where the
    # network sees different context). Only the normalisation over the smaller box differs
    # (measured: correlation 0.993, 90% of candidates within 1 Å, median 0.03 Å).
    grid = contract.to_network_grid(chain9_map)
    shift = np.array([5, 3, 7])
    shifted_map = maps.DensityMap(grid.values[5:, 3:, 7:], grid.voxel_size, grid.origin + shift * grid.voxel_size)
    shifted = infer.predict(shifted_map, network)
    inner = (slice(8, -8),) * 3
    original_ca = big.ca.astype(np.float32)[5:, 3:, 7:][inner].ravel()
    assert np.corrcoef(original_ca, shifted.ca.astype(np.float32)[inner].ravel())[0, 1] > 0.98
    options = TraceOptions()
    original_peaks, _ = ca_candidates(big, options)
    shifted_peaks, _ = ca_candidates(shifted, options)
    original_peaks = original_peaks[shifted.grid.contains(original_peaks, margin=8.0)]
    assert len(original_peaks) > 60
    distance = np.min(np.linalg.norm(original_peaks[:, None] - shifted_peaks[None], axis=-1), axis=1)
    assert np.mean(distance < 1.0) > 0.85 and np.median(distance) < 0.1, (np.mean(distance < 1.0), np.median(distance))
