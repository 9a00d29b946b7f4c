"""What several stages measure of a ligand pose: fit to the map, clashes and contacts, strain, symmetric RMSD.

Every function takes plain arrays (Å, map frame) and, for the protein, an :class:`~ligfit.io.AtomTable`
of its heavy atoms (or None where there is no protein).
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial import cKDTree

from ligfit.io import AtomTable
from ligfit.ligand import Ligand, mmff_properties, posed_mol
from ligfit.maps import DensityMap, scattering_weights
from ligfit.measures.torsions import TorsionPreferences

_PERIODIC_TABLE = Chem.GetPeriodicTable()
_BLUR_FACTORS = (1.0, 1.35, 1.8)

#: Ligand N and O: hydrogen-bond donors/acceptors, and the protein atoms they bond to.
POLAR_ELEMENTS = frozenset({"N", "O"})
#: Non-metals and metalloids (RDKit spelling); every other element is a metal that coordinates rather than clashes.
NON_METALS = frozenset(
    {"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Ge", "As", "Se", "Br", "Kr", "Sb", "Te", "I", "Xe", "At", "Rn"}
)
#: Metals (RDKit spelling): ligand metals coordinate protein N/O/S at ~2 Å, which is a bond, not a clash.
METAL_ELEMENTS = frozenset(_PERIODIC_TABLE.GetElementSymbol(z) for z in range(1, 104)) - NON_METALS
#: Atoms that coordinate a metal (at ~2 Å, a bond rather than a clash).
COORDINATING_ELEMENTS = frozenset({"N", "O", "S"})
#: Protein–ligand heavy-atom pairs closer than this (Å) count as close contacts.
CLOSE_CONTACT = 2.2
#: Å: protein heavy atoms this close to a ligand heavy atom count towards its packing (:func:`packing`).
PACKING_DISTANCE = 4.0
#: A torsion more than this far up its ETKDG potential (167 of the 2,178 torsions of the 427 deposited ligands in
#: ``../shared/data`` are) is pulled during relaxation into ± this many degrees of the bottom of its well.
TORSION_WINDOW_ABOVE = 5.0
TORSION_WINDOW_DEGREES = 15.0


def atomic_numbers(elements: list[str]) -> np.ndarray:
    """Each element's atomic number: how X-rays weigh atoms (``ligand_cc``'s ``weights`` where a rule was set with them)."""
    return np.array([_PERIODIC_TABLE.GetAtomicNumber(str(e).capitalize()) for e in elements], dtype=float)


def ligand_cc(
    density: DensityMap,
    heavy_coordinates: np.ndarray,
    elements: list[str],
    resolution: float,
    mask_coordinates: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """Correlation between the ligand's simulated density and ``density`` inside the ligand mask.

    The mask holds the voxels within max(1.5 Å, resolution/2) of a heavy atom; the model density is one Gaussian
    per atom weighted by its electron scattering (:func:`ligfit.maps.scattering_weights`), σ = 0.225·resolution
    (as ChimeraX molmap) times a blur factor fitted from {1, 1.35, 1.8} — ligands usually carry higher B-factors
    than the protein that set the map's nominal resolution.
    ``mask_coordinates``: the atoms whose surroundings make the mask instead (two rival explanations
    of one density judged on the same voxels, ``segment.rival_fit``). ``weights``: each atom's instead of its electron
    scattering (e.g. atomic numbers, as X-rays see atoms; ``benchmarks/scattering_weights.py`` compares the two).
    """
    around = heavy_coordinates if mask_coordinates is None else mask_coordinates
    radius = max(1.5, resolution / 2)
    lower = around.min(axis=0) - radius - density.voxel_size
    upper = around.max(axis=0) + radius + density.voxel_size
    start = np.clip(np.floor(density.to_index(lower)).astype(int), 0, np.array(density.shape) - 1)
    stop = np.clip(np.ceil(density.to_index(upper)).astype(int) + 1, 1, np.array(density.shape))
    region = tuple(slice(a, b) for a, b in zip(start, stop))
    axes = [density.origin[a] + np.arange(start[a], stop[a]) * density.voxel_size[a] for a in range(3)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if mask_coordinates is None:
        distance_sq = ((points[:, None, :] - heavy_coordinates[None]) ** 2).sum(-1)
        mask = distance_sq.min(axis=1) <= radius**2
        distance_sq = distance_sq[mask]
    else:
        mask = cKDTree(mask_coordinates).query(points, distance_upper_bound=radius)[0] <= radius
        distance_sq = ((points[mask][:, None, :] - heavy_coordinates[None]) ** 2).sum(-1)
    if mask.sum() < 3:
        return 0.0
    weights = scattering_weights(elements, resolution) if weights is None else np.asarray(weights, dtype=float)
    observed = density.values[region].reshape(-1)[mask]
    if observed.std() == 0:
        return 0.0
    best = -1.0
    for blur in _BLUR_FACTORS:
        sigma = 0.225 * resolution * blur
        model = (np.exp(-distance_sq / (2 * sigma**2)) * weights).sum(axis=1)
        if model.std() > 0:
            best = max(best, float(np.corrcoef(model, observed)[0, 1]))
    return best


def count_clashes(heavy_coordinates: np.ndarray, elements: list[str], protein: AtomTable | None, scale: float = 0.75) -> int:
    """Protein–ligand heavy-atom pairs closer than ``scale`` × the sum of their van der Waals radii.

    The PoseBusters criterion (0.75 × Bondi radii: C–C 2.55 Å, N–O 2.30 Å); a metal next to an
    N/O/S of the other side (ligand metal to protein, or ligand atom to protein metal) is coordination, not a clash.
    """
    if protein is None or len(protein) == 0:
        return 0
    coordinates, protein_elements = protein.coordinates, protein.elements
    protein_radii = np.array([_vdw_radius(e) for e in protein_elements])
    tree = cKDTree(coordinates)
    count = 0
    for position, element in zip(heavy_coordinates, elements):
        radius = _vdw_radius(element)
        near = np.array(tree.query_ball_point(position, scale * (radius + protein_radii.max())), dtype=int)
        if len(near) == 0:
            continue
        if element in METAL_ELEMENTS:
            near = near[~np.isin(protein_elements[near], ("N", "O", "S"))]
        elif element in COORDINATING_ELEMENTS:
            near = near[~np.isin(protein_elements[near], list(METAL_ELEMENTS))]
        distances = np.linalg.norm(coordinates[near] - position, axis=1)
        count += int(np.sum(distances < scale * (radius + protein_radii[near])))
    return count


def _vdw_radius(element: str) -> float:
    try:
        return _PERIODIC_TABLE.GetRvdw(element.capitalize())
    except RuntimeError:  # unknown element symbol
        return 1.7


def close_contacts(heavy_coordinates: np.ndarray, elements: list[str], protein: AtomTable | None) -> int:
    """Protein–ligand heavy-atom pairs closer than :data:`CLOSE_CONTACT`, metal coordination (a bond) excepted."""
    if protein is None or len(protein) == 0:
        return 0
    protein_metal = np.isin(np.asarray(protein.elements), list(METAL_ELEMENTS))
    count = 0
    for element, neighbours in zip(elements, cKDTree(protein.coordinates).query_ball_point(np.asarray(heavy_coordinates), CLOSE_CONTACT)):
        if element not in METAL_ELEMENTS:
            count += int(np.count_nonzero(~protein_metal[neighbours])) if neighbours else 0
    return count


def packing(heavy_coordinates: np.ndarray, protein: AtomTable | None) -> float:
    """Protein heavy atoms within :data:`PACKING_DISTANCE` of each ligand heavy atom, on average (0 without a protein):
    how closely a pose packs against the pocket."""
    if protein is None or len(protein) == 0 or len(heavy_coordinates) == 0:
        return 0.0
    neighbours = cKDTree(protein.coordinates).query_ball_point(np.asarray(heavy_coordinates), PACKING_DISTANCE, return_length=True)
    return float(np.mean(neighbours))


def polar_contacts(heavy_coordinates: np.ndarray, elements: list[str], protein: AtomTable | None) -> int:
    """Ligand atoms in a hydrogen bond or salt bridge (N/O to protein N/O at 2.5–3.3 Å) or coordinating a protein N/O/S (metal, 1.8–2.6 Å)."""
    if protein is None or len(protein) == 0:
        return 0
    coordinates, protein_elements = protein.coordinates, protein.elements
    tree = cKDTree(coordinates)
    count = 0
    for position, element in zip(heavy_coordinates, elements):
        if element in POLAR_ELEMENTS:
            partners, low, high = ("N", "O"), 2.5, 3.3
        elif element in METAL_ELEMENTS:
            partners, low, high = ("N", "O", "S"), 1.8, 2.6
        else:
            continue
        near = tree.query_ball_point(position, high)
        if any(protein_elements[j] in partners and np.linalg.norm(coordinates[j] - position) >= low for j in near):
            count += 1
    return count


def relax_pose(
    ligand: Ligand, coordinates: np.ndarray, restraint_force: float, torsions: TorsionPreferences | None = None, torsion_force: float = 0.0
) -> tuple[np.ndarray, float | None]:
    """MMFF-minimise with heavy atoms held near the pose; return coordinates and strain (kcal/mol).

    With ``torsions`` and a ``torsion_force`` (kcal/mol/deg²), each torsion far up its crystal-structure potential
    (:data:`TORSION_WINDOW_ABOVE`) is also pulled into the well it sits in (:meth:`TorsionPreferences.windows`).

    Strain is the unrestrained MMFF energy of the relaxed pose above the lowest conformer energy.
    Without MMFF parameters the pose is returned unchanged and strain is None; a one-atom ligand (an ion) is returned
    unchanged with strain 0. The minimisation is RDKit's
    ``OptimizeMoleculeConfs`` on the one conformer: the same minimiser and tolerances as ``ForceField.Minimize``
    (the same coordinates to the bit), but it lets go of the GIL, so poses relaxed in threads use several cores.
    """
    if ligand.force_field != "MMFF94":
        return coordinates, None
    if ligand.mol.GetNumAtoms() == 1:  # an ion: nothing to relax (and RDKit's minimiser fails on one atom)
        return np.array(coordinates, dtype=float), 0.0
    mol = posed_mol(ligand, coordinates)
    properties = mmff_properties(mol)
    restrained = AllChem.MMFFGetMoleculeForceField(mol, properties)
    for index in range(ligand.heavy_atom_count):
        restrained.MMFFAddPositionConstraint(index, 0.0, restraint_force)
    if torsions is not None and torsion_force > 0:
        heavy = np.asarray(coordinates)[: ligand.heavy_atom_count]
        for i, j, k, m, low, high in torsions.windows(heavy, TORSION_WINDOW_ABOVE, TORSION_WINDOW_DEGREES):
            restrained.MMFFAddTorsionConstraint(i, j, k, m, False, low, high, torsion_force)
    AllChem.OptimizeMoleculeConfs(mol, restrained, numThreads=1, maxIters=500)
    relaxed = mol.GetConformer().GetPositions()
    energy = AllChem.MMFFGetMoleculeForceField(mol, properties).CalcEnergy(relaxed.ravel().tolist())
    return relaxed, float(energy - ligand.conformer_energies.min())


def symmetry_matches(query: Chem.Mol, target: Chem.Mol | None = None, max_matches: int = 5000) -> np.ndarray:
    """Isomorphisms from ``query`` onto ``target`` (itself when None): rows p with target atom p[i] ↔ query atom i, (k, n).

    Bond orders and elements must agree (pass element-and-connectivity graphs to match on topology alone);
    empty (0, n) when the graphs differ.
    """
    target = query if target is None else target
    n = query.GetNumAtoms()
    if n != target.GetNumAtoms() or query.GetNumBonds() != target.GetNumBonds():
        return np.zeros((0, n), dtype=int)
    matches = target.GetSubstructMatches(query, uniquify=False, useChirality=False, maxMatches=max_matches)
    return np.array(matches, dtype=int).reshape(-1, n)


def connectivity_mol(elements: tuple[str, ...] | list[str], bonds: np.ndarray) -> Chem.Mol:
    """An RDKit graph of elements and single bonds only: what two copies of a ligand must share to match.

    Bond orders and charges are left out, so atoms equivalent by resonance (a carboxylate's oxygens,
    a nitro group, a guanidinium) count as symmetric, as spyrmsd counts them.
    """
    editable = Chem.RWMol()
    for element in elements:
        atom = Chem.Atom(_PERIODIC_TABLE.GetAtomicNumber(element))
        atom.SetNoImplicit(True)
        editable.AddAtom(atom)
    for i, j in np.asarray(bonds, dtype=int).reshape(-1, 2):
        editable.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    mol = editable.GetMol()
    mol.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(mol)
    return mol


def ligand_symmetry(ligand: Ligand) -> np.ndarray:
    """Heavy-atom permutations (k, n_heavy) that map the ligand's element-and-connectivity graph onto itself (the identity at least)."""
    heavy = ligand.heavy_atom_count
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ligand.mol.GetBonds() if max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) < heavy]
    matches = symmetry_matches(connectivity_mol(list(ligand.elements[:heavy]), np.array(bonds, dtype=int).reshape(-1, 2)))
    return matches if len(matches) else np.arange(heavy)[None]


def symmetric_rmsd(first: np.ndarray, second: np.ndarray, matches: np.ndarray) -> float:
    """Heavy-atom RMSD (Å) between two poses, minimised over the permutations ``matches`` of ``second``, without superposition.

    The first ``matches.shape[1]`` atoms of each pose are the heavy atoms. The same quantity as spyrmsd's
    symmetry-corrected RMSD with ``minimize=False`` (Meli & Biggin 2020); tests check it against spyrmsd.
    """
    heavy = matches.shape[1]
    deviations = second[:heavy][matches] - first[:heavy][None]
    return float(np.sqrt((deviations**2).sum(-1).mean(-1)).min())
