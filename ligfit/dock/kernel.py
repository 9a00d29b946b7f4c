"""The docking search's Adam steps on the CPU, compiled (numba): posing, score, gradient and update of a pose in one loop.

The same objective and optimiser as :mod:`ligfit.dock.search`'s torch form (posing by the torsion tree and the rigid body,
trilinear samples of the density and protein-distance grids, clash and internal-overlap terms; Adam with a cosine
schedule), with the gradient written out: the torsions' by the kinematic chain (an atom moved by bond k moves by
u′ × (x′ − o′) per radian, u′ and o′ the bond's posed axis and origin), the rigid body's by Rodrigues' formula. Torch runs
each step as ~400 small operations, each with its own dispatch and allocation; here a pose's steps run in one loop
without the GIL, so lanes of poses run truly side by side. Poses are independent, so how they are split over lanes does not
change a number. The torch form stays the reference and what runs on a GPU; tests hold the two to float rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _axis_rotation(ux: float, uy: float, uz: float, angle: float, out: np.ndarray) -> None:
    """``out`` ← I + sin θ K + (1 − cos θ) K², K the cross-product matrix of the axis u (K² = u uᵀ − |u|² I)."""
    s, c = math.sin(angle), 1.0 - math.cos(angle)
    length = ux * ux + uy * uy + uz * uz
    out[0, 0] = 1.0 + c * (ux * ux - length)
    out[1, 1] = 1.0 + c * (uy * uy - length)
    out[2, 2] = 1.0 + c * (uz * uz - length)
    out[0, 1], out[1, 0] = -s * uz + c * ux * uy, s * uz + c * ux * uy
    out[0, 2], out[2, 0] = s * uy + c * ux * uz, -s * uy + c * ux * uz
    out[1, 2], out[2, 1] = -s * ux + c * uy * uz, s * ux + c * uy * uz


@njit(cache=True, nogil=True)
def _rodrigues_with_derivatives(vector: np.ndarray, rotation: np.ndarray, derivatives: np.ndarray, scratch: tuple) -> None:
    """``rotation`` ← R(v) for a rotation vector (torch's ``rotation_matrices``, angle √(|v|² + 1e-12)) and
    ``derivatives[m]`` ← ∂R/∂v_m; ``scratch`` from :func:`_workspace` (nothing is allocated per call)."""
    unit, k, k2, dk, d_unit, left, right = scratch
    angle = math.sqrt(vector[0] ** 2 + vector[1] ** 2 + vector[2] ** 2 + 1e-12)
    for i in range(3):
        unit[i] = vector[i] / angle
    s, c = math.sin(angle), math.cos(angle)
    k[0, 0], k[0, 1], k[0, 2] = 0.0, -unit[2], unit[1]
    k[1, 0], k[1, 1], k[1, 2] = unit[2], 0.0, -unit[0]
    k[2, 0], k[2, 1], k[2, 2] = -unit[1], unit[0], 0.0
    np.dot(k, k, k2)
    for i in range(3):
        for j in range(3):
            rotation[i, j] = (1.0 if i == j else 0.0) + s * k[i, j] + (1.0 - c) * k2[i, j]
    for m in range(3):
        d_angle = vector[m] / angle
        for i in range(3):
            d_unit[i] = ((1.0 if i == m else 0.0) - unit[i] * unit[m]) / angle
        dk[0, 0], dk[0, 1], dk[0, 2] = 0.0, -d_unit[2], d_unit[1]
        dk[1, 0], dk[1, 1], dk[1, 2] = d_unit[2], 0.0, -d_unit[0]
        dk[2, 0], dk[2, 1], dk[2, 2] = -d_unit[1], d_unit[0], 0.0
        np.dot(dk, k, left)
        np.dot(k, dk, right)
        for i in range(3):
            for j in range(3):
                d_square = left[i, j] + right[i, j]
                derivatives[m, i, j] = c * d_angle * k[i, j] + s * dk[i, j] + s * d_angle * k2[i, j] + (1.0 - c) * d_square


@njit(cache=True, nogil=True)
def _pose_loss_and_gradient(
    local: np.ndarray,  # (N, 3) the pose's heavy atoms, centred, before any parameter
    rotation0: np.ndarray,  # (3, 3)
    position0: np.ndarray,  # (3,)
    translation: np.ndarray,  # (3,)
    rotation: np.ndarray,  # (3,) rotation vector
    torsion: np.ndarray,  # (t,) radians
    use_torsions: bool,
    grids: np.ndarray,  # (3, nx, ny, nz): density channel, distance to protein C/S, to protein N/O
    origin: np.ndarray,
    voxel: np.ndarray,
    last: np.ndarray,  # last voxel index per axis
    clash: np.ndarray,  # (2, N) closest allowed distances to protein C/S and N/O
    pair_first: np.ndarray,
    pair_second: np.ndarray,
    pair_limits: np.ndarray,
    bond_first: np.ndarray,  # (t,) each bond's root-side atom
    bond_second: np.ndarray,  # (t,) each bond's moving-side atom (its turning point)
    order: np.ndarray,  # (t,) bonds in level order
    parent: np.ndarray,  # (t,) position of each level-ordered bond's parent in that order, −1 for none
    fragment: np.ndarray,  # (N,) 0: the root, q + 1: the q-th bond in level order
    clash_weight: float,
    internal_weight: float,
    gradient_translation: np.ndarray,
    gradient_rotation: np.ndarray,
    gradient_torsion: np.ndarray,
    work: tuple,  # from _workspace: scratch arrays, reused from pose to pose
) -> float:
    """The pose's loss (as :func:`ligfit.dock.search.fit_loss`) and, into the ``gradient_*`` arrays, its gradient."""
    composed, shifts, axes, turn, turned, placed, gradient, moments, forces, rigid, d_rigid, whole, sampled, by_whole, rodrigues = work
    atoms = local.shape[0]
    bonds = len(order) if use_torsions else 0
    # Posing by the torsion tree: each level-ordered bond's transform composed with its parent's (fragment q + 1).
    for q in range(bonds):
        bond = order[q]
        b, a = bond_second[bond], bond_first[bond]
        ox, oy, oz = local[b, 0], local[b, 1], local[b, 2]
        ux, uy, uz = ox - local[a, 0], oy - local[a, 1], oz - local[a, 2]
        norm = math.sqrt(ux * ux + uy * uy + uz * uz + 1e-12)
        ux, uy, uz = ux / norm, uy / norm, uz / norm
        axes[q, 0], axes[q, 1], axes[q, 2] = ux, uy, uz
        _axis_rotation(ux, uy, uz, torsion[bond], turn)
        s0 = ox - (turn[0, 0] * ox + turn[0, 1] * oy + turn[0, 2] * oz)
        s1 = oy - (turn[1, 0] * ox + turn[1, 1] * oy + turn[1, 2] * oz)
        s2 = oz - (turn[2, 0] * ox + turn[2, 1] * oy + turn[2, 2] * oz)
        f, up = q + 1, parent[q] + 1 if parent[q] >= 0 else 0  # fragment 0 holds the identity
        for i in range(3):
            for j in range(3):
                composed[f, i, j] = composed[up, i, 0] * turn[0, j] + composed[up, i, 1] * turn[1, j] + composed[up, i, 2] * turn[2, j]
            shifts[f, i] = composed[up, i, 0] * s0 + composed[up, i, 1] * s1 + composed[up, i, 2] * s2 + shifts[up, i]
    for a in range(atoms):
        f = fragment[a] if bonds else 0
        for i in range(3):
            turned[a, i] = (
                composed[f, i, 0] * local[a, 0] + composed[f, i, 1] * local[a, 1] + composed[f, i, 2] * local[a, 2] + shifts[f, i]
            )
    # The rigid body.
    _rodrigues_with_derivatives(rotation, rigid, d_rigid, rodrigues)
    for i in range(3):
        for j in range(3):
            whole[i, j] = rigid[i, 0] * rotation0[0, j] + rigid[i, 1] * rotation0[1, j] + rigid[i, 2] * rotation0[2, j]
    for a in range(atoms):
        for i in range(3):
            placed[a, i] = (
                whole[i, 0] * turned[a, 0] + whole[i, 1] * turned[a, 1] + whole[i, 2] * turned[a, 2] + position0[i] + translation[i]
            )
    # The score and its gradient at each atom.
    loss = 0.0
    nx, ny, nz = grids.shape[1], grids.shape[2], grids.shape[3]
    for a in range(atoms):
        fx, fy, fz = (placed[a, 0] - origin[0]) / voxel[0], (placed[a, 1] - origin[1]) / voxel[1], (placed[a, 2] - origin[2]) / voxel[2]
        outside = fx < 0.0 or fx > last[0] or fy < 0.0 or fy > last[1] or fz < 0.0 or fz > last[2]
        # Border padding: a coordinate past the grid reads the edge and passes no gradient.
        kx = 1.0 if 0.0 <= fx <= last[0] else 0.0
        ky = 1.0 if 0.0 <= fy <= last[1] else 0.0
        kz = 1.0 if 0.0 <= fz <= last[2] else 0.0
        fx, fy, fz = min(max(fx, 0.0), last[0]), min(max(fy, 0.0), last[1]), min(max(fz, 0.0), last[2])
        x0, y0, z0 = int(math.floor(fx)), int(math.floor(fy)), int(math.floor(fz))
        tx, ty, tz = fx - x0, fy - y0, fz - z0
        sampled[:] = 0.0  # per channel: the value and its slope along x, y, z (per voxel)
        for dx in range(2):
            xi = x0 + dx
            if xi >= nx:
                continue
            wx, sx = (tx, 1.0) if dx else (1.0 - tx, -1.0)
            for dy in range(2):
                yi = y0 + dy
                if yi >= ny:
                    continue
                wy, sy = (ty, 1.0) if dy else (1.0 - ty, -1.0)
                for dz in range(2):
                    zi = z0 + dz
                    if zi >= nz:
                        continue
                    wz, sz = (tz, 1.0) if dz else (1.0 - tz, -1.0)
                    w, ax_, ay_, az_ = wx * wy * wz, sx * wy * wz, wx * sy * wz, wx * wy * sz
                    for channel in range(3):
                        c = grids[channel, xi, yi, zi]
                        sampled[channel, 0] += w * c
                        sampled[channel, 1] += ax_ * c
                        sampled[channel, 2] += ay_ * c
                        sampled[channel, 3] += az_ * c
        gx = gy = gz = 0.0
        if not outside:
            loss -= sampled[0, 0]
            gx, gy, gz = -sampled[0, 1], -sampled[0, 2], -sampled[0, 3]
        for channel in range(1, 3):  # distance to protein C/S, then N/O
            over = clash[channel - 1, a] - sampled[channel, 0]
            if over > 0.0:
                loss += clash_weight * over * over
                factor = -clash_weight * 2.0 * over
                gx += factor * sampled[channel, 1] * kx
                gy += factor * sampled[channel, 2] * ky
                gz += factor * sampled[channel, 3] * kz
        gradient[a, 0], gradient[a, 1], gradient[a, 2] = gx / voxel[0], gy / voxel[1], gz / voxel[2]
    for p in range(len(pair_first)):
        i, j = pair_first[p], pair_second[p]
        dx, dy, dz = placed[i, 0] - placed[j, 0], placed[i, 1] - placed[j, 1], placed[i, 2] - placed[j, 2]
        separation = math.sqrt(dx * dx + dy * dy + dz * dz + 1e-9)
        over = pair_limits[p] - separation
        if over > 0.0:
            loss += internal_weight * over * over
            factor = -internal_weight * 2.0 * over / separation
            gradient[i, 0] += factor * dx
            gradient[i, 1] += factor * dy
            gradient[i, 2] += factor * dz
            gradient[j, 0] -= factor * dx
            gradient[j, 1] -= factor * dy
            gradient[j, 2] -= factor * dz
    # Back through the rigid body: translation, rotation vector, and the gradient in the turned frame.
    by_whole[:] = 0.0
    for i in range(3):
        gradient_translation[i] = 0.0
    for a in range(atoms):
        for i in range(3):
            gradient_translation[i] += gradient[a, i]
            for j in range(3):
                by_whole[i, j] += gradient[a, i] * turned[a, j]
    for m in range(3):
        total = 0.0
        for i in range(3):
            for j in range(3):
                by_rigid = by_whole[i, 0] * rotation0[j, 0] + by_whole[i, 1] * rotation0[j, 1] + by_whole[i, 2] * rotation0[j, 2]
                total += by_rigid * d_rigid[m, i, j]
        gradient_rotation[m] = total
    for c in range(len(gradient_torsion)):
        gradient_torsion[c] = 0.0
    if bonds:
        # Per fragment Σ x′ × h and Σ h (h: the gradient in the turned frame), gathered up the tree, then per bond
        # ∂L/∂φ = u′ · (Σ x′ × h − o′ × Σ h) over the atoms the bond moves.
        for f in range(bonds + 1):
            for i in range(3):
                moments[f, i] = 0.0
                forces[f, i] = 0.0
        for a in range(atoms):
            hx = whole[0, 0] * gradient[a, 0] + whole[1, 0] * gradient[a, 1] + whole[2, 0] * gradient[a, 2]
            hy = whole[0, 1] * gradient[a, 0] + whole[1, 1] * gradient[a, 1] + whole[2, 1] * gradient[a, 2]
            hz = whole[0, 2] * gradient[a, 0] + whole[1, 2] * gradient[a, 1] + whole[2, 2] * gradient[a, 2]
            x, y, z = turned[a, 0], turned[a, 1], turned[a, 2]
            f = fragment[a]
            moments[f, 0] += y * hz - z * hy
            moments[f, 1] += z * hx - x * hz
            moments[f, 2] += x * hy - y * hx
            forces[f, 0] += hx
            forces[f, 1] += hy
            forces[f, 2] += hz
        for q in range(bonds - 1, -1, -1):
            if parent[q] >= 0:
                for i in range(3):
                    moments[parent[q] + 1, i] += moments[q + 1, i]
                    forces[parent[q] + 1, i] += forces[q + 1, i]
        for q in range(bonds):
            bond = order[q]
            up = parent[q] + 1 if parent[q] >= 0 else 0
            b = bond_second[bond]
            u0 = composed[up, 0, 0] * axes[q, 0] + composed[up, 0, 1] * axes[q, 1] + composed[up, 0, 2] * axes[q, 2]
            u1 = composed[up, 1, 0] * axes[q, 0] + composed[up, 1, 1] * axes[q, 1] + composed[up, 1, 2] * axes[q, 2]
            u2 = composed[up, 2, 0] * axes[q, 0] + composed[up, 2, 1] * axes[q, 1] + composed[up, 2, 2] * axes[q, 2]
            o0, o1, o2 = turned[b, 0], turned[b, 1], turned[b, 2]  # the turning point lies on its own axis
            f0, f1, f2 = forces[q + 1, 0], forces[q + 1, 1], forces[q + 1, 2]
            gradient_torsion[bond] = (
                u0 * (moments[q + 1, 0] - (o1 * f2 - o2 * f1))
                + u1 * (moments[q + 1, 1] - (o2 * f0 - o0 * f2))
                + u2 * (moments[q + 1, 2] - (o0 * f1 - o1 * f0))
            )
    return loss


@njit(cache=True, nogil=True)
def _workspace(atoms: int, bonds: int) -> tuple:
    """Scratch arrays for :func:`_pose_loss_and_gradient` and its :func:`_rodrigues_with_derivatives`, made once per lane
    (fragment 0's transform: the identity, never written)."""
    composed = np.zeros((bonds + 1, 3, 3))
    for i in range(3):
        composed[0, i, i] = 1.0
    return (
        composed, np.zeros((bonds + 1, 3)), np.zeros((max(bonds, 1), 3)), np.empty((3, 3)), np.empty((atoms, 3)),
        np.empty((atoms, 3)), np.empty((atoms, 3)), np.zeros((bonds + 1, 3)), np.zeros((bonds + 1, 3)), np.empty((3, 3)),
        np.empty((3, 3, 3)), np.empty((3, 3)), np.empty((3, 4)), np.empty((3, 3)),
        (np.empty(3), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty(3), np.empty((3, 3)), np.empty((3, 3))),
    )  # fmt: skip


@njit(cache=True, nogil=True)
def adam_steps(
    first_pose: int,
    stop_pose: int,
    local: np.ndarray,
    rotation0: np.ndarray,
    position0: np.ndarray,
    translation: np.ndarray,
    rotation: np.ndarray,
    torsion: np.ndarray,
    moments: tuple,  # (mean, square) of translation, rotation and torsion, as ``translation`` etc.
    use_torsions: bool,
    grids: np.ndarray,
    origin: np.ndarray,
    voxel: np.ndarray,
    last: np.ndarray,
    clash: np.ndarray,
    pair_first: np.ndarray,
    pair_second: np.ndarray,
    pair_limits: np.ndarray,
    bond_first: np.ndarray,
    bond_second: np.ndarray,
    order: np.ndarray,
    parent: np.ndarray,
    fragment: np.ndarray,
    clash_weight: float,
    internal_weight: float,
    rates: np.ndarray,  # Adam's learning rate of translation, rotation, torsion
    step_factors: np.ndarray,  # per step: the cosine schedule over Adam's first-moment correction
    step_roots: np.ndarray,  # per step: √(second-moment correction)
    beta1: float,
    beta2: float,
    epsilon: float,
) -> None:
    """Every step of ``step_factors`` for poses ``first_pose`` … ``stop_pose`` − 1, parameters and moments updated in place."""
    mean_t, square_t, mean_r, square_r, mean_q, square_q = moments
    gradient_t, gradient_r = np.empty(3), np.empty(3)
    gradient_q = np.empty(torsion.shape[1])
    work = _workspace(local.shape[1], len(order))
    for pose in range(first_pose, stop_pose):
        for step in range(len(step_factors)):
            _pose_loss_and_gradient(
                local[pose], rotation0[pose], position0[pose], translation[pose], rotation[pose], torsion[pose], use_torsions,
                grids, origin, voxel, last, clash, pair_first, pair_second, pair_limits, bond_first, bond_second, order, parent,
                fragment, clash_weight, internal_weight, gradient_t, gradient_r, gradient_q, work,
            )  # fmt: skip
            factor, root = step_factors[step], step_roots[step]
            _adam_update(translation[pose], mean_t[pose], square_t[pose], gradient_t, rates[0] * factor, root, beta1, beta2, epsilon)
            _adam_update(rotation[pose], mean_r[pose], square_r[pose], gradient_r, rates[1] * factor, root, beta1, beta2, epsilon)
            _adam_update(torsion[pose], mean_q[pose], square_q[pose], gradient_q, rates[2] * factor, root, beta1, beta2, epsilon)


@njit(cache=True, nogil=True, inline="always")
def _adam_update(
    parameter: np.ndarray, mean: np.ndarray, square: np.ndarray, gradient: np.ndarray, rate: float, root: float, beta1: float, beta2: float,
    epsilon: float,
) -> None:  # fmt: skip
    """One Adam update in place (torch.optim.Adam's arithmetic; ``rate`` already scaled by the schedule and first-moment correction)."""
    for c in range(len(parameter)):
        mean[c] = beta1 * mean[c] + (1.0 - beta1) * gradient[c]
        square[c] = beta2 * square[c] + (1.0 - beta2) * gradient[c] * gradient[c]
        parameter[c] -= rate * mean[c] / (math.sqrt(square[c]) / root + epsilon)


@njit(cache=True, nogil=True)
def losses_and_gradients(
    local, rotation0, position0, translation, rotation, torsion, use_torsions, grids, origin, voxel, last, clash,
    pair_first, pair_second, pair_limits, bond_first, bond_second, order, parent, fragment, clash_weight, internal_weight,
):  # fmt: skip
    """Every pose's loss and gradient (translation, rotation, torsion), for tests against the torch form."""
    poses = local.shape[0]
    loss = np.empty(poses)
    gradient_t, gradient_r, gradient_q = np.empty((poses, 3)), np.empty((poses, 3)), np.empty(torsion.shape)
    work = _workspace(local.shape[1], len(order))
    for pose in range(poses):
        loss[pose] = _pose_loss_and_gradient(
            local[pose], rotation0[pose], position0[pose], translation[pose], rotation[pose], torsion[pose], use_torsions,
            grids, origin, voxel, last, clash, pair_first, pair_second, pair_limits, bond_first, bond_second, order, parent,
            fragment, clash_weight, internal_weight, gradient_t[pose], gradient_r[pose], gradient_q[pose], work,
        )  # fmt: skip
    return loss, gradient_t, gradient_r, gradient_q
