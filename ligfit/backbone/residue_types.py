"""Residue types from the density around each traced residue: a small classifier in the residue's own frame.

The backbone network's residue-type head needs far more training than a CPU gives it, but once
a residue's N, Cα and C are traced its side chain has a known direction: the ideal Cβ. The
density sampled on a grid in that frame (out to ~7 Å along Cα→Cβ), scaled by the density on the
residue's own backbone, says how big and how branched the side chain is — the information that
sequence-from-map methods use (e.g. findMySequence, Chojnowski et al. 2022). A small 3D CNN
over that grid (:class:`ResidueTypeNet`) turns it into probabilities over the 20 types; it is
trained by ``python -m ligfit.backbone.train_residue_types`` on the same simulated maps and split
as the backbone network, with side chains weakened as cryo-EM maps show them, and shipped beside it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ligfit.backbone import geometry
from ligfit.backbone.errors import BadWeightsError
from ligfit.backbone.net import AMINO_ACIDS
from ligfit.backbone.weights import load_state
from ligfit.maps import DensityMap

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "ligfit-residue-types"
#: Version of the features; weights made for another version are refused.
FEATURE_VERSION = 2
#: Sample points in the residue frame (Å): x along Cα→Cβ, y towards N (perpendicular to x), z = x × y.
FRAME_X = np.arange(-2.0, 8.1, 1.0)
FRAME_YZ = np.arange(-4.0, 4.1, 1.0)
#: The sample points as a grid (x, y, z), the order :func:`frame_points` lists them in.
GRID_SHAPE = (len(FRAME_X), len(FRAME_YZ), len(FRAME_YZ))
#: The backbone density used as the scale is at least this (map σ), so noise-level backbones do not blow up.
MIN_BACKBONE_DENSITY = 0.25


def frame_points() -> np.ndarray:
    """The (k, 3) sample offsets in frame coordinates."""
    return np.stack(np.meshgrid(FRAME_X, FRAME_YZ, FRAME_YZ, indexing="ij"), axis=-1).reshape(-1, 3)


def feature_count() -> int:
    return len(frame_points()) + 1


def residue_features(density: DensityMap, n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Features (L, k + 1) of residues with backbone atoms ``n``, ``ca``, ``c`` (L, 3) in ``density`` (normalised map).

    The map sampled on :func:`frame_points` divided by the mean density at the residue's N, Cα
    and C (at least ``MIN_BACKBONE_DENSITY``), then that backbone density itself.
    """
    n, ca, c = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (n, ca, c))
    x = _unit(geometry.beta_carbon(n, ca, c) - ca)
    towards_n = n - ca
    y = _unit(towards_n - np.sum(towards_n * x, axis=1, keepdims=True) * x)
    z = np.cross(x, y)
    axes = np.stack([x, y, z], axis=1)  # (L, 3, 3) rows
    points = ca[:, None] + frame_points()[None] @ axes  # (L, k, 3)
    values = density.interpolate(points.reshape(-1, 3)).reshape(len(ca), -1)
    backbone = density.interpolate(np.concatenate([n, ca, c])).reshape(3, len(ca)).mean(axis=0)
    scale = np.maximum(backbone, MIN_BACKBONE_DENSITY)
    return np.concatenate([values / scale[:, None], backbone[:, None]], axis=1).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class ResidueTypeConfig:
    """Architecture of the classifier (recorded beside its weights)."""

    features: int = feature_count()
    hidden: int = 256
    layers: int = 2  # mlp: hidden layers
    dropout: float = 0.2
    kind: str = "cnn"  # "cnn": 3D convolutions over the frame grid, then one hidden layer; "mlp": the grid flattened
    channels: tuple[int, ...] = (8, 16, 32)  # cnn: channels of the three convolutions (the last two stride 2)


class ResidueTypeNet(nn.Module):
    """Residue features → logits over the 20 amino-acid types (a small 3D CNN over the frame grid, or an MLP)."""

    def __init__(self, config: ResidueTypeConfig = ResidueTypeConfig()) -> None:
        super().__init__()
        self.kind = config.kind
        if config.kind == "mlp":
            layers: list[nn.Module] = []
            width = config.features
            for _ in range(config.layers):
                layers += [nn.Linear(width, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
                width = config.hidden
            layers.append(nn.Linear(width, len(AMINO_ACIDS)))
            self.layers = nn.Sequential(*layers)
            return
        if config.kind != "cnn":
            raise ValueError(f"unknown residue-type network kind {config.kind!r} (cnn or mlp)")
        first, second, third = config.channels
        self.convolutions = nn.Sequential(
            nn.Conv3d(1, first, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(first, second, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv3d(second, third, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Flatten(),
        )
        flattened = self.convolutions(torch.zeros(1, 1, *GRID_SHAPE)).shape[1]
        self.layers = nn.Sequential(
            nn.Linear(flattened + 1, config.hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, len(AMINO_ACIDS))
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            return self.layers(features)
        grid = features[:, :-1].reshape(-1, 1, *GRID_SHAPE)  # the frame grid; the last feature is the backbone density
        return self.layers(torch.cat([self.convolutions(grid), features[:, -1:]], dim=1))


@dataclass(frozen=True)
class ResidueTypeClassifier:
    """A loaded classifier and the record it was shipped with."""

    model: ResidueTypeNet
    record: dict

    @torch.no_grad()
    def probabilities(self, density: DensityMap, n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
        """P(type) (L, 20) of residues with backbone ``n``, ``ca``, ``c`` in the normalised 1 Å map ``density``."""
        if len(np.atleast_2d(ca)) == 0:
            return np.zeros((0, len(AMINO_ACIDS)))
        features = torch.from_numpy(residue_features(density, n, ca, c))
        return torch.softmax(self.model(features), dim=1).double().numpy()


def load_classifier(path: str | os.PathLike | None = None) -> ResidueTypeClassifier:
    """Load ``residue_types.json`` and its weights (default: the shipped ones), checking format, version and sha256."""
    if path is None:
        return _shipped()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _shipped() -> ResidueTypeClassifier:
    return _load(WEIGHTS_DIR / "residue_types.json")


def _load(path: Path) -> ResidueTypeClassifier:
    if path.is_dir():
        path = path / "residue_types.json"
    if not path.is_file():
        raise BadWeightsError(
            f"{path}: no residue-type classifier; train it with `python -m ligfit.backbone.train_residue_types --install`"
        )
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT or record.get("feature_version") != FEATURE_VERSION:
        raise BadWeightsError(f"{path}: not residue-type weights for feature version {FEATURE_VERSION}; retrain them")
    net = {"kind": "mlp", **record["net"]}  # records before the CNN describe an MLP
    net["channels"] = tuple(net.get("channels", ResidueTypeConfig.channels))
    model = load_state(
        ResidueTypeNet(ResidueTypeConfig(**net)),
        path.parent / record["weights"],
        record["sha256"],
        path.name,
        "reinstall or retrain",
    )
    return ResidueTypeClassifier(model, record)
