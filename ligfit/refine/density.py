"""The map as an OpenMM force: each heavy atom is pulled up the density in proportion to its scattering power.

The map around the pocket becomes a tricubic ``Continuous3DFunction`` in a
``CustomCompoundBondForce`` (a ``CustomExternalForce`` cannot hold a tabulated function),
U = −k · Σ w_i ρ(r_i), with ρ in σ of the box and w_i the atom's peak density at the map's
resolution relative to carbon. The function is exactly 0 beyond its grid, so the box is
tapered to 0 over its outer 2 Å and wherever the map ends: no cliff at any edge.

k is chosen as phenix.real_space_refine chooses its weight: the largest at which the map bends
the ligand's bonds and angles away from its force field's minimum by no more than set targets
(:func:`geometry_map_weight`), times ``weight_scale``. Balancing the force magnitudes instead
(Brünger, Karplus & Petsko 1989) came out ~30× too strong here: thermal force-field forces are
dominated by stiff bond stretching, and a map that strong squeezed rings by 0.2 Å toward the
density's peaks (bond RMSD 0.15 Å, angle RMSD 7° on 5SB2 at 3 Å).
"""

from __future__ import annotations

import numpy as np
import openmm as mm
from scipy import ndimage

from ligfit.maps import DensityMap, box
from ligfit.refine.system import DENSITY_GROUP, NM

TAPER_WIDTH = 2.0  # Å
BOX_MARGIN = 5.0  # Å beyond the atoms the map term covers
MAX_NODES = 120_000  # tricubic coefficients cost 64 doubles per node
#: Covalent geometry the map may bend the ligand by, against its own force field's minimum (phenix's
#: real-space targets are 0.01 Å and 1.0°); a stronger map compresses rings toward the density's peaks.
TARGET_BOND_RMSD = 0.01  # Å
TARGET_ANGLE_RMSD = 1.0  # degrees
PROBE_WEIGHT = 10.0  # kJ/mol per σ: first guess of the weight search
WEIGHT_ITERATIONS = 2
MIN_WEIGHT, MAX_WEIGHT = 0.5, 500.0  # kJ/mol per σ: a flat map or one with no gradient at the ligand


def potential_grid(density: DensityMap, points: np.ndarray, resolution: float) -> DensityMap:
    """The map around ``points`` (Å) on a grid fit for a tabulated function: σ of the box, tapered to 0 at its edges and outside the map."""
    lower = points.min(axis=0) - BOX_MARGIN
    upper = points.max(axis=0) + BOX_MARGIN
    volume = float(np.prod(upper - lower))
    spacing = max(float(density.voxel_size.min()), resolution / 4, (volume / MAX_NODES) ** (1 / 3))
    shape = np.ceil((upper - lower) / spacing).astype(int) + 1
    axes = [lower[a] + np.arange(shape[a]) * spacing for a in range(3)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    near = box(density, (lower + upper) / 2, upper - lower + 4 * density.voxel_size.max())
    values = near.interpolate(nodes, order=3).reshape(shape)
    covered = density.contains(nodes).reshape(shape)
    covered[[0, -1], :, :] = covered[:, [0, -1], :] = covered[:, :, [0, -1]] = False
    if covered.sum() < 8:
        return DensityMap(np.zeros(shape, dtype=np.float32), spacing, lower)
    sample = values[covered]
    values = (values - sample.mean()) / max(float(sample.std()), 1e-6)
    depth = ndimage.distance_transform_edt(covered) * spacing
    taper = 0.5 - 0.5 * np.cos(np.pi * np.clip(depth / TAPER_WIDTH, 0.0, 1.0))
    return DensityMap((values * taper).astype(np.float32), spacing, lower)


def density_force(grid: DensityMap, atoms: np.ndarray, weights: np.ndarray) -> mm.CustomCompoundBondForce:
    """U = −map_weight · w · ρ(r) for each atom (global parameter ``map_weight`` in kJ/mol per σ)."""
    force = mm.CustomCompoundBondForce(1, "-map_weight*w*rho(x1,y1,z1)")
    force.addGlobalParameter("map_weight", 0.0)
    force.addPerBondParameter("w")
    nx, ny, nz = grid.shape
    lower, upper = grid.origin * NM, grid.upper * NM
    function = mm.Continuous3DFunction(
        nx, ny, nz, grid.values.ravel(order="F").astype(float).tolist(), lower[0], upper[0], lower[1], upper[1], lower[2], upper[2], False
    )
    force.addTabulatedFunction("rho", function)
    for atom, weight in zip(atoms, weights):
        if weight > 0:
            force.addBond([int(atom)], [float(weight)])
    force.setForceGroup(DENSITY_GROUP)
    return force


def geometry_map_weight(
    ligand_system: mm.System,
    grid: DensityMap,
    coordinates: np.ndarray,
    weights: np.ndarray,
    bonds: np.ndarray,
    angles: np.ndarray,
) -> float:
    """Map weight (kJ/mol per σ) at which the map bends the ligand's covalent geometry by a set amount.

    As phenix.real_space_refine chooses its weight (Afonine et al. 2018, Acta Cryst. D74:531):
    the largest weight whose refined geometry stays within target deviations. The ligand alone
    (``ligand_system``, its own force field) is minimised at ``coordinates`` (Å, ligand order)
    without the map, then with the map at a probe weight; the deviations of its bond lengths
    (``bonds``, pairs of atom indices) and angles (``angles``, triples) grow in proportion to
    the weight, so the probe is rescaled to ``TARGET_BOND_RMSD`` Å or ``TARGET_ANGLE_RMSD``°,
    whichever is reached first, and the estimate is refined once more from there.
    """
    system = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(ligand_system))
    system.addForce(density_force(grid, np.arange(len(weights)), weights))
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setParameter("map_weight", 0.0)
    context.setPositions(np.asarray(coordinates) * NM)
    mm.LocalEnergyMinimizer.minimize(context, 1.0, 2000)
    reference = context.getState(getPositions=True).getPositions(asNumpy=True)._value / NM
    weight = PROBE_WEIGHT
    for _ in range(WEIGHT_ITERATIONS):
        context.setParameter("map_weight", weight)
        context.setPositions(reference * NM)
        mm.LocalEnergyMinimizer.minimize(context, 1.0, 2000)
        bent = context.getState(getPositions=True).getPositions(asNumpy=True)._value / NM
        bond_rmsd, angle_rmsd = _geometry_rmsd(bent, reference, bonds, angles)
        ratio = min(TARGET_BOND_RMSD / max(bond_rmsd, 1e-6), TARGET_ANGLE_RMSD / max(angle_rmsd, 1e-6))
        weight *= float(np.clip(ratio, 0.1, 10.0))
    return float(np.clip(weight, MIN_WEIGHT, MAX_WEIGHT))


def _geometry_rmsd(xyz: np.ndarray, reference: np.ndarray, bonds: np.ndarray, angles: np.ndarray) -> tuple[float, float]:
    """RMS differences of bond lengths (Å) and bond angles (°) between two conformations."""

    def lengths(points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points[bonds[:, 0]] - points[bonds[:, 1]], axis=1)

    def bond_angles(points: np.ndarray) -> np.ndarray:
        first = points[angles[:, 0]] - points[angles[:, 1]]
        second = points[angles[:, 2]] - points[angles[:, 1]]
        cosine = (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
        return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))

    bond_rmsd = float(np.sqrt(np.mean((lengths(xyz) - lengths(reference)) ** 2))) if len(bonds) else 0.0
    angle_rmsd = float(np.sqrt(np.mean((bond_angles(xyz) - bond_angles(reference)) ** 2))) if len(angles) else 0.0
    return bond_rmsd, angle_rmsd
