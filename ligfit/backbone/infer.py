"""Run the backbone network over a map: per-voxel backbone atoms, secondary structure, residue types.

Follows DeepTracer (Pfab et al. 2021): the map is resampled to 1 Å and normalised
(:mod:`ligfit.backbone.contract`), cut into overlapping cubes, and each cube keeps only its
centre, so the stitched result has no seams. The network's full output (27 channels) is never
held for the whole map: each cube's centre is reduced at once to the backbone mask and the
N, Cα, C heat-maps (sigmoid, float16), the most likely secondary structure (int8), and
residue-type probabilities only at voxels where P(Cα) is high (sparse). Runs on the CPU unless another torch device is given.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from ligfit.backbone import contract
from ligfit.backbone.errors import BadWeightsError
from ligfit.backbone.net import AMINO_ACIDS, BackboneUNet, NetConfig
from ligfit.backbone.weights import load_state
from ligfit.maps import DensityMap

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Voxels with P(Cα) at least this keep their residue-type probabilities.
AA_FLOOR = 0.05


@dataclass(frozen=True)
class Network:
    """A loaded backbone network with the config it was trained with."""

    model: BackboneUNet
    config: dict
    device: torch.device

    @property
    def multiple(self) -> int:
        return self.model.multiple


def load_network(weights: str | os.PathLike | None = None, device: str = "cpu") -> Network:
    """Load ``backbone.json`` + its tensor file (default: the shipped weights), checking the sha256, strictly."""
    config_path = Path(weights) if weights is not None else WEIGHTS_DIR / "backbone.json"
    if config_path.is_dir():
        config_path = config_path / "backbone.json"
    if not config_path.is_file():
        raise BadWeightsError(
            f"{config_path}: no backbone weights; train them with `python -m ligfit.backbone.train` and install with `--install`"
        )
    config = json.loads(config_path.read_text())
    if config.get("format") != "ligfit-backbone" or config.get("contract_version") != contract.CONTRACT_VERSION:
        raise BadWeightsError(
            f"{config_path}: weights for contract {config.get('contract_version')}, this ligfit uses {contract.CONTRACT_VERSION}; "
            "retrain or use a matching ligfit version"
        )
    model = load_state(
        BackboneUNet(NetConfig.from_dict(config["net"])), config_path.parent / config["weights"], config["sha256"], config_path.name
    )
    torch_device = torch.device(device)
    return Network(model.to(torch_device), config, torch_device)


@dataclass(frozen=True)
class VoxelPredictions:
    """Network outputs on the 1 Å grid of ``grid`` (the normalised input; origin and voxels in Å).

    ``trace``: P(backbone) (within 1.5 Å of N/Cα/C); ``n``, ``ca``, ``c``: heat-maps of each backbone
    atom, peaking at the atoms (sigmoid, float16, (x, y, z)); ``ss``: most
    likely secondary structure (0 helix, 1 strand, 2 coil; int8); ``aa_voxels`` (k, 3) voxel
    indices where P(Cα) ≥ ``AA_FLOOR`` and ``aa_probabilities`` (k, 20) there (float16).
    """

    grid: DensityMap
    trace: np.ndarray
    n: np.ndarray
    ca: np.ndarray
    c: np.ndarray
    ss: np.ndarray
    aa_voxels: np.ndarray
    aa_probabilities: np.ndarray

    def sample(self, name: str, points: np.ndarray) -> np.ndarray:
        """Trilinear value of channel ``name`` ("trace", "n", "ca" or "c") at points (Å)."""
        return self.grid.with_values(getattr(self, name).astype(np.float32)).interpolate(points)

    def residue_types(self, points: np.ndarray, radius: float = 1.5) -> np.ndarray:
        """Residue-type probabilities (n, 20) at Cα positions (Å): P(Cα)-weighted mean of voxels within ``radius``."""
        uniform = np.full((len(points), len(AMINO_ACIDS)), 1 / len(AMINO_ACIDS))
        if len(self.aa_voxels) == 0 or len(points) == 0:
            return uniform
        tree = cKDTree(self.grid.to_points(self.aa_voxels))
        weights = self.ca[tuple(self.aa_voxels.T)].astype(float)
        result = uniform.copy()
        for row, near in enumerate(tree.query_ball_point(np.asarray(points), radius)):
            if near:
                w = weights[near]
                result[row] = (w[:, None] * self.aa_probabilities[near].astype(float)).sum(0) / w.sum()
        return result / result.sum(axis=1, keepdims=True)


def cube_starts(length: int, core: int, margin: int) -> np.ndarray:
    """Start indices of the cube cores along one axis (the cube reaches ``margin`` further each side)."""
    return np.arange(0, max(length, 1), core) - margin


@torch.no_grad()
def predict(
    density_map: DensityMap,
    network: Network,
    cube: int = 64,
    margin: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> VoxelPredictions:
    """Per-voxel predictions for the whole map, cube by cube (edge ``cube``, keeping all but ``margin`` each side)."""
    if cube % network.multiple or cube <= 2 * margin:
        raise ValueError(f"cube must be a multiple of {network.multiple} and larger than 2 × margin, got {cube} and {margin}")
    grid = contract.to_network_grid(density_map)
    values, fill = contract.normalise(grid.values)
    grid = grid.with_values(values)
    shape = grid.shape
    channels = {name: np.zeros(shape, dtype=np.float16) for name in ("trace", "n", "ca", "c")}
    ss = np.full(shape, 2, dtype=np.int8)
    aa_voxels, aa_probabilities = [], []
    core = cube - 2 * margin
    starts = [cube_starts(n, core, margin) for n in shape]
    total = int(np.prod([len(s) for s in starts]))
    done = 0
    for sx in starts[0]:
        for sy in starts[1]:
            for sz in starts[2]:
                start = np.array([sx, sy, sz])
                block = torch.from_numpy(contract.cut_cube(values, start, cube, fill))[None, None].to(network.device)
                outputs = network.model(block)
                lo = start + margin
                hi = np.minimum(lo + core, shape)
                keep = tuple(slice(margin, margin + b - a) for a, b in zip(lo, hi))
                target = tuple(slice(a, b) for a, b in zip(lo, hi))
                backbone = torch.sigmoid(outputs["backbone"][0][(slice(None), *keep)]).cpu().numpy()
                for index, name in enumerate(("trace", "n", "ca", "c")):
                    channels[name][target] = backbone[index]
                ss[target] = outputs["ss"][0].argmax(0)[keep].cpu().numpy()
                strong = np.argwhere(backbone[2] >= AA_FLOOR)
                if len(strong):
                    logits = outputs["aa"][0][(slice(None), *keep)]
                    picked = logits[:, strong[:, 0], strong[:, 1], strong[:, 2]].T
                    aa_probabilities.append(torch.softmax(picked, dim=1).cpu().numpy().astype(np.float16))
                    aa_voxels.append(strong + lo)
                done += 1
                if progress is not None:
                    progress(done, total)
    return VoxelPredictions(
        grid,
        channels["trace"],
        channels["n"],
        channels["ca"],
        channels["c"],
        ss,
        np.concatenate(aa_voxels) if aa_voxels else np.zeros((0, 3), dtype=int),
        np.concatenate(aa_probabilities) if aa_probabilities else np.zeros((0, len(AMINO_ACIDS)), dtype=np.float16),
    )
