"""The 3D U-Net that labels every voxel of a 1 Å map (DeepTracer, Pfab et al. 2021, PNAS 118:e2017525118).

Three per-voxel heads share one encoder–decoder: backbone (four independent sigmoid logits: the
backbone mask "trace" and N / Cα / C heat-maps whose peaks mark the atoms, CenterNet-style),
secondary structure (helix / strand / coil) and amino-acid type (20 standard residues). Input and
outputs are (batch, channels, x, y, z) on the same 1 Å grid; the cube edge must be a multiple
of ``2 ** (levels - 1)``. BatchNorm (running statistics at inference) keeps the network
translation-equivariant, so overlapping cubes stitch without seams.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

#: Backbone channels, secondary-structure classes and residue types, in head-channel order.
BACKBONE_CLASSES = ("trace", "N", "CA", "C")
SS_CLASSES = ("helix", "strand", "coil")
AMINO_ACIDS = tuple("ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split())
ONE_LETTER = "ARNDCQEGHILKMFPSTWYV"


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyperparameters; saved beside the weights and required to load them."""

    base_channels: int = 16
    levels: int = 4
    in_channels: int = 1
    dropout: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> NetConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown network hyperparameters {sorted(unknown)}")
        return cls(**values)


def _block(channels_in: int, channels_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv3d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm3d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv3d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm3d(channels_out),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout3d(dropout))
    return nn.Sequential(*layers)


class BackboneUNet(nn.Module):
    """3D U-Net with backbone-atom, secondary-structure and amino-acid heads (logits)."""

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        widths = [config.base_channels * 2**level for level in range(config.levels)]
        self.encoders = nn.ModuleList()
        previous = config.in_channels
        for width in widths:
            self.encoders.append(_block(previous, width, config.dropout))
            previous = width
        self.pool = nn.MaxPool3d(2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsamplers.append(nn.ConvTranspose3d(previous, width, 2, stride=2))
            self.decoders.append(_block(2 * width, width, config.dropout))
            previous = width
        self.backbone_head = nn.Conv3d(previous, len(BACKBONE_CLASSES), 1)
        self.ss_head = nn.Conv3d(previous, len(SS_CLASSES), 1)
        self.aa_head = nn.Conv3d(previous, len(AMINO_ACIDS), 1)
        # Start the sigmoid heads near P = 0.1 (CenterNet's prior) so the rare positives do not
        # begin with a huge loss from every empty voxel.
        nn.init.constant_(self.backbone_head.bias, -2.19)

    @property
    def multiple(self) -> int:
        """Cube edges must be a multiple of this many voxels."""
        return 2 ** (self.config.levels - 1)

    def forward(self, density: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        features = density
        for level, encoder in enumerate(self.encoders):
            features = encoder(features if level == 0 else self.pool(features))
            skips.append(features)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips[:-1])):
            features = decoder(torch.cat([upsample(features), skip], dim=1))
        return {"backbone": self.backbone_head(features), "ss": self.ss_head(features), "aa": self.aa_head(features)}
