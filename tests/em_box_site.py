"""1XR in its real EMDB box (8HFL, 3.0 Å): the docking site around the top blob, for the docking search tests."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.cases import em_ligand_boxes
from ligfit import segment
from ligfit.dock.search import Site
from ligfit.ligand import Ligand, load_ligand
from ligfit.records import Blob, LigandShape


def site_1xr(data) -> tuple[Ligand, np.ndarray, Site, Blob]:
    """The ligand (8 conformers), its conformer coordinates, the site around the top blob, and that blob."""
    case = next(c for c in em_ligand_boxes(data) if c.name == "8HFL 1XR")
    ligand = load_ligand(case.smiles, max_conformers=8, seed=0)
    heavy = ligand.heavy_atom_count
    conformers = ligand.conformer_coordinates()
    difference = segment.difference_map(case.density, None, case.resolution)
    blob = segment.find_blobs(difference, LigandShape.from_conformers(conformers[:, :heavy]), None)[0]
    radius = float(np.max(np.linalg.norm(conformers[:, :heavy] - conformers[:, :heavy].mean(1, keepdims=True), axis=-1)))
    return ligand, conformers, Site.around(difference.difference, blob.points, blob.values, radius, None), blob


def random_rotations(rng: np.random.Generator, count: int) -> torch.Tensor:
    """``count`` rotation matrices: exponentials of random skew matrices (angles ~ N(0, 1.5) per axis)."""
    x, y, z = rng.normal(0, 1.5, (count, 3)).T
    zero = np.zeros_like(x)
    return torch.linalg.matrix_exp(torch.as_tensor(np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)))
