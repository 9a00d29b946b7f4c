"""The resampling contract between maps and the network, shared by training and inference.

The network sees a map resampled to 1 Å voxels, shifted and scaled to zero mean and unit
standard deviation over the whole map, and read in cubes whose voxels outside the map hold
the map's median. Training builds its examples with exactly these functions, so a change
here is a change of the weights' contract: bump ``CONTRACT_VERSION`` and retrain. So is a
change of what the output channels mean (version 2: sigmoid backbone mask and N/Cα/C heat-maps
instead of a softmax over none/N/Cα/C).
"""

from __future__ import annotations

import numpy as np

from ligfit import maps
from ligfit.maps import DensityMap

#: Voxel size (Å) the network was trained on.
VOXEL_SIZE = 1.0
#: Written into the weights' config; inference refuses weights made for another contract.
CONTRACT_VERSION = 2


def to_network_grid(density_map: DensityMap) -> DensityMap:
    """Resample to 1 Å voxels (same origin) unless already there."""
    if np.allclose(density_map.voxel_size, VOXEL_SIZE, atol=1e-4):
        return density_map
    return maps.resample(density_map, VOXEL_SIZE)


def normalise(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Zero mean, unit standard deviation over the whole map; also return the fill value (median)."""
    values = values.astype(np.float32, copy=False)
    std = float(values.std())
    if std == 0:
        return np.zeros_like(values), 0.0
    normalised = (values - float(values.mean())) / std
    return normalised, float(np.median(normalised))


def cut_cube(values: np.ndarray, start: np.ndarray, size: int, fill: float) -> np.ndarray:
    """The ``size``³ block of ``values`` starting at voxel ``start`` (may lie partly outside: ``fill``)."""
    start = np.asarray(start, dtype=int)
    cube = np.full((size, size, size), fill, dtype=np.float32)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + size, values.shape)
    if np.all(hi > lo):
        cube[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] = values[tuple(slice(a, b) for a, b in zip(lo, hi))]
    return cube
