"""Realistic simulated maps: what a real map holds besides the ligand, with an incomplete model.

Each case starts from a PoseBusters pocket and its deposited ligand (``../shared/data``) and
simulates a map that holds, besides the protein that the model describes:

- an unmodelled loop: four consecutive residues next to the ligand, flanked by modelled ones, in the map but not the model;
- three truncated side chains (atoms beyond Cβ in the map only), as real models leave them;
- 15 ordered waters and one sodium ion at hydrogen-bonding distance from protein N/O;
- a detergent molecule (SDS, 17 heavy atoms) lying on the protein surface away from the ligand;
- the ligand at occupancy 0.5–1.0 with B-factors 10–30 Å² above its surroundings;
- a local-resolution gradient (the nominal resolution at one side of the box, 0.8 Å worse at the
  other), B-factor sharpening (−30 Å², cut at the nominal resolution) and coloured noise.

ligfit is given the map, the incomplete model (no loop, no truncated side chains, no waters, no
ions, no detergent) and the SMILES. The decoy of a case is the same map without the ligand.
"""

from __future__ import annotations

import gemmi
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from benchmarks.cases import BENCHMARK_NOISE, Case, _set_occupancy, complex_entries
from ligfit import io, maps
from ligfit.maps import DensityMap

LOOP_LENGTH = 4
TRUNCATED_SIDE_CHAINS = 3
WATERS = 15
DETERGENT_SMILES = "CCCCCCCCCCCCOS(=O)(=O)[O-]"  # SDS
RESOLUTION_GRADIENT = 0.8  # Å worse at the far side of the box
SHARPENING_B = -30.0  # Å²


def realistic_case(
    root, entry: str, resolution: float, with_ligand: bool = True, seed: int = 0, with_sequence: bool = False
) -> tuple[Case, dict]:
    """The case (map, incomplete model, SMILES, reference) and a record of what was left unmodelled.

    ``with_sequence``: the model carries its chains' sequences (the pocket's residues in order, the
    unmodelled loop's too), as a deposited mmCIF's entity_poly_seq does; without it, none (a bare PDB).
    """
    rng = np.random.default_rng([seed, int(resolution * 10), sum(map(ord, entry))])
    folder = root / "complexes" / entry
    pocket = io.read_structure(folder / f"{entry}_pocket.pdb")
    pocket.remove_ligands_and_waters()
    pocket.setup_entities()
    reference = Chem.MolFromMolFile(str(folder / f"{entry}_ligand.sdf"))
    smiles = next(row["lig_smiles"] for row in complex_entries(root) if row["entry"] == entry)
    ligand_xyz = reference.GetConformer().GetPositions()

    truth = pocket.clone()
    model = pocket.clone()
    loop = _unmodelled_loop(model, ligand_xyz, rng)
    if with_sequence:
        _give_sequences(model, truth)
    truncated = _truncate_side_chains(model, ligand_xyz, rng, exclude=set(loop))
    protein_xyz = io.heavy_atoms(truth, exclude_residues=frozenset()).coordinates
    b_protein = np.array([a.b_iso for ch in truth[0] for r in ch for a in r if not a.is_hydrogen()])
    near = np.linalg.norm(protein_xyz[:, None] - ligand_xyz[None], axis=-1).min(axis=1) < 5.0
    b_site = float(b_protein[near].mean()) if near.any() else float(np.median(b_protein))

    waters = _water_sites(truth, ligand_xyz, WATERS + 1, rng)
    _add_atoms(truth, "HOH", ["O"] * (len(waters) - 1), waters[:-1], b=float(np.median(b_protein)) + 10.0)
    _add_atoms(truth, "NA", ["Na"], waters[-1:], b=float(np.median(b_protein)) + 10.0)
    detergent = _detergent(truth, ligand_xyz, rng)
    if detergent is not None:
        _add_atoms(
            truth,
            "SDS",
            [a.GetSymbol() for a in detergent.GetAtoms()],
            detergent.GetConformer().GetPositions(),
            b=float(np.median(b_protein)) + 20.0,
            occupancy=0.8,
        )
    occupancy = float(rng.uniform(0.5, 1.0))
    if with_ligand:
        truth = io.add_ligand(
            truth,
            [a.GetSymbol() for a in reference.GetAtoms()],
            [f"X{i}" for i in range(reference.GetNumAtoms())],
            ligand_xyz,
            b_factor=b_site + float(rng.uniform(10.0, 30.0)),
        )
        _set_occupancy(truth, "LIG", occupancy)

    all_xyz = io.heavy_atoms(truth, exclude_residues=frozenset()).coordinates
    grid = maps.grid_around(all_xyz, min(1.0, resolution / 3), 6.0)
    density = _realistic_map(truth, grid, resolution, rng)
    name = f"{entry}@{resolution:g}" + ("" if with_ligand else " decoy")
    record = {
        "loop": ",".join(loop),
        "truncated": ",".join(truncated),
        "waters": len(waters) - 1,
        "detergent": detergent is not None,
        "occupancy": round(occupancy, 2) if with_ligand else 0.0,
        "truth": truth,  # the structure the map was simulated from (for diagnosing what a placement sits in)
    }
    return Case(name, density, model, smiles, reference, resolution), record


def _give_sequences(model: gemmi.Structure, truth: gemmi.Structure) -> None:
    """One polymer entity per chain of ``model`` whose sequence is ``truth``'s residues of that chain, label_seq numbered along it."""
    entities = gemmi.EntityList()
    for chain in truth[0]:
        residues = [r for r in chain if _is_amino_acid(r)]
        index = {(r.seqid.num, r.seqid.icode): k + 1 for k, r in enumerate(residues)}
        entity = gemmi.Entity(f"{chain.name}_polymer")
        entity.entity_type = gemmi.EntityType.Polymer
        entity.polymer_type = gemmi.PolymerType.PeptideL
        entity.full_sequence = [r.name for r in residues]
        subchains = set()
        for residue in model[0][chain.name]:
            if (residue.seqid.num, residue.seqid.icode) in index and _is_amino_acid(residue):
                residue.label_seq = index[(residue.seqid.num, residue.seqid.icode)]
                subchains.add(residue.subchain)
        entity.subchains = sorted(subchains)
        entities.append(entity)
    model.entities = entities


def _realistic_map(truth: gemmi.Structure, grid: DensityMap, resolution: float, rng: np.random.Generator) -> DensityMap:
    """Local-resolution gradient, sharpening and coloured noise."""
    sharp = maps.simulate(truth, resolution, like=grid, use_b_factors=True)
    blurred = maps.simulate(truth, resolution + RESOLUTION_GRADIENT, like=grid, use_b_factors=True)
    direction = Rotation.random(random_state=int(rng.integers(2**31))).apply([1.0, 0.0, 0.0])
    projection = grid.grid_points() @ direction
    weight = (projection - projection.min()) / max(float(np.ptp(projection)), 1e-9)
    values = (1 - weight) * sharp.values + weight * blurred.values
    values = _sharpen(values, grid.voxel_size, resolution, SHARPENING_B)
    mixed = grid.with_values(values.astype(np.float32))
    atoms = io.heavy_atoms(truth, exclude_residues=frozenset()).coordinates
    std = BENCHMARK_NOISE * float(mixed.interpolate(atoms).mean())
    return maps.add_noise(mixed, resolution, std, int(rng.integers(2**31)))


def _sharpen(values: np.ndarray, voxel_size: np.ndarray, resolution: float, b_factor: float) -> np.ndarray:
    """exp(−B s²/4) in Fourier space (B < 0 sharpens), cut at 1/resolution."""
    frequencies = np.meshgrid(*[np.fft.fftfreq(n, d) for n, d in zip(values.shape, voxel_size)], indexing="ij", sparse=True)
    s2 = sum(f**2 for f in frequencies)
    factor = np.exp(-b_factor * s2 / 4.0) * (s2 <= 1.0 / resolution**2)
    return np.real(np.fft.ifftn(np.fft.fftn(values) * factor))


def _residues(structure: gemmi.Structure) -> list[tuple[gemmi.Chain, gemmi.Residue]]:
    return [(chain, residue) for chain in structure[0] for residue in chain if _is_amino_acid(residue)]


def _residue_distance(residue: gemmi.Residue, points: np.ndarray) -> float:
    xyz = np.array([atom.pos.tolist() for atom in residue])
    return float(np.linalg.norm(xyz[:, None] - points[None], axis=-1).min())


def _unmodelled_loop(model: gemmi.Structure, ligand_xyz: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Remove ``LOOP_LENGTH`` consecutive residues, one of them within 6 Å of the ligand, from ``model``.

    The loop is a loop: the residues on both sides of it stay in the model. A stretch at an end of the
    pocket's crop would leave a gap whose numbering runs on into residues the crop left out of map and
    model alike (8AUH: B175–178 removed beside a crop that ends at 160, so 18 residues look missing where
    4 are; a whole model has no such gap). Where the draw falls on such a stretch, the next stretch in
    order that has both neighbours is taken, so that every other case keeps the loop it had.
    """
    chains = {chain.name: [r for r in chain if _is_amino_acid(r)] for chain in model[0]}
    starts, flanked = [], []
    for name, residues in chains.items():
        present = {r.seqid.num for r in residues}
        for index in range(len(residues) - LOOP_LENGTH + 1):
            stretch = residues[index : index + LOOP_LENGTH]
            numbers = [r.seqid.num for r in stretch]
            if numbers[-1] - numbers[0] != LOOP_LENGTH - 1:
                continue
            if min(_residue_distance(r, ligand_xyz) for r in stretch) < 6.0:
                starts.append((name, numbers[0]))
                flanked.append(numbers[0] - 1 in present and numbers[-1] + 1 in present)
    if not starts:
        return []
    drawn = int(rng.integers(len(starts)))
    order = [(drawn + step) % len(starts) for step in range(len(starts))]
    name, first = starts[next((index for index in order if flanked[index]), drawn)]
    removed = []
    for chain in model[0]:
        if chain.name != name:
            continue
        for index in reversed(range(len(chain))):
            if first <= chain[index].seqid.num < first + LOOP_LENGTH:
                removed.append(f"{name}{chain[index].seqid.num}")
                del chain[index]
    return sorted(removed)


def _truncate_side_chains(model: gemmi.Structure, ligand_xyz: np.ndarray, rng: np.random.Generator, exclude: set[str]) -> list[str]:
    """Cut the side chains of ``TRUNCATED_SIDE_CHAINS`` residues within 10 Å of the ligand back to Cβ."""
    backbone = {"N", "CA", "C", "O", "CB", "OXT"}
    candidates = [
        (chain, residue)
        for chain, residue in _residues(model)
        if f"{chain.name}{residue.seqid.num}" not in exclude
        and sum(atom.name not in backbone for atom in residue) >= 3
        and _residue_distance(residue, ligand_xyz) < 10.0
    ]
    picked = rng.choice(len(candidates), size=min(TRUNCATED_SIDE_CHAINS, len(candidates)), replace=False) if candidates else []
    names = []
    for index in picked:
        chain, residue = candidates[int(index)]
        for atom_index in reversed(range(len(residue))):
            if residue[atom_index].name not in backbone:
                del residue[atom_index]
        names.append(f"{chain.name}{residue.seqid.num}")
    return sorted(names)


def _water_sites(structure: gemmi.Structure, ligand_xyz: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Points 2.6–3.2 Å from a protein N/O, ≥ 2.7 Å from every other atom and each other, ≥ 3 Å from the ligand."""
    atoms = io.heavy_atoms(structure, exclude_residues=frozenset())
    polar = atoms.coordinates[np.isin(atoms.elements, ["N", "O"])]
    tree, ligand_tree = cKDTree(atoms.coordinates), cKDTree(ligand_xyz)
    directions = rng.normal(size=(len(polar) * 6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    candidates = np.repeat(polar, 6, axis=0) + directions * rng.uniform(2.6, 3.2, size=(len(directions), 1))
    clear = (tree.query(candidates)[0] >= 2.7) & (ligand_tree.query(candidates)[0] >= 3.0)
    candidates = candidates[clear]
    rng.shuffle(candidates)
    chosen: list[np.ndarray] = []
    for point in candidates:
        if all(np.linalg.norm(point - other) >= 2.7 for other in chosen):
            chosen.append(point)
        if len(chosen) == count:
            break
    return np.array(chosen).reshape(-1, 3)


def _detergent(structure: gemmi.Structure, ligand_xyz: np.ndarray, rng: np.random.Generator) -> Chem.Mol | None:
    """An SDS molecule touching the protein surface, ≥ 8 Å from the ligand and clear of every atom."""
    mol = Chem.AddHs(Chem.MolFromSmiles(DETERGENT_SMILES))
    AllChem.EmbedMolecule(mol, randomSeed=int(rng.integers(2**31)))
    AllChem.MMFFOptimizeMolecule(mol)
    mol = Chem.RemoveHs(mol)
    xyz = mol.GetConformer().GetPositions()
    xyz -= xyz.mean(axis=0)
    protein = io.heavy_atoms(structure, exclude_residues=frozenset()).coordinates
    tree, ligand_tree = cKDTree(protein), cKDTree(ligand_xyz)
    centre = protein.mean(axis=0)
    for _ in range(400):
        anchor = protein[int(rng.integers(len(protein)))]
        outward = anchor - centre
        outward /= max(np.linalg.norm(outward), 1e-9)
        placed = Rotation.random(random_state=int(rng.integers(2**31))).apply(xyz) + anchor + outward * rng.uniform(4.0, 6.0)
        distances = tree.query(placed)[0]
        if distances.min() >= 3.3 and np.sum(distances < 4.5) >= 3 and ligand_tree.query(placed)[0].min() >= 8.0:
            conformer = mol.GetConformer()
            for index, point in enumerate(placed):
                conformer.SetAtomPosition(index, point.tolist())
            return mol
    return None


def _add_atoms(structure: gemmi.Structure, name: str, elements: list[str], xyz: np.ndarray, b: float, occupancy: float = 1.0) -> None:
    """One residue per water/ion, one residue for a molecule, in a new chain."""
    if len(xyz) == 0:
        return
    chain = gemmi.Chain(io.unused_chain_name({chain.name for chain in structure[0]}))
    per_atom = name in ("HOH", "NA")
    groups = [[i] for i in range(len(xyz))] if per_atom else [list(range(len(xyz)))]
    for number, group in enumerate(groups, start=1):
        residue = gemmi.Residue()
        residue.name = name
        residue.seqid = gemmi.SeqId(number, " ")
        residue.het_flag = "H"
        for index in group:
            atom = gemmi.Atom()
            atom.name = elements[index].upper() if per_atom else f"{elements[index]}{index + 1}"
            atom.element = gemmi.Element(elements[index])
            atom.pos = gemmi.Position(*xyz[index])
            atom.b_iso = b
            atom.occ = occupancy
            residue.add_atom(atom)
        chain.add_residue(residue)
    structure[0].add_chain(chain)


def _is_amino_acid(residue: gemmi.Residue) -> bool:
    info = gemmi.find_tabulated_residue(residue.name)
    return info is not None and info.is_amino_acid()
