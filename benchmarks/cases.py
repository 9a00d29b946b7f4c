"""Benchmark and test cases built from ../shared/data (never copied into the repository).

- ``simulated_case``: a PoseBusters pocket + its deposited ligand → a map simulated at a
  resolution with B-factor blur, ligand occupancy drawn from 0.6–1.0 and noise low-pass
  filtered like the signal; ligfit gets the pocket alone and the ligand's SMILES.
- ``em_ligand_boxes``: real EMDB density around one ligand (no protein).
- ``xray_d2q``: real 2mFo-DFc density of the D2Q inhibitor in 3NZD, model minus D2Q.
- ``hemoglobin_hemes``: the real 3.2 Å EMD-3488 map, its model 5NI1 minus the four hemes.
"""

from __future__ import annotations

import csv
import os
import subprocess
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TypeVar

import gemmi
import numpy as np
from rdkit import Chem

from ligfit import io, maps
from ligfit.errors import LigfitError
from ligfit.maps import DensityMap

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LIGFIT_SHARED_DATA", REPO.parent / "shared" / "data"))
UNPACKED = Path(os.environ.get("LIGFIT_DATA", REPO / ".ligfit-data"))

#: Noise σ as a fraction of the mean density at atom centres in the simulated benchmark maps.
BENCHMARK_NOISE = 0.2


def data_root() -> Path | None:
    """The unpacked shared data (unpacking it once), or None where ../shared/data is absent."""
    if (UNPACKED / "complexes" / ".unpacked").exists() and (UNPACKED / "em" / ".unpacked").exists():
        return UNPACKED
    if not (SHARED_DATA / "unpack.sh").exists():
        return None
    subprocess.run(["bash", str(SHARED_DATA / "unpack.sh"), str(UNPACKED)], check=True, capture_output=True)
    return UNPACKED


@dataclass(frozen=True)
class Case:
    """One placement problem: what ligfit is given, and the answer it is scored against."""

    name: str
    density: DensityMap
    model: gemmi.Structure | None  # protein without the ligand
    smiles: str
    reference: Chem.Mol | None  # deposited ligand, heavy atoms with coordinates; None: not in the map (a real decoy)
    resolution: float


Options = TypeVar("Options")  # a frozen options dataclass (RefinementOptions, ...)


def with_overrides(options: Options, settings: list[str] | None) -> Options:
    """``options`` (a frozen dataclass) with ``NAME=VALUE`` settings applied, each VALUE read as its field's type.

    What the benchmarks' ``--set`` gives: e.g. ``--set anneal_steps=300 minimise_iterations=100`` to measure a
    protocol against the defaults without editing them.
    """
    types = {field.name: type(getattr(options, field.name)) for field in fields(options)}
    types = {name: float if kind is type(None) else kind for name, kind in types.items()}  # optional numbers
    for setting in settings or []:
        name, _, value = setting.partition("=")
        if name not in types or not value:
            raise SystemExit(f"--set {setting!r}: use NAME=VALUE with NAME one of {', '.join(types)}")
        kind = types[name]
        try:
            parsed = None if value == "None" else (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
            options = replace(options, **{name: parsed})
        except (ValueError, TypeError, LigfitError) as error:  # not of the field's type, or refused by the options' own checks
            raise SystemExit(f"--set {setting!r}: {error}") from None
    return options


def complex_entries(root: Path) -> list[dict]:
    with open(root / "complexes" / "index.csv") as handle:
        return list(csv.DictReader(handle))


def sample_entries(root: Path, count: int | None, seed: int) -> list[str]:
    """``count`` PoseBusters entries drawn at random with ``seed`` (all of them, shuffled, for None)."""
    entries = [row["entry"] for row in complex_entries(root)]
    size = len(entries) if count is None else min(count, len(entries))
    return list(np.random.default_rng(seed).choice(entries, size=size, replace=False))


def with_shifted_copy(structure: gemmi.Structure, shift: float) -> gemmi.Structure:
    """``structure`` plus a copy of every chain moved ``shift`` Å along x (the copies take unused chain names)."""
    pair = structure.clone()
    names = {chain.name for chain in pair[0]}
    for chain in structure[0]:
        copy = chain.clone()
        copy.name = io.unused_chain_name(names)
        names.add(copy.name)
        for residue in copy:
            for atom in residue:
                atom.pos = gemmi.Position(atom.pos.x + shift, atom.pos.y, atom.pos.z)
        pair[0].add_chain(copy)
    pair.setup_entities()
    return pair


def simulated_case(
    root: Path, entry: str, resolution: float, seed: int = 0, with_ligand: bool = True, noise: float = BENCHMARK_NOISE
) -> Case:
    """Pocket (+ deposited ligand) simulated at ``resolution`` Å; see the module docstring."""
    rng = np.random.default_rng([seed, int(resolution * 10), sum(map(ord, entry))])
    folder = root / "complexes" / entry
    pocket = io.read_structure(folder / f"{entry}_pocket.pdb")
    reference = Chem.MolFromMolFile(str(folder / f"{entry}_ligand.sdf"))
    smiles = next(row["lig_smiles"] for row in complex_entries(root) if row["entry"] == entry)
    protein = io.heavy_atoms(pocket)
    ligand_xyz = reference.GetConformer().GetPositions()
    if with_ligand:
        near = np.linalg.norm(protein.coordinates[:, None] - ligand_xyz[None], axis=-1).min(axis=1) < 5.0
        b_factors = _b_factors(pocket)
        complex_structure = io.add_ligand(
            pocket,
            [a.GetSymbol() for a in reference.GetAtoms()],
            [f"X{i}" for i in range(reference.GetNumAtoms())],
            ligand_xyz,
            b_factor=float(b_factors[near].mean()) if near.any() else float(np.median(b_factors)),
        )
        _set_occupancy(complex_structure, "LIG", float(rng.uniform(0.6, 1.0)))
    else:
        complex_structure = pocket
    grid = maps.grid_around(protein.coordinates, min(1.0, resolution / 3), 4.0)
    density = maps.simulate(complex_structure, resolution, like=grid, use_b_factors=True, noise=noise, seed=int(rng.integers(2**31)))
    return Case(f"{entry}@{resolution:g}" + ("" if with_ligand else " decoy"), density, pocket, smiles, reference, resolution)


def _b_factors(structure: gemmi.Structure) -> np.ndarray:
    return np.array([a.b_iso for ch in structure[0] for r in ch if r.name not in ("HOH",) for a in r if not a.is_hydrogen()])


def _set_occupancy(structure: gemmi.Structure, residue_name: str, occupancy: float) -> None:
    for chain in structure[0]:
        for residue in chain:
            if residue.name == residue_name:
                for atom in residue:
                    atom.occ = occupancy


def em_ligand_boxes(root: Path) -> list[Case]:
    """The real EM ligand boxes that have a SMILES in the index (no protein model)."""
    cases = []
    with open(root / "em" / "index.csv") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] != "ligand_box":
                continue
            folder = root / row["dir"]
            density = maps.read_map(folder / row["map"])
            smiles = row["smiles"] or ccd_smiles(row["ligand_ccd"])  # AGS has no SMILES in the index
            reference = _ligand_from_pdb(folder / row["model"], smiles)
            resolution = float(row["resolution_A"].split()[0])
            cases.append(Case(f"{row['pdb']} {row['ligand_ccd']}", density, None, smiles, reference, resolution))
    return cases


def ccd_smiles(code: str) -> str:
    from ligfit.ligand import parse_ligand

    return Chem.MolToSmiles(parse_ligand(f"ccd:{code}"))


def _ligand_from_pdb(path: Path, smiles: str) -> Chem.Mol:
    """Heavy atoms of the (single) ligand in a PDB file with bond orders from the SMILES.

    Bonds come from proximity; where a distorted deposited geometry adds spurious ones (8TXZ
    has a 1.89 Å non-bonded C–N contact), the longest are dropped until the graph matches.
    """
    from rdkit.Chem import AllChem

    template = Chem.MolFromSmiles(smiles)
    lines = [line for line in path.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]
    pdb = Chem.RemoveHs(Chem.MolFromPDBBlock("\n".join(lines), removeHs=False, sanitize=False, proximityBonding=True), sanitize=False)
    positions = pdb.GetConformer().GetPositions()
    editable = Chem.RWMol(pdb)
    while True:
        try:
            return AllChem.AssignBondOrdersFromTemplate(template, editable.GetMol())
        except (ValueError, Chem.rdchem.MolSanitizeException):
            if editable.GetNumBonds() <= template.GetNumBonds():
                raise
            longest = max(editable.GetBonds(), key=lambda b: np.linalg.norm(positions[b.GetBeginAtomIdx()] - positions[b.GetEndAtomIdx()]))
            editable.RemoveBond(longest.GetBeginAtomIdx(), longest.GetEndAtomIdx())


def xray_d2q(root: Path) -> Case:
    """D2Q in 3NZD: real 1.8 Å 2mFo-DFc density, model minus D2Q (NADPH kept)."""
    deposited, structure, density = xray_3nzd(root, ("D2Q",))
    reference = _residue_as_mol(deposited, "D2Q")
    return Case("3NZD D2Q", density, structure, Chem.MolToSmiles(reference), reference, 1.8)


def xray_3nzd(root: Path, removed: tuple[str, ...]) -> tuple[gemmi.Structure, gemmi.Structure, DensityMap]:
    """3NZD as deposited, its model without the ``removed`` residues and waters, and the real 1.8 Å 2mFo-DFc map
    read around that model."""
    folder = root / "xray" / "3NZD"
    deposited = io.read_structure(folder / "3nzd.cif")
    structure = deposited.clone()
    for name in removed:
        io.remove_residues(structure, name)
    _remove_waters(structure)
    density = maps.read_map(folder / "3nzd.ccp4.gz", around=io.heavy_atoms(structure).coordinates)
    return deposited, structure, density


def hemoglobin_hemes(root: Path, model: str = "5NI1") -> tuple[DensityMap, gemmi.Structure, dict[str, list[Chem.Mol]]]:
    """The EMD-3488 map, a model without hemes, and the four hemes of each deposited model.

    5NI1 is the model built into EMD-3488 (Khoshouei et al. 2017); 5ME2 is the crystal
    structure shipped beside it. Their hemes B and C differ by a ~6 Å flip.
    """
    folder = root / "em" / "maps_with_models" / "EMD-3488_5ME2_hemoglobin"
    files = {"5NI1": folder / "5ni1_updated.cif", "5ME2": folder / "5me2.pdb"}
    hemes = {name: residues_as_mols(io.read_structure(path), "HEM") for name, path in files.items()}
    structure = io.read_structure(files[model])
    io.remove_residues(structure, "HEM")
    _remove_waters(structure)
    return maps.read_map(folder / "emd_3488.mrc"), structure, hemes


def spike_ntd(root: Path) -> tuple[DensityMap, gemmi.Structure, list[Chem.Mol]]:
    """EMD-21457's 3.2 Å segment around the SARS-CoV-2 spike's N-terminal domain, 6VYB's model of it without its
    N-glycans, and those glycans (NAG, bonded to asparagine ND2).

    A real map as users bring it: the deposited model leaves loops of 2–22 residues and side chains out, and the map holds
    their weak density, the glycans' and more, all on the surface.
    """
    folder = root / "em" / "maps_with_models" / "EMD-21457_6VYB_spike_NTD_segment"
    structure = io.read_structure(folder / "6vyb_Ndom.pdb")
    glycans = residues_as_mols(structure, "NAG")
    io.remove_residues(structure, "NAG")
    _remove_waters(structure)
    return maps.read_map(folder / "emd_21457_seg.mrc"), structure, glycans


#: Real map crops with no organic ligand: name → (folder under em/maps_with_models, map, deposited model, resolution Å).
#: EMD-20026, apoferritin at 1.75 Å, with its fitted model as deposited (229 waters, 12 Mg); EMD-2566, 3.2 Å, around
#: ribosomal protein 3J6B chain 9. Each crop also holds density of neighbouring chains (and, in EMD-2566, rRNA) that the
#: model lacks: unexplained density that is not a ligand, as in a map built with part of its model.
LIGAND_FREE_CROPS = {
    "EMD-20026": ("EMD-20026_apoferritin_crop", "emd20026_prot.mrc", "3ajo_fitted_refined.pdb", 1.75),
    "EMD-2566": ("EMD-2566_3J6B_chain9", "emd_2566_3J6B_chain9_crop.mrc", "3J6B_chain9.pdb", 3.2),
}


def ligand_free_crop(root: Path, name: str) -> tuple[DensityMap, gemmi.Structure, float]:
    """One of ``LIGAND_FREE_CROPS``: its map, deposited model and resolution (Å)."""
    folder, map_file, model_file, resolution = LIGAND_FREE_CROPS[name]
    path = root / "em" / "maps_with_models" / folder
    return maps.read_map(path / map_file), io.read_structure(path / model_file), resolution


def _remove_waters(structure: gemmi.Structure) -> None:
    structure.remove_waters()
    structure.remove_empty_chains()


def _residue_as_mol(structure: gemmi.Structure, name: str) -> Chem.Mol:
    return residues_as_mols(structure, name)[0]


def residues_as_mols(structure: gemmi.Structure, name: str) -> list[Chem.Mol]:
    """Residues called ``name`` as RDKit molecules: CCD chemistry, deposited coordinates (matched by atom name)."""
    from ligfit.ligand import parse_ligand

    ideal = parse_ligand(f"ccd:{name}")
    atom_names = [atom.GetProp("_Name") for atom in ideal.GetAtoms()]
    mols = []
    for chain in structure[0]:
        for residue in chain:
            if residue.name != name:
                continue
            positions = {atom.name: atom.pos.tolist() for atom in residue}
            mol = Chem.RWMol(ideal)
            conformer = Chem.Conformer(mol.GetNumAtoms())
            for index, atom_name in enumerate(atom_names):
                conformer.SetAtomPosition(index, positions.get(atom_name, (0.0, 0.0, 0.0)))
            mol.RemoveAllConformers()
            mol.AddConformer(conformer, assignId=True)
            for index in sorted((i for i, n in enumerate(atom_names) if n not in positions), reverse=True):
                mol.RemoveAtom(index)
            mols.append(mol.GetMol())
    return mols
