"""The differentiable pose model: torsion tree, batched poses, score grids, and the optimiser.

Poses are optimised in batches with torch: rigid-body parameters (translation and rotation
vector) plus one angle per rotatable bond, against trilinear samples of the difference map
and of distance-to-protein grids. Everything lives on the site's torch device (the CPU, or a
CUDA GPU: ``DockingOptions.device``); poses come and go as numpy arrays. On the CPU the Adam
steps themselves run compiled (:mod:`ligfit.dock.kernel`, ``DockingOptions.compiled_search``),
with this module's torch objective as their reference.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from scipy import ndimage
from scipy.spatial import cKDTree

from ligfit import maps
from ligfit.dock.options import DockingOptions
from ligfit.io import AtomTable
from ligfit.ligand import Ligand
from ligfit.maps import DensityMap
from ligfit.measures import METAL_ELEMENTS, POLAR_ELEMENTS
from ligfit.runtime import torch_thread_pool

#: Ligand metals coordinate protein N/O/S at ~2 Å: they get a short clash distance.
METAL_CLASH_DISTANCE = 1.8

SMOOTH, SHARP, APOLAR_DISTANCE, POLAR_DISTANCE = range(4)
ALL_CHANNELS = (SMOOTH, SHARP, APOLAR_DISTANCE, POLAR_DISTANCE)
#: Adam's moment decay rates and ε (torch.optim.Adam's defaults).
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8


@dataclass(frozen=True)
class TorsionTree:
    """Rotatable bonds as (root-side atom, moving-side atom) with the atoms each one moves.

    Moving sides are taken away from the heavy-atom graph centre, so they nest or are
    disjoint and the order in which torsions are applied does not matter.
    """

    axes: np.ndarray  # (t, 2) atom indices
    moving: np.ndarray  # (t, n_atoms) bool
    internal_pairs: np.ndarray  # (p, 2) heavy-atom pairs at least 4 bonds apart
    internal_limits: np.ndarray  # (p,) closest allowed distance, Å

    @classmethod
    def from_ligand(cls, ligand: Ligand) -> TorsionTree:
        mol = ligand.mol
        distances = Chem.GetDistanceMatrix(mol)
        heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
        root = int(np.argmin(distances[np.ix_(heavy, heavy)].max(axis=1)))
        axes, moving = [], []
        for a, b in ligand.rotatable_bonds:
            side = moving_side(mol, a, b)
            if side[root]:
                a, b = b, a
                side = moving_side(mol, a, b)
            axes.append((a, b))
            moving.append(side)
        pairs = np.argwhere(np.triu(distances >= 4, 1) & heavy[:, None] & heavy[None, :])
        limits = np.where(distances[pairs[:, 0], pairs[:, 1]] == 4, 2.6, 3.0)  # 1–5 pairs sit closer
        n = mol.GetNumAtoms()
        return cls(np.array(axes, dtype=int).reshape(-1, 2), np.array(moving, dtype=bool).reshape(-1, n), pairs, limits)

    def chain(self, atoms: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """The bonds as a kinematic chain, for the first ``atoms`` atoms (:func:`apply_torsions`).

        Levels, outermost first: (bonds, position of each one's parent among the bonds of the
        levels before, −1 for none). A bond's parent is the innermost bond whose moving side holds
        it. Then each atom's fragment: 0 for the root, k + 1 for the k-th bond in level order
        whose moving side is the innermost one holding the atom.
        """
        return _chain(self.moving.tobytes(), self.moving.shape, atoms)

    def chain_on(self, atoms: int, device: torch.device) -> _ChainIndices:
        """:meth:`chain` and the bonds' atoms as index tensors on ``device``, made once: on a GPU, indexing with numpy
        arrays copies them to it at every step, and each copy from host memory waits for the work queued before it."""
        return _chain_on(self.moving.tobytes(), self.moving.shape, self.axes.tobytes(), atoms, device)


@dataclass(frozen=True)
class _ChainIndices:
    """:meth:`TorsionTree.chain` as tensors: each bond's two atoms, the levels (bonds, parents, whether they have parents), fragments."""

    first: torch.Tensor
    second: torch.Tensor
    levels: list[tuple[torch.Tensor, torch.Tensor, bool]]
    fragment: torch.Tensor


@functools.lru_cache(maxsize=64)
def _chain_on(moving_bytes: bytes, shape: tuple[int, int], axes_bytes: bytes, atoms: int, device: torch.device) -> _ChainIndices:
    levels, fragment = _chain(moving_bytes, shape, atoms)
    axes = np.frombuffer(axes_bytes, dtype=np.int64).reshape(-1, 2)

    def on(values: np.ndarray) -> torch.Tensor:  # a copy: ``axes`` is a read-only view of the cache key's bytes
        return torch.tensor(values, dtype=torch.int64, device=device)

    return _ChainIndices(
        on(axes[:, 0]), on(axes[:, 1]), [(on(bonds), on(parents), bool(parents[0] >= 0)) for bonds, parents in levels], on(fragment)
    )


@functools.lru_cache(maxsize=64)
def _chain(moving_bytes: bytes, shape: tuple[int, int], atoms: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    moving = np.frombuffer(moving_bytes, dtype=bool).reshape(shape)
    sizes = moving.sum(1)
    parent = np.full(len(moving), -1)
    for t in range(len(moving)):
        holders = [u for u in range(len(moving)) if u != t and sizes[u] > sizes[t] and moving[u][moving[t]].all()]
        if holders:
            parent[t] = min(holders, key=lambda u: sizes[u])
    depth = np.zeros(len(moving), dtype=int)
    for t in range(len(moving)):
        u = t
        while parent[u] >= 0:
            depth[t] += 1
            u = parent[u]
    order = np.argsort(depth, kind="stable")
    position = np.empty(len(moving), dtype=int)
    position[order] = np.arange(len(moving))
    levels = []
    for level in range(depth.max() + 1 if len(moving) else 0):
        bonds = order[depth[order] == level]
        levels.append((bonds, np.where(parent[bonds] >= 0, position[np.maximum(parent[bonds], 0)], -1)))
    fragment = np.zeros(atoms, dtype=int)
    for atom in range(atoms):
        holders = np.flatnonzero(moving[:, atom])
        if len(holders):
            fragment[atom] = position[holders[np.argmin(sizes[holders])]] + 1
    return levels, fragment


def moving_side(mol: Chem.Mol, a: int, b: int) -> np.ndarray:
    """Boolean mask of the atoms on b's side of the bond a–b."""
    seen = {b}
    stack = [b]
    while stack:
        atom = stack.pop()
        for neighbour in mol.GetAtomWithIdx(atom).GetNeighbors():
            index = neighbour.GetIdx()
            if index != a and index not in seen:
                seen.add(index)
                stack.append(index)
    mask = np.zeros(mol.GetNumAtoms(), dtype=bool)
    mask[list(seen)] = True
    return mask


def rotation_matrices(rotation_vectors: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (B, 3) rotation vectors → (B, 3, 3) matrices."""
    angle = torch.sqrt((rotation_vectors**2).sum(-1, keepdim=True) + 1e-12)
    k = rotation_vectors / angle
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    cross = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=rotation_vectors.dtype, device=rotation_vectors.device).expand_as(cross)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return eye + sin * cross + (1 - cos) * (cross @ cross)


def apply_torsions(coordinates: torch.Tensor, angles: torch.Tensor, tree: TorsionTree) -> torch.Tensor:
    """Rotate each rotatable bond's moving side by its angle (radians); coordinates (B, N, 3), the first N atoms of the ligand.

    As a kinematic chain: the rotatable bonds cut the ligand into rigid fragments; each bond's
    rotation (a 3×3 matrix and a shift, about the bond as it lies in ``coordinates``) is composed
    with those of the bonds above it, and every atom then moves once, by its fragment's
    transform. The same poses as turning each moving side in turn (the sides nest or are
    disjoint), with the per-atom work done once instead of once per bond.
    """
    count = len(tree.axes)
    if count == 0:
        return coordinates
    device = coordinates.device
    chain = tree.chain_on(coordinates.shape[1], device)
    a, b = chain.first, chain.second
    origin = coordinates.index_select(1, b)  # (B, t, 3)
    axis = origin - coordinates.index_select(1, a)
    axis = axis / torch.sqrt((axis**2).sum(-1, keepdim=True) + 1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis.shape[:2], 3, 3)
    sin, cos = torch.sin(angles)[..., None, None], torch.cos(angles)[..., None, None]
    rotation = torch.eye(3, dtype=coordinates.dtype, device=device) + sin * cross + (1 - cos) * (cross @ cross)  # (B, t, 3, 3)
    shift = origin - (rotation @ origin[..., None])[..., 0]  # x → R x + shift turns about the bond
    composed_rotation, composed_shift = rotation[:, :0], shift[:, :0]  # the bonds composed so far, in level order
    for bonds, parents, nested in chain.levels:
        turn, offset = rotation.index_select(1, bonds), shift.index_select(1, bonds)
        if nested:  # a level's bonds all have parents, or (the first) none
            above, above_shift = composed_rotation.index_select(1, parents), composed_shift.index_select(1, parents)
            turn, offset = above @ turn, (above @ offset[..., None])[..., 0] + above_shift
        composed_rotation = torch.cat([composed_rotation, turn], 1)
        composed_shift = torch.cat([composed_shift, offset], 1)
    identity = torch.eye(3, dtype=coordinates.dtype, device=device).expand(len(coordinates), 1, 3, 3)
    fragment_rotation = torch.cat([identity, composed_rotation], 1)  # fragment 0: the root, unmoved
    fragment_shift = torch.cat([torch.zeros_like(shift[:, :1]), composed_shift], 1)
    index = chain.fragment
    return _turned(fragment_rotation.index_select(1, index), coordinates) + fragment_shift.index_select(1, index)


def _turned(rotation: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``rotation`` (..., 3, 3) times ``points`` (..., 3), each component summed as (r₀x₀ + r₁x₁) + r₂x₂.

    The sums of torch's own small-matrix product in the same order, so the same numbers to the bit, without a 3×3 by 3×1
    ``@`` per atom. With :func:`apply_torsions`' gathers by ``index_select`` (whose backward adds where indexing's
    ``index_put`` accumulated) its forward and backward take 0.75–0.8 of the time (154 and 472 poses of 40 atoms).
    """
    return rotation[..., 0] * points[..., 0, None] + rotation[..., 1] * points[..., 1, None] + rotation[..., 2] * points[..., 2, None]


@dataclass
class Site:
    """A docking box around one blob: four score grids as one torch tensor, and their frame.

    Channels: the difference map smoothed by 1 Å and as is (both divided by the blob's 90th
    percentile and clipped to [-0.5, 1.2], so one atom in strong density scores about 1), and
    the distance (Å, capped at 8) to the nearest protein C/S atom and N/O atom. The grids live on
    the device the search runs on.
    """

    grids: torch.Tensor  # (1, 4, nx, ny, nz)
    density: DensityMap  # the difference map in the box, σ units
    scale: float

    @classmethod
    def around(
        cls,
        difference: DensityMap,
        points: np.ndarray,
        values: np.ndarray,
        ligand_radius: float,
        protein: AtomTable | None,
        device: torch.device | str = "cpu",
    ) -> Site:
        lower = points.min(axis=0) - ligand_radius - 3.0
        upper = points.max(axis=0) + ligand_radius + 3.0
        density = maps.box(difference, (lower + upper) / 2, upper - lower)
        scale = max(float(np.percentile(values, 90)), 1.0)
        sharp = np.clip(density.values / scale, -0.5, 1.2)
        smooth = ndimage.gaussian_filter(sharp, 1.0 / density.voxel_size)
        apolar, polar = _protein_distance_grids(density, protein)
        stacked = np.stack([smooth, sharp, apolar, polar])[None].astype(np.float32)
        return cls(torch.from_numpy(stacked).to(device), density, scale)

    @property
    def device(self) -> torch.device:
        return self.grids.device

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        """``values`` as float32 on the site's device (poses to score, kicks to add)."""
        return torch.as_tensor(values, dtype=torch.float32, device=self.grids.device)

    @functools.cached_property
    def _frame(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Origin, voxel size and last voxel index as float32 tensors on the device, made once (see :meth:`TorsionTree.chain_on`)."""
        values = (self.density.origin, self.density.voxel_size, np.array(self.density.shape) - 1)
        return tuple(torch.as_tensor(value, dtype=torch.float32, device=self.grids.device) for value in values)  # type: ignore[return-value]

    @functools.cached_property
    def _grids_by_channels(self) -> dict[tuple[int, ...], torch.Tensor]:
        return {}

    def _channel_grids(self, channels: tuple[int, ...]) -> torch.Tensor:
        """The grids of ``channels`` as one contiguous tensor, made once per site (lanes may make it twice: the same tensor)."""
        if channels not in self._grids_by_channels:
            self._grids_by_channels[channels] = self.grids[:, list(channels)].contiguous()
        return self._grids_by_channels[channels]

    def compiled_grids(self, channels: tuple[int, ...]) -> np.ndarray:
        """The grids of ``channels`` as one float64 (C, nx, ny, nz) numpy array for the compiled search, made once per site."""
        if channels not in self._compiled_grids:
            self._compiled_grids[channels] = self.grids[0, list(channels)].cpu().numpy().astype(np.float64)
        return self._compiled_grids[channels]

    @functools.cached_property
    def _compiled_grids(self) -> dict[tuple[int, ...], np.ndarray]:
        return {}

    def sample(self, points: torch.Tensor, channels: tuple[int, ...] = ALL_CHANNELS) -> torch.Tensor:
        """Trilinear values of the grids ``channels`` (density channels first) at points (B, N, 3) Å, float32 on the
        site's device (:meth:`tensor`) → (C, B, N); density outside reads 0.

        Each channel is interpolated on its own, so sampling fewer channels gives the same values (and gradient) for those
        asked for: the score asks for the one density channel it reads, a quarter less work than all four.
        """
        origin, voxel, last = self._frame
        normalised = 2 * ((points - origin) / voxel) / last - 1
        grid = normalised.flip(-1).reshape(1, -1, 1, 1, 3)  # grid_sample indexes (W, H, D) = (z, y, x)
        grids = self.grids if channels == ALL_CHANNELS else self._channel_grids(channels)
        values = torch.nn.functional.grid_sample(grids, grid, mode="bilinear", padding_mode="border", align_corners=True)
        values = values.reshape(len(channels), *points.shape[:2])
        densities = sum(channel < APOLAR_DISTANCE for channel in channels)
        outside = ((normalised < -1) | (normalised > 1)).any(-1)
        density = torch.where(outside[None], torch.zeros_like(values[:densities]), values[:densities])
        return torch.cat([density, values[densities:]], 0)


def _protein_distance_grids(density: DensityMap, protein: AtomTable | None) -> tuple[np.ndarray, np.ndarray]:
    far = np.full(density.shape, 8.0, dtype=np.float32)
    if protein is None or len(protein) == 0:
        return far, far.copy()
    coordinates, elements = protein.coordinates, protein.elements
    points = density.grid_points().reshape(-1, 3)
    grids = []
    for polar in (False, True):
        selected = coordinates[np.isin(elements, list(POLAR_ELEMENTS)) == polar]
        if len(selected) == 0:
            grids.append(far.copy())
            continue
        distance, _ = cKDTree(selected).query(points, distance_upper_bound=8.0)
        grids.append(np.minimum(distance, 8.0).reshape(density.shape).astype(np.float32))
    return grids[0], grids[1]


def clash_limits(elements: list[str], options: DockingOptions, device: torch.device | str = "cpu") -> torch.Tensor:
    """(2, n) closest allowed distances (Å) of each ligand atom to protein C/S and to protein N/O, on ``device``."""
    apolar = [METAL_CLASH_DISTANCE if e in METAL_ELEMENTS else options.clash_distance for e in elements]
    polar = [
        METAL_CLASH_DISTANCE if e in METAL_ELEMENTS else options.polar_clash_distance if e in POLAR_ELEMENTS else options.clash_distance
        for e in elements
    ]
    return torch.tensor([apolar, polar], dtype=torch.float32, device=device)


def fit_loss(
    heavy_xyz: torch.Tensor,
    site: Site,
    limits: torch.Tensor,
    channel: int,
    options: DockingOptions,
    internal_pairs: np.ndarray | torch.Tensor | None = None,
    internal_limits: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pose loss (lower is better): −density at the heavy atoms + protein clash + internal overlap.

    ``limits`` comes from :func:`clash_limits`: polar pairs (ligand N/O to protein N/O) may come
    as close as a hydrogen bond, metals as close as a coordination bond. ``internal_pairs`` may come as
    (p, 2) tensors on the poses' device already (:class:`_Objective` makes them once per optimisation).
    """
    samples = site.sample(heavy_xyz, (channel, APOLAR_DISTANCE, POLAR_DISTANCE))
    density = samples[0].sum(-1)
    clash = (torch.relu(limits[0] - samples[1]) ** 2).sum(-1)
    clash = clash + (torch.relu(limits[1] - samples[2]) ** 2).sum(-1)
    loss = -density + options.clash_weight * clash
    if internal_pairs is not None and len(internal_pairs):
        i, j = torch.as_tensor(internal_pairs, device=heavy_xyz.device).T.contiguous()  # contiguous indices: 3.6× faster gathers
        limits = torch.as_tensor(internal_limits, dtype=heavy_xyz.dtype, device=heavy_xyz.device)
        loss = loss + options.internal_weight * internal_overlap(heavy_xyz, i, j, limits)
    return loss


def internal_overlap(heavy_xyz: torch.Tensor, i: torch.Tensor, j: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """Per-pose Σ relu(limit − distance)² over the ligand's internal pairs (i, j): (B, N, 3) → (B,).

    On the CPU the gradient comes from the overlapping pairs alone (:class:`_InternalOverlap`); on a GPU, where finding
    them would stop a CUDA graph, through autograd over every pair. The same numbers either way.
    """
    if heavy_xyz.device.type == "cpu":
        return _InternalOverlap.apply(heavy_xyz, i, j, limits)
    by_atom = _AtomsFirst.apply(heavy_xyz)
    separation = torch.sqrt(((by_atom.index_select(0, i) - by_atom.index_select(0, j)) ** 2).sum(-1) + 1e-9).T
    return (torch.relu(limits - separation) ** 2).contiguous().sum(-1)


class _InternalOverlap(torch.autograd.Function):
    """:func:`internal_overlap` with a gradient from the overlapping (pair, pose) entries only.

    A 40-atom ligand has ~600 internal pairs and few of them overlap in any pose, but autograd carries every pair through
    eight steps back (over half of a 944-pose conformer-search step). Here the coordinates lie in planes (x, y or z;
    atom; pose), so each pair's differences are whole contiguous rows and Σ d² three plain products (summing a last axis
    of three was the slowest step). The backward is autograd's own arithmetic, op for op in the same order, on the
    overlapping entries (the others add exact zeros), scattered in pair order as ``index_select``'s backward scatters:
    the same loss and gradient to the bit, in a third of the time.
    """

    @staticmethod
    def forward(ctx, xyz: torch.Tensor, i: torch.Tensor, j: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
        planes = xyz.permute(2, 1, 0).contiguous()  # (3, N, B)
        difference = planes.index_select(1, i) - planes.index_select(1, j)  # (3, P, B)
        separation = torch.sqrt(difference[0] * difference[0] + difference[1] * difference[1] + difference[2] * difference[2] + 1e-9)
        overlap = torch.relu(limits[:, None] - separation)  # (P, B)
        if ctx.needs_input_grad[0]:
            pair, pose = torch.nonzero(overlap > 0, as_tuple=True)  # pair-major, as the scatter must run
            poses = xyz.shape[0]
            ctx.save_for_backward(
                difference[:, pair, pose], separation[pair, pose], overlap[pair, pose], pose, i[pair] * poses + pose, j[pair] * poses + pose
            )
            ctx.atoms = planes.shape[1]
        return (overlap**2).T.contiguous().sum(-1)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        difference, separation, overlap, pose, first, second = ctx.saved_tensors
        poses = gradient.shape[0]
        step = -(gradient[pose] * (2 * overlap))  # through (·)², relu and limit − separation
        step = (step / (2 * separation)) * (2 * difference)  # through the square root and Σ d²: (3, K)
        by_first = torch.zeros(3, ctx.atoms * poses, dtype=step.dtype, device=step.device).index_add_(1, first, step)
        by_second = torch.zeros_like(by_first).index_add_(1, second, -step)
        return (by_first + by_second).reshape(3, ctx.atoms, poses).permute(2, 1, 0).contiguous(), None, None, None


class _AtomsFirst(torch.autograd.Function):
    """(B, N, 3) → contiguous (N, B, 3), and its gradient back to contiguous (B, N, 3).

    The internal-clash pairs are gathered from, and their gradient scattered into, whole contiguous (B, 3)
    slices (strided on (B, N, 3): ~40 % of a 960-pose step). Every value and every sum is the same, in the
    same order: the gradient comes back in the poses' own layout, so the sums over atoms that reduce it
    (the translation's gradient) run as before, and the search is identical to the last bit.
    """

    @staticmethod
    def forward(ctx, xyz: torch.Tensor) -> torch.Tensor:
        return xyz.transpose(0, 1).contiguous()

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.transpose(0, 1).contiguous()


class PoseBatch:
    """Poses being optimised: starting coordinates plus rigid-body and torsion parameters."""

    def __init__(
        self,
        coordinates: np.ndarray | torch.Tensor,
        rotations: np.ndarray,
        positions: np.ndarray,
        heavy: int,
        source: np.ndarray,
        device: torch.device | str = "cpu",
    ):
        coordinates = torch.as_tensor(coordinates, dtype=torch.float32, device=device)
        self.heavy = heavy
        self.source = np.asarray(source)
        self.local = coordinates - coordinates[:, :heavy].mean(1, keepdim=True)
        self.rotation0 = torch.as_tensor(rotations, dtype=torch.float32, device=device)
        self.position0 = torch.as_tensor(positions, dtype=torch.float32, device=device)
        self.translation = torch.zeros(len(self.local), 3, device=device, requires_grad=True)
        self.rotation = torch.zeros(len(self.local), 3, device=device, requires_grad=True)
        self.torsion: torch.Tensor | None = None

    @classmethod
    def from_poses(cls, coordinates: np.ndarray, heavy: int, source: np.ndarray, device: torch.device | str = "cpu") -> PoseBatch:
        """A batch starting exactly at the given poses (B, N, 3)."""
        centres = coordinates[:, :heavy].mean(1)
        rotations = np.repeat(np.eye(3)[None], len(coordinates), 0)
        return cls(coordinates, rotations, centres, heavy, source, device)

    def __len__(self) -> int:
        return len(self.local)

    def enable_torsions(self, count: int) -> None:
        self.torsion = torch.zeros(len(self), count, device=self.local.device, requires_grad=True)

    def coordinates(self, tree: TorsionTree | None = None, heavy_only: bool = False) -> torch.Tensor:
        """Posed coordinates (B, N, 3); with ``heavy_only`` just the heavy atoms (what the score reads: half the work)."""
        local = self.local[:, : self.heavy] if heavy_only else self.local
        if self.torsion is not None and tree is not None and len(tree.axes):
            local = apply_torsions(local, self.torsion, tree)
        rotation = rotation_matrices(self.rotation) @ self.rotation0
        return local @ rotation.transpose(1, 2) + self.position0[:, None, :] + self.translation[:, None, :]

    def keep(self, indices: torch.Tensor) -> None:
        """Keep only the poses at ``indices`` (their parameters as they are now)."""
        self.source = self.source[indices.cpu().numpy()]
        indices = indices.to(self.local.device)
        self.local, self.rotation0, self.position0 = self.local[indices], self.rotation0[indices], self.position0[indices]
        self.translation = self.translation.detach()[indices].requires_grad_(True)
        self.rotation = self.rotation.detach()[indices].requires_grad_(True)
        if self.torsion is not None:
            self.torsion = self.torsion.detach()[indices].requires_grad_(True)

    def subset(self, indices: torch.Tensor) -> PoseBatch:
        """A new batch of the poses at ``indices``, parameters as they are now (this batch is unchanged)."""
        part = PoseBatch.__new__(PoseBatch)
        part.heavy, part.source = self.heavy, self.source
        part.local, part.rotation0, part.position0 = self.local, self.rotation0, self.position0
        part.translation, part.rotation, part.torsion = self.translation, self.rotation, self.torsion
        part.keep(indices)
        return part

    @classmethod
    def joined(cls, batches: list[PoseBatch]) -> PoseBatch:
        """One batch holding ``batches``' poses in order."""
        whole = PoseBatch.__new__(PoseBatch)
        whole.heavy = batches[0].heavy
        whole.source = np.concatenate([batch.source for batch in batches])
        whole.local, whole.rotation0, whole.position0 = (
            torch.cat([getattr(batch, name) for batch in batches]) for name in ("local", "rotation0", "position0")
        )
        whole.translation, whole.rotation = (
            torch.cat([getattr(batch, name).detach() for batch in batches]).requires_grad_(True) for name in ("translation", "rotation")
        )
        torsions = [batch.torsion for batch in batches]
        whole.torsion = None if torsions[0] is None else torch.cat([torsion.detach() for torsion in torsions]).requires_grad_(True)
        return whole

    def adopt(self, other: PoseBatch) -> None:
        """Become ``other`` (the poses an optimisation ended with)."""
        if other is not self:
            self.__dict__.update(other.__dict__)

    def parameter_groups(self) -> list[tuple[torch.Tensor, float]]:
        """Each parameter tensor with its Adam learning rate (Å, radians)."""
        groups = [(self.translation, 0.15), (self.rotation, 0.05)]
        if self.torsion is not None:
            groups.append((self.torsion, 0.08))
        return groups

    def current(self, tree: TorsionTree | None = None) -> np.ndarray:
        with torch.no_grad():
            return self.coordinates(tree).cpu().numpy().astype(float)


#: On a CUDA GPU an optimisation runs this many steps eagerly (torch's lazy set-up), then replays the next as a CUDA graph.
GRAPH_WARMUP_STEPS = 2
#: One graphed optimisation at a time per process: captures share torch's capture stream, so two threads (blobs docked
#: from threads of a caller's own, a Dask worker's threads) must not capture at once. Build docks on a GPU from one thread.
_GRAPH_CAPTURE = threading.Lock()

#: A batch is optimised in lanes of at least this many poses, one Python thread per torch thread and one torch thread
#: per lane: the conformer search's ~1,000 poses are compute-bound, and two lanes ran its 80 steps in 2.2 s against 3.2 s
#: on torch's own two threads (7BTT, 40 atoms). A refinement's 64 poses are bound by per-step overhead, which lanes
#: share under the GIL (0.70 against 0.69 s): one lane. The poses are independent (Adam is elementwise, the loss a sum
#: of per-pose terms), so the lanes give the same numbers to the bit, as torch's thread count does.
LANE_MIN_POSES = 128


def optimise(
    batch: PoseBatch,
    site: Site,
    tree: TorsionTree | None,
    clash: torch.Tensor,
    channel: int,
    steps: int,
    options: DockingOptions,
    survivors: int | None = None,
) -> np.ndarray:
    """Adam with a cosine schedule on every pose at once; returns the final per-pose loss.

    ``survivors``: after ``options.prune_after`` of the steps, keep only this many lowest-loss
    poses (``batch`` shrinks to them); the others are dominated and are not optimised further.
    ``clash`` holds the per-atom clash distances from :func:`clash_limits`. Only heavy atoms are
    posed while optimising (the loss reads nothing else). Adam is written out (the update of
    ``torch.optim.Adam``, defaults β = (0.9, 0.999), ε = 1e-8, with ``CosineAnnealingLR``'s
    learning rates): torch's optimiser imports torch._dynamo on first use (2.4 s) and adds
    Python overhead to every one of the thousands of small steps a blob takes. A large batch runs in
    lanes (``LANE_MIN_POSES``) on the CPU, with the same result; on a GPU in one. On the CPU with
    ``options.compiled_search`` the steps run in :mod:`ligfit.dock.kernel` (lanes of
    ``COMPILED_LANE_MIN_POSES``), the same objective and Adam to float rounding.
    """
    run = _AdamRun(batch, _AdamRun.zero_moments(batch), _Objective(site, tree, clash, channel, steps, options))
    prune_step = int(options.prune_after * steps) if survivors is not None and survivors < len(batch) else -1
    lanes = torch.get_num_threads() if site.device.type == "cpu" else 1
    if site.device.type == "cpu" and options.compiled_search:
        run = _CompiledRun(run)
    if prune_step >= 0:
        run = _in_lanes(run, 0, prune_step, lanes)
        kept = torch.argsort(torch.as_tensor(run.loss()))[:survivors].sort().values
        run.keep(kept)
        run = _in_lanes(run, prune_step, steps, lanes)
    else:
        run = _in_lanes(run, 0, steps, lanes)
    batch.adopt(run.batch)
    return run.loss().astype(float)


@dataclass(frozen=True)
class _Objective:
    """What :func:`optimise` minimises and for how many steps."""

    site: Site
    tree: TorsionTree | None
    clash: torch.Tensor
    channel: int
    steps: int
    options: DockingOptions

    @functools.cached_property
    def internal(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The torsion tree's internal-clash pairs and limits on the site's device, made once (not at every step)."""
        if self.tree is None:
            return None, None
        pairs = torch.as_tensor(self.tree.internal_pairs, device=self.site.device)
        return pairs, torch.as_tensor(self.tree.internal_limits, dtype=torch.float32, device=self.site.device)

    def loss(self, batch: PoseBatch) -> torch.Tensor:
        pairs, limits = self.internal
        coordinates = batch.coordinates(self.tree, heavy_only=True)
        return fit_loss(coordinates, self.site, self.clash, self.channel, self.options, pairs, limits)


class _AdamRun:
    """A batch of poses part-way through :func:`optimise`'s Adam: the poses, their moments and the objective."""

    def __init__(self, batch: PoseBatch, moments: list[tuple[torch.Tensor, torch.Tensor]], objective: _Objective):
        self.batch, self.moments, self.objective = batch, moments, objective

    @staticmethod
    def zero_moments(batch: PoseBatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros_like(parameter), torch.zeros_like(parameter)) for parameter, _ in batch.parameter_groups()]

    def advance(self, start: int, stop: int) -> None:
        """Adam steps ``start`` … ``stop`` − 1 of the objective's (the cosine schedule runs over all of them)."""
        if self.batch.local.device.type == "cuda" and stop - start > GRAPH_WARMUP_STEPS + 1:
            self._advance_graphed(start, stop)
        else:
            self._advance_eager(start, stop)

    def _advance_eager(self, start: int, stop: int) -> None:
        beta1, beta2, epsilon = ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPSILON
        groups = self.batch.parameter_groups()
        parameters = [parameter for parameter, _ in groups]
        for step in range(start, stop):
            loss = self.objective.loss(self.batch)
            gradients = torch.autograd.grad(loss.sum(), parameters, allow_unused=True)  # a rigid ligand's empty torsions are unused
            gradients = [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, gradients)]
            schedule = 0.5 * (1.0 + math.cos(math.pi * step / max(self.objective.steps, 1)))
            correction1, correction2 = 1.0 - beta1 ** (step + 1), 1.0 - beta2 ** (step + 1)
            with torch.no_grad():
                for (parameter, rate), gradient, (mean, square) in zip(groups, gradients, self.moments):
                    mean.mul_(beta1).add_(gradient, alpha=1.0 - beta1)
                    square.mul_(beta2).addcmul_(gradient, gradient, value=1.0 - beta2)
                    denominator = (square.sqrt() / math.sqrt(correction2)).add_(epsilon)
                    parameter.addcdiv_(mean, denominator, value=-rate * schedule / correction1)

    def _advance_graphed(self, start: int, stop: int) -> None:
        """:meth:`_advance_eager` on a CUDA GPU: one Adam step captured as a CUDA graph and replayed for every step.

        Eagerly, each of the step's ~150 small kernels waits for Python and torch to launch it, and the GPU idles (a
        blob docked 1.2–1.6× slower on an H200 than on two CPU threads). Replayed, they run back to back.
        """
        step = self._replayable_step(start, stop)
        device = self.batch.local.device
        with _GRAPH_CAPTURE:
            side = torch.cuda.Stream(device)  # warm-up steps (real ones) off the default stream, as capture requires
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_STEPS):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                step()
            for _ in range(stop - start - GRAPH_WARMUP_STEPS):
                graph.replay()

    def _replayable_step(self, start: int, stop: int) -> Callable[[], None]:
        """One Adam step of ``start`` … ``stop`` − 1 per call, in a form a CUDA graph can replay: no value comes back to
        Python. The step's learning-rate factors come from tables on the device, read at a step counter each call advances
        (the same Adam as :meth:`_advance_eager`, to float rounding; it runs on any device, so the CPU tests check it)."""
        beta1, beta2, epsilon = ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPSILON
        groups = self.batch.parameter_groups()
        parameters = [parameter for parameter, _ in groups]
        device = parameters[0].device
        steps = np.arange(start, stop)
        schedule = 0.5 * (1.0 + np.cos(np.pi * steps / max(self.objective.steps, 1)))
        factors = torch.as_tensor(schedule / (1.0 - beta1 ** (steps + 1)), dtype=torch.float32, device=device)
        roots = torch.as_tensor(np.sqrt(1.0 - beta2 ** (steps + 1)), dtype=torch.float32, device=device)
        position = torch.zeros(1, dtype=torch.int64, device=device)

        def step() -> None:
            with torch.enable_grad():
                loss = self.objective.loss(self.batch)
                gradients = torch.autograd.grad(loss.sum(), parameters, allow_unused=True)
            with torch.no_grad():
                factor, root = factors.index_select(0, position), roots.index_select(0, position)
                for (parameter, rate), gradient, (mean, square) in zip(groups, gradients, self.moments):
                    gradient = torch.zeros_like(parameter) if gradient is None else gradient
                    mean.mul_(beta1).add_(gradient, alpha=1.0 - beta1)
                    square.mul_(beta2).addcmul_(gradient, gradient, value=1.0 - beta2)
                    parameter.sub_(mean / (square.sqrt() / root).add_(epsilon) * (rate * factor))
                position.add_(1)

        return step

    def loss(self) -> np.ndarray:
        with torch.no_grad():
            return self.objective.loss(self.batch).cpu().numpy()

    def keep(self, indices: torch.Tensor) -> None:
        self.batch.keep(indices)
        indices = indices.to(self.batch.local.device)
        self.moments = [(mean[indices], square[indices]) for mean, square in self.moments]

    def split(self, parts: int) -> list[_AdamRun]:
        """The run cut into ``parts`` runs of consecutive poses (each with its own copy of its poses and moments)."""
        pieces = torch.tensor_split(torch.arange(len(self.batch)), parts)
        return [
            _AdamRun(self.batch.subset(piece), [(mean[piece], square[piece]) for mean, square in self.moments], self.objective)
            for piece in pieces
        ]

    @classmethod
    def joined(cls, runs: list[_AdamRun]) -> _AdamRun:
        groups = range(len(runs[0].moments))
        moments = [(torch.cat([run.moments[g][0] for run in runs]), torch.cat([run.moments[g][1] for run in runs])) for g in groups]
        return cls(PoseBatch.joined([run.batch for run in runs]), moments, runs[0].objective)


def _in_lanes(run: _AdamRun, start: int, stop: int, lanes: int) -> _AdamRun:
    """``run`` advanced from step ``start`` to ``stop`` in up to ``lanes`` threads of ≥ ``LANE_MIN_POSES`` poses each."""
    if isinstance(run, _CompiledRun):
        run.advance_in_lanes(start, stop, lanes)
        return run
    lanes = min(lanes, len(run.batch) // LANE_MIN_POSES)
    if lanes < 2 or start == stop:
        run.advance(start, stop)
        return run
    parts = run.split(lanes)
    with torch_thread_pool(lanes) as pool:  # one torch thread per lane: the lanes are the parallelism
        list(pool.map(lambda part: part.advance(start, stop), parts))
    return _AdamRun.joined(parts)


#: The compiled search splits a batch into lanes of at least this many poses (a lane costs a thread's start, ~0.1 ms).
COMPILED_LANE_MIN_POSES = 8


class _CompiledRun(_AdamRun):
    """An :class:`_AdamRun` on the CPU whose steps run in :mod:`ligfit.dock.kernel` (the same objective and Adam, the
    gradient written out): the parameters and moments are float64 copies while it runs, written back after each stretch."""

    def __init__(self, run: _AdamRun):
        super().__init__(run.batch, run.moments, run.objective)

    def advance(self, start: int, stop: int) -> None:
        self.advance_in_lanes(start, stop, 1)

    def advance_in_lanes(self, start: int, stop: int, lanes: int) -> None:
        """Steps ``start`` … ``stop`` − 1 of every pose, in up to ``lanes`` threads of consecutive poses."""
        from ligfit.dock import kernel

        if start == stop:
            return
        batch, objective = self.batch, self.objective
        heavy = batch.heavy
        groups = batch.parameter_groups()
        parameters = [parameter.detach().numpy().astype(np.float64) for parameter, _ in groups]
        moments = [moment.numpy().astype(np.float64) for pair in self.moments for moment in pair]
        if len(groups) == 2:  # no torsion parameters: an empty set, as a rigid ligand's
            parameters.append(np.zeros((len(batch), 0)))
            moments += [np.zeros((len(batch), 0)), np.zeros((len(batch), 0))]
        fixed = _compiled_inputs(objective, heavy)
        steps = np.arange(start, stop)
        beta1, beta2 = ADAM_BETAS
        schedule = 0.5 * (1.0 + np.cos(np.pi * steps / max(objective.steps, 1)))
        factors = schedule / (1.0 - beta1 ** (steps + 1))
        roots = np.sqrt(1.0 - beta2 ** (steps + 1))
        rates = np.array([rate for _, rate in groups] + [0.0] * (3 - len(groups)))
        local = batch.local[:, :heavy].numpy().astype(np.float64)
        rotation0, position0 = batch.rotation0.numpy().astype(np.float64), batch.position0.numpy().astype(np.float64)

        def lane(first: int, stop_pose: int) -> None:
            kernel.adam_steps(
                first, stop_pose, local, rotation0, position0, *parameters, tuple(moments), *fixed, rates, factors, roots,
                beta1, beta2, ADAM_EPSILON,
            )  # fmt: skip

        bounds = np.linspace(0, len(batch), max(1, min(lanes, len(batch) // COMPILED_LANE_MIN_POSES)) + 1).astype(int)
        if len(bounds) == 2:
            lane(0, len(batch))
        else:
            with ThreadPoolExecutor(len(bounds) - 1) as pool:
                list(pool.map(lane, bounds[:-1], bounds[1:]))
        with torch.no_grad():
            for (parameter, _), values in zip(groups, parameters):
                parameter.copy_(torch.from_numpy(values))
            for (mean, square), values in zip(self.moments, zip(moments[0::2], moments[1::2])):
                mean.copy_(torch.from_numpy(values[0]))
                square.copy_(torch.from_numpy(values[1]))


def _compiled_inputs(objective: _Objective, heavy: int) -> tuple:
    """What :func:`ligfit.dock.kernel.adam_steps` reads besides the poses: grids and frame, clash limits, internal pairs,
    the torsion tree as level-ordered bonds, and the weights (float64 and int64 numpy arrays)."""
    site, tree, options = objective.site, objective.tree, objective.options
    grids = site.compiled_grids((objective.channel, APOLAR_DISTANCE, POLAR_DISTANCE))
    frame = (
        np.asarray(site.density.origin, dtype=np.float64),
        np.asarray(site.density.voxel_size, dtype=np.float64),
        np.array(site.density.shape, dtype=np.float64) - 1,
    )
    clash = objective.clash.numpy().astype(np.float64)
    empty = np.zeros(0, dtype=np.int64)
    pairs, pair_limits = (empty, empty), np.zeros(0)
    order, parent, first, second, fragment = empty, empty, empty, empty, np.zeros(heavy, dtype=np.int64)
    if tree is not None:  # the internal pairs count whenever there is a tree (as in fit_loss), the torsions when it has bonds
        pairs = (tree.internal_pairs[:, 0].astype(np.int64), tree.internal_pairs[:, 1].astype(np.int64))
        pair_limits = np.asarray(tree.internal_limits, dtype=np.float64)
    use_torsions = tree is not None and len(tree.axes) > 0
    if use_torsions:
        levels, chain_fragment = tree.chain(heavy)
        order = np.concatenate([bonds for bonds, _ in levels]).astype(np.int64)
        parent = np.concatenate([parents for _, parents in levels]).astype(np.int64)
        first, second = tree.axes[:, 0].astype(np.int64), tree.axes[:, 1].astype(np.int64)
        fragment = np.asarray(chain_fragment, dtype=np.int64)
    return (
        use_torsions, grids, *frame, clash, *pairs, pair_limits, first, second, order, parent, fragment,
        float(options.clash_weight), float(options.internal_weight),
    )  # fmt: skip


def diverse_best(coordinates: np.ndarray, loss: np.ndarray, count: int, min_rmsd: float) -> np.ndarray:
    """Indices of up to ``count`` lowest-loss poses, none within ``min_rmsd`` Å (plain RMSD) of a better one."""
    kept: list[int] = []
    for index in np.argsort(loss):
        if kept:
            deviation = np.sqrt(((coordinates[kept] - coordinates[index]) ** 2).sum(-1).mean(-1))
            if deviation.min() < min_rmsd:
                continue
        kept.append(int(index))
        if len(kept) == count:
            break
    return np.array(kept, dtype=int)
