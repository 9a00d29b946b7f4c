"""The ligand: SMILES / SDF / MOL2 / CCD code / RDKit Mol → sanitised molecule with conformers."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem, Lipinski, rdDistGeom

from ligfit.errors import BadLigandError
from ligfit.io import atomic_path
from ligfit.runtime import thread_budget

log = logging.getLogger(__name__)

_CCD_CODE = re.compile(r"^(?:ccd:)?([A-Z0-9]{1,5})$", re.IGNORECASE)

#: Charge rules applied at pH 7 (SMARTS of the neutral group, index of the atom that changes, new charge).
_PH7_RULES = (
    ("[CX3](=O)[OX2H1]", 2, -1),  # carboxylic acid → carboxylate
    ("[PX4](=O)[OX2H1]", 2, -1),  # phosphate / phosphonate first acidic OH
    ("[SX4](=O)(=O)[OX2H1]", 3, -1),  # sulfonic acid
    ("[NX3;H2,H1,H0;!$(N-[a,#6]=[O,S,N]);!$(N-[S,P]=O);!$(N-a);!$(N-C=C);!$(N#*);!$(N=*);!$([N]-[N,O])]", 0, 1),  # aliphatic amine
    ("[CX3](=[NX2;H1,H0;!$(N-[O,N])])([NX3;H2,H1])[#6,#1,N;!$(C=O)]", 1, 1),  # amidine / guanidine
)


@dataclass(frozen=True)
class Ligand:
    """A ligand ready for docking: an RDKit molecule with explicit hydrogens and 3D conformers.

    Heavy atoms come first (indices 0 … heavy_atom_count-1); every conformer is MMFF-minimised
    (UFF where MMFF has no parameters) and ``conformer_energies`` are in kcal/mol. ``mol`` carries
    the charges used for scoring and refinement (pH 7 by default); ``given`` is the molecule as the
    user gave it (heavy atoms, bond orders, formal charges), its atoms in the order of ``mol``'s
    heavy atoms, for output files that must match the input's chemistry.
    """

    mol: Chem.Mol
    name: str
    smiles: str
    conformer_energies: np.ndarray
    force_field: str
    atom_names: tuple[str, ...] = field(default=())
    given: Chem.Mol | None = None

    @property
    def heavy_atom_count(self) -> int:
        return sum(1 for atom in self.mol.GetAtoms() if atom.GetAtomicNum() > 1)

    @property
    def elements(self) -> list[str]:
        return [atom.GetSymbol() for atom in self.mol.GetAtoms()]

    @property
    def rotatable_bonds(self) -> list[tuple[int, int]]:
        return rotatable_bonds(self.mol)

    def conformer_coordinates(self) -> np.ndarray:
        """Every conformer's coordinates, shape (n_conformers, n_atoms, 3), Å."""
        return np.array([conformer.GetPositions() for conformer in self.mol.GetConformers()])


def load_ligand(
    source: str | os.PathLike | Chem.Mol,
    *,
    name: str = "LIG",
    protonation: str = "ph7",
    max_conformers: int | None = None,
    seed: int = 0,
) -> Ligand:
    """Parse a ligand and build its conformer ensemble.

    ``source`` is a SMILES string, an SDF/MOL/MOL2 path, a CCD code (``ccd:ATP`` or a bare code
    that is not valid SMILES), or an RDKit Mol. ``protonation`` is ``"ph7"`` (charge acids and
    bases as at pH 7) or ``"as-given"``.
    """
    given = parse_ligand(source)
    mol = given
    if protonation == "ph7":
        mol = protonate_ph7(mol)
    elif protonation != "as-given":
        raise BadLigandError(f"unknown protonation {protonation!r}; use 'ph7' or 'as-given'")
    smiles = Chem.MolToSmiles(mol)
    mol, energies, force_field = generate_conformers(mol, max_conformers=max_conformers, seed=seed)
    atom_names = tuple(_atom_names(mol))
    given = Chem.Mol(given)
    given.RemoveAllConformers()
    return Ligand(
        mol=mol, name=name, smiles=smiles, conformer_energies=energies, force_field=force_field, atom_names=atom_names, given=given
    )


def parse_ligand(source: str | os.PathLike | Chem.Mol) -> Chem.Mol:
    """A sanitised RDKit molecule without explicit hydrogens, from any supported source."""
    if not isinstance(source, (str, os.PathLike, Chem.Mol)):
        raise BadLigandError(
            f"the ligand must be a SMILES string, an SDF/MOL2 path, a CCD code or an RDKit Mol, got {type(source).__name__}"
        )
    if isinstance(source, str) and not source.strip():
        raise BadLigandError("the ligand is empty; give a SMILES string, an SDF/MOL2 path or a CCD code (e.g. ccd:ATP)")
    if isinstance(source, Chem.Mol):
        mol = Chem.Mol(source)
        label = "RDKit molecule"
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and Path(source).suffix.lower() in (".sdf", ".mol", ".mol2")):
        mol, label = _read_ligand_file(Path(source)), str(source)
    else:
        text = str(source).strip()
        mol, label = _from_text(text), text
    try:
        Chem.SanitizeMol(mol)
    except (Chem.rdchem.MolSanitizeException, ValueError) as error:
        raise BadLigandError(f"ligand {label!r} cannot be sanitised ({error}); check valences and charges") from None
    mol = _strip_counter_ions(mol, label)
    mol = Chem.RemoveHs(mol, sanitize=True)
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)  # parsing unsanitised skips this; ETKDG needs it
    if mol.GetNumHeavyAtoms() == 0:
        raise BadLigandError(f"ligand {label!r} has no heavy atoms")
    if has_dummy_atoms(mol):
        raise BadLigandError(
            f"ligand {label!r} has dummy atoms (*, attachment points of a fragment or R-group); "
            "replace each with the atom it stands for (e.g. [H] or C)"
        )
    return mol


def has_dummy_atoms(mol: Chem.Mol) -> bool:
    """Whether ``mol`` holds dummy atoms (``*``: a fragment's or R-group's attachment points), which nothing can place."""
    return any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms())


#: Fragments stripped from a multi-fragment ligand: counter-ions, salts and solvents (canonical
#: SMILES, hydrogens implicit). Anything else — a metal, an organic fragment — is never dropped.
COUNTER_IONS = frozenset(
    Chem.CanonSmiles(smiles)
    for smiles in (
        r"[F-] F [Cl-] Cl [Br-] Br [I-] I [Na+] [Na] [K+] [K] [Li+] [Li] [NH4+] N O [OH-] OS(=O)(=O)O [O-]S(=O)(=O)[O-] "
        r"OS(=O)(=O)[O-] O=[N+]([O-])[O-] O=[N+]([O-])O OP(=O)(O)O [O-]P(=O)([O-])[O-] OP(=O)([O-])[O-] OP(=O)(O)[O-] "
        r"[O-]Cl(=O)(=O)=O CC(=O)O CC(=O)[O-] O=CO O=C[O-] OC(=O)C(F)(F)F [O-]C(=O)C(F)(F)F CS(=O)(=O)O CS(=O)(=O)[O-] "
        r"Cc1ccc(S(=O)(=O)O)cc1 Cc1ccc(S(=O)(=O)[O-])cc1 OC(=O)/C=C\C(=O)O OC(=O)/C=C/C(=O)O OC(=O)CC(O)(CC(=O)O)C(=O)O "
        r"CO CCO CC(C)O CC#N ClCCl ClC(Cl)Cl CS(C)=O CN(C)C=O C1CCOC1 CCOC(C)=O CC(C)=O "
    ).split()
)


def _strip_counter_ions(mol: Chem.Mol, label: str) -> Chem.Mol:
    """Drop recognised counter-ions, salts and solvents (saying so); refuse other extra fragments rather than guess."""
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(fragments) == 1:
        return mol
    names = [Chem.MolToSmiles(Chem.RemoveHs(fragment, sanitize=False)) for fragment in fragments]
    known = [_canonical(name) in COUNTER_IONS for name in names]
    kept = [fragment for fragment, is_known in zip(fragments, known) if not is_known]
    if len(kept) == 1:
        log.warning("ligand %s: stripped the counter-ion/solvent fragment(s) %s", label, ", ".join(n for n, k in zip(names, known) if k))
        return kept[0]
    if not kept:  # every fragment is a counter-ion or solvent (e.g. ethanol itself, or "CCO.Cl"): keep the largest
        largest = max(range(len(fragments)), key=lambda i: fragments[i].GetNumHeavyAtoms())
        log.warning("ligand %s: kept %s and stripped %s", label, names[largest], ", ".join(n for i, n in enumerate(names) if i != largest))
        return fragments[largest]
    raise BadLigandError(
        f"ligand {label!r} has {len(kept)} separate fragments that are not known counter-ions or solvents "
        f"({', '.join(n for n, k in zip(names, known) if not k)}); ligfit places one connected molecule: give the "
        "molecule you want placed, or the complex as one connected structure (an SDF/MOL2 file or ccd:CODE with its "
        "metal bonds)"
    )


def _canonical(smiles: str) -> str:
    try:
        return Chem.CanonSmiles(smiles)
    except Exception:  # an unsanitisable fragment is not a known counter-ion
        return smiles


def _from_text(text: str) -> Chem.Mol:
    ccd = _CCD_CODE.match(text)
    if ccd and text.lower().startswith("ccd:"):
        return _from_ccd(ccd.group(1).upper())
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(text, sanitize=False)
        valid = mol is not None and _sanitises(mol)
    if valid:
        return mol
    if ccd:
        return _from_ccd(ccd.group(1).upper())
    raise BadLigandError(f"{text!r} is not a valid SMILES string (nor a CCD code or ligand file); check the SMILES")


def _sanitises(mol: Chem.Mol) -> bool:
    try:
        Chem.SanitizeMol(Chem.Mol(mol))
    except (Chem.rdchem.MolSanitizeException, ValueError):
        return False
    return True


def _from_ccd(code: str) -> Chem.Mol:
    import biotite.interface.rdkit as biotite_rdkit
    import biotite.structure.info as ccd

    try:
        atoms = ccd.residue(code)
    except KeyError:
        raise BadLigandError(f"{code!r} is not in the Chemical Component Dictionary; give a SMILES or SDF instead") from None
    mol = biotite_rdkit.to_mol(atoms, explicit_hydrogen=True)
    Chem.SanitizeMol(mol)
    Chem.AssignStereochemistryFrom3D(mol)
    for atom, atom_name in zip(mol.GetAtoms(), atoms.atom_name):
        atom.SetProp("_Name", str(atom_name))
    return mol


def _read_ligand_file(path: Path) -> Chem.Mol:
    if not path.is_file():
        raise BadLigandError(f"{path}: no such ligand file; check the path")
    with _quiet_rdkit():
        if path.suffix.lower() == ".mol2":
            mol = Chem.MolFromMol2File(str(path), sanitize=False, removeHs=False)
        else:
            supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
            mol = next(iter(supplier), None) if len(supplier) else None
    if mol is None:
        raise BadLigandError(f"{path}: no readable molecule in the file; check its format")
    if mol.GetNumConformers() and mol.GetConformer().Is3D():
        try:
            Chem.SanitizeMol(mol)
            Chem.AssignStereochemistryFrom3D(mol)
        except (Chem.rdchem.MolSanitizeException, ValueError) as error:
            raise BadLigandError(f"{path}: the molecule cannot be sanitised ({error})") from None
    return mol


class _quiet_rdkit:
    """Silence RDKit's own console messages while we report errors ourselves; the caller's log settings come back after."""

    def __enter__(self) -> None:
        self._block = rdBase.BlockLogs()

    def __exit__(self, *exc: object) -> None:
        del self._block


def protonate_ph7(mol: Chem.Mol) -> Chem.Mol:
    """Charge carboxylic/phosphoric/sulfonic acids and aliphatic amines/amidines as at pH 7.

    A small rule set (one charge per matched group); the tautomer is kept as given.
    """
    mol = Chem.RWMol(mol)
    changed = False
    for smarts, atom_position, charge in _PH7_RULES:
        pattern = Chem.MolFromSmarts(smarts)
        for match in mol.GetSubstructMatches(pattern):
            atom = mol.GetAtomWithIdx(match[atom_position])
            if atom.GetFormalCharge() != 0 or _charge_nearby(mol, atom.GetIdx(), charge):
                continue
            if charge < 0 and atom.GetTotalNumHs() == 0:
                continue
            atom.SetFormalCharge(charge)
            atom.SetNumExplicitHs(max(0, atom.GetTotalNumHs() + charge))
            atom.SetNoImplicit(True)
            changed = True
    mol = mol.GetMol()
    if changed:
        try:
            Chem.SanitizeMol(mol)
        except (Chem.rdchem.MolSanitizeException, ValueError) as error:
            raise BadLigandError(f"pH 7 protonation produced an invalid molecule ({error}); use protonation='as-given'") from None
    return mol


def _charge_nearby(mol: Chem.Mol, index: int, charge: int, bonds: int = 3) -> bool:
    """Whether an atom within ``bonds`` bonds already carries a charge (a second one nearby is unlikely at pH 7)."""
    distances = Chem.GetDistanceMatrix(mol)[index]
    return any(
        atom.GetFormalCharge() != 0
        and 0 < distances[atom.GetIdx()] <= bonds
        and np.sign(atom.GetFormalCharge()) == np.sign(charge)
        or (atom.GetFormalCharge() != 0 and distances[atom.GetIdx()] == 1)
        for atom in mol.GetAtoms()
    )


#: a ring of at least this many atoms makes a macrocycle. Docking turns rotatable bonds, not ring bonds, so a
#: macrocycle's ring is docked only in the conformations its ensemble holds.
MACROCYCLE_RING_SIZE = 12

#: conformers a macrocycle gets when no count is asked for (its embedding budget grows in proportion). Measured on the
#: ten PoseBusters macrocycles: the closest ring to the deposited one (aligned ring-atom RMSD) for FK506 1.14 Å with
#: the default count → 0.31 Å with 150, 7RWS's 4UR 0.46 → 0.12 Å; 300 brought one of ten closer for twice the
#: embedding (docs/benchmarks.md, "Macrocycles").
MACROCYCLE_CONFORMERS = 150


def conformer_count(rotatable_bond_count: int) -> int:
    """Conformers to generate for a ligand with this many rotatable bonds (docking refines torsions too)."""
    return int(np.clip(10 + 6 * rotatable_bond_count, 10, 60))


def is_macrocycle(mol: Chem.Mol) -> bool:
    """Whether ``mol`` has a flexible ring of :data:`MACROCYCLE_RING_SIZE` or more atoms.

    Flexible: at least three of the ring's bonds are single, not aromatic and in no smaller ring, so its conformation
    can change (FK506, cyclic dinucleotides); a porphyrin's conjugated ring (a heme's) cannot and needs no more conformers.
    """
    Chem.GetSymmSSSR(mol)  # makes sure ring information exists, e.g. for a molecule built without sanitising
    rings = mol.GetRingInfo()

    def free(index: int) -> bool:
        bond = mol.GetBondWithIdx(index)
        return (
            bond.GetBondType() == Chem.BondType.SINGLE and not bond.GetIsAromatic() and rings.MinBondRingSize(index) >= MACROCYCLE_RING_SIZE
        )

    return any(len(ring) >= MACROCYCLE_RING_SIZE and sum(map(free, ring)) >= 3 for ring in rings.BondRings())


def generate_conformers(
    mol: Chem.Mol, *, max_conformers: int | None = None, seed: int = 0, time_budget: float = 16.0
) -> tuple[Chem.Mol, np.ndarray, str]:
    """ETKDGv3 conformers with explicit hydrogens, force-field minimised and deduplicated by heavy-atom RMSD.

    A first batch of 8 conformers times the embedding; the rest of the ensemble is generated
    only as far as ``time_budget`` seconds of CPU time allow (long polyenes embed slowly): CPU rather than
    wall time, so that the ensemble, and the result, do not depend on how busy the machine is (16 CPU-s is
    the 8 s of wall time that embedding on two idle cores had before). The budget is for the count
    :func:`conformer_count` gives; a larger count (``max_conformers``, or a macrocycle's
    :data:`MACROCYCLE_CONFORMERS`, whose ring docking does not turn) gets a budget larger in proportion.
    """
    mol_h = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
    default = conformer_count(len(rotatable_bonds(mol_h)))
    count = max_conformers or (max(default, MACROCYCLE_CONFORMERS) if is_macrocycle(mol_h) else default)
    time_budget *= max(1.0, count / default)
    started = time.process_time()  # CPU time of this process: the ensemble does not shrink when other jobs load the machine
    conformers = _embed(mol_h, min(count, 8), seed)
    if not conformers:
        conformers = _embed(mol_h, min(count, 8), seed, random_coordinates=True)
    if not conformers:
        raise BadLigandError(f"RDKit could not embed {Chem.MolToSmiles(mol)} in 3D; check its stereochemistry and rings")
    per_conformer = (time.process_time() - started) / len(conformers)
    affordable = int(max(0.0, time_budget - (time.process_time() - started)) / max(per_conformer, 1e-3))
    more = min(count - len(conformers), affordable)
    if more > 0:
        conformers += _embed(mol_h, more, seed + 1000)
    embedded = _with_conformers(mol_h, conformers)
    energies, force_field = _minimise(embedded)
    keep = _deduplicate(embedded, energies, threshold=0.5)
    pruned = _with_conformers(embedded, [embedded.GetConformer(i) for i in keep])
    return pruned, energies[keep], force_field


def _embed(mol_h: Chem.Mol, count: int, seed: int, random_coordinates: bool = False) -> list[Chem.Conformer]:
    """``count`` ETKDGv3 conformers (fewer if embedding fails), as detached Conformer objects."""
    target = Chem.Mol(mol_h)
    target.RemoveAllConformers()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed + 1  # in this RDKit a seed of 0 makes every conformer identical
    # pruneRmsThresh is left off: in this RDKit it keeps a single conformer when hydrogens are explicit.
    params.numThreads = thread_budget()  # the same conformers on any number of threads; a screen worker keeps to its share
    params.useRandomCoords = random_coordinates or mol_h.GetNumAtoms() > 60
    rdDistGeom.EmbedMultipleConfs(target, numConfs=count, params=params)
    return [Chem.Conformer(conformer) for conformer in target.GetConformers()]


def _with_conformers(mol: Chem.Mol, conformers: list) -> Chem.Mol:
    """A copy of ``mol`` holding exactly these conformers, numbered from 0."""
    copy = Chem.Mol(mol)
    copy.RemoveAllConformers()
    for conformer in conformers:
        copy.AddConformer(Chem.Conformer(conformer), assignId=True)
    return copy


def mmff_properties(mol_h: Chem.Mol):
    """MMFF94 parameters with a distance-dependent dielectric (ε = 4r).

    Vacuum electrostatics make charged ligands (phosphates, zwitterions) fold onto themselves
    and turn strain energies into nonsense; 4r is the usual screened stand-in for a protein.
    """
    properties = AllChem.MMFFGetMoleculeProperties(mol_h)
    properties.SetMMFFDielectricModel(2)
    properties.SetMMFFDielectricConstant(4.0)
    properties.SetMMFFVerbosity(0)
    return properties


def _minimise(mol_h: Chem.Mol) -> tuple[np.ndarray, str]:
    if AllChem.MMFFHasAllMoleculeParams(mol_h):
        force_field = AllChem.MMFFGetMoleculeForceField(mol_h, mmff_properties(mol_h), ignoreInterfragInteractions=False)
        results = AllChem.OptimizeMoleculeConfs(mol_h, force_field, numThreads=thread_budget(), maxIters=500)
        name = "MMFF94"
    elif AllChem.UFFHasAllMoleculeParams(mol_h):
        results = AllChem.UFFOptimizeMoleculeConfs(mol_h, numThreads=thread_budget(), maxIters=500)
        name = "UFF"
    else:
        log.warning("no MMFF or UFF parameters for this ligand; conformers are not minimised and strain is not scored")
        return np.zeros(mol_h.GetNumConformers()), "none"
    return np.array([energy for _, energy in results], dtype=float), name


def _deduplicate(mol_h: Chem.Mol, energies: np.ndarray, threshold: float, energy_window: float = 25.0) -> list[int]:
    """Indices of conformers kept: low energy first, none within ``threshold`` Å heavy-atom RMSD of a kept one."""
    heavy = Chem.RemoveHs(mol_h)
    count = heavy.GetNumConformers()
    condensed = AllChem.GetConformerRMSMatrix(heavy, prealigned=False)
    rms = np.zeros((count, count))
    rms[np.tril_indices(count, -1)] = condensed
    rms = rms + rms.T
    order = [int(i) for i in np.argsort(energies) if energies[i] - energies.min() <= energy_window]
    kept: list[int] = []
    for index in order:
        if all(rms[index, other] > threshold for other in kept):
            kept.append(index)
    return kept


def rotatable_bonds(mol: Chem.Mol) -> list[tuple[int, int]]:
    """Single, acyclic bonds between non-terminal heavy atoms (amide C–N excluded), as atom index pairs."""
    # RemoveHs keeps heavy-atom indices when hydrogens come last, which AddHs guarantees.
    heavy = Chem.RemoveHs(mol)
    pattern = Lipinski.RotatableBondSmarts
    return [tuple(sorted(match)) for match in heavy.GetSubstructMatches(pattern)]


def _atom_names(mol: Chem.Mol) -> list[str]:
    """Unique 4-character atom names: the CCD/SDF names where present, else element + counter."""
    names, counts = [], {}
    for atom in mol.GetAtoms():
        name = atom.GetProp("_Name") if atom.HasProp("_Name") else ""
        if not name or name in names or len(name) > 4:
            symbol = atom.GetSymbol().upper()
            counts[symbol] = counts.get(symbol, 0) + 1
            name = f"{symbol}{counts[symbol]}"
            while name in names:
                counts[symbol] += 1
                name = f"{symbol}{counts[symbol]}"
        names.append(name)
    return names


def posed_mol(ligand: Ligand, coordinates: np.ndarray) -> Chem.Mol:
    """The ligand (hydrogens too) with one conformer at ``coordinates`` (all-atom array, Å)."""
    mol = Chem.Mol(ligand.mol)
    mol.RemoveAllConformers()
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for index, position in enumerate(coordinates):
        conformer.SetAtomPosition(index, position.tolist())
    mol.AddConformer(conformer, assignId=True)
    return mol


def heavy_atom_mol(ligand: Ligand, coordinates: np.ndarray | None = None) -> Chem.Mol:
    """The ligand without hydrogens, with one conformer at ``coordinates`` (all-atom array, Å) if given."""
    return Chem.RemoveHs(Chem.Mol(ligand.mol) if coordinates is None else posed_mol(ligand, coordinates))


def given_mol(ligand: Ligand, coordinates: np.ndarray | None = None) -> Chem.Mol:
    """The ligand as the user gave it (heavy atoms, bond orders, formal charges), at ``coordinates`` if given.

    ``coordinates``: all-atom (or heavy-atom) array in ligand order, Å. Ligands made without the
    input molecule (built by hand) fall back to :func:`heavy_atom_mol`.
    """
    if ligand.given is None:
        return heavy_atom_mol(ligand, coordinates)
    mol = Chem.Mol(ligand.given)
    heavy = [atom.GetAtomicNum() for atom in ligand.mol.GetAtoms()][: ligand.heavy_atom_count]
    if [atom.GetAtomicNum() for atom in mol.GetAtoms()] != heavy:
        raise ValueError("the given molecule's atoms do not match the ligand's heavy atoms (a bug in load_ligand)")
    if coordinates is not None:
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for index, position in enumerate(np.asarray(coordinates, dtype=float)[: mol.GetNumAtoms()]):
            conformer.SetAtomPosition(index, position.tolist())
        conformer.Set3D(True)
        mol.AddConformer(conformer, assignId=True)
    return mol


def protonation_summary(ligand: Ligand) -> dict:
    """The chemistry given and the one used for scoring and refinement, as SMILES and net charge."""
    given = ligand.given if ligand.given is not None else Chem.RemoveHs(ligand.mol)
    return {
        "given_smiles": Chem.MolToSmiles(given),
        "given_charge": Chem.GetFormalCharge(given),
        "used_smiles": ligand.smiles,
        "used_charge": Chem.GetFormalCharge(ligand.mol),
    }


def write_ligand_sdf(
    path: str | os.PathLike,
    ligand: Ligand,
    coordinate_sets: list[np.ndarray],
    *,
    titles: list[str] | None = None,
    properties: list[dict] | None = None,
    chemistry: str = "given",
) -> None:
    """Write poses (all-atom coordinates in ligand order, Å) to an SDF file, one record per pose (atomic).

    ``chemistry``: ``"given"`` writes the molecule the user gave (heavy atoms, their bond orders
    and charges, as PoseBusters and InChI comparisons expect); ``"used"`` writes the molecule
    ligfit scored and refined (its protonation, hydrogens included).
    """
    if chemistry not in ("given", "used"):
        raise ValueError(f"chemistry must be 'given' or 'used', not {chemistry!r}")
    with atomic_path(path) as temporary:
        writer = Chem.SDWriter(str(temporary))
        for index, coordinates in enumerate(coordinate_sets):
            mol = given_mol(ligand, coordinates) if chemistry == "given" else posed_mol(ligand, coordinates)
            mol.SetProp("_Name", titles[index] if titles else f"{ligand.name} pose {index + 1}")
            for key, value in (properties[index] if properties else {}).items():
                mol.SetProp(str(key), str(value))
            writer.write(mol)
        writer.close()
