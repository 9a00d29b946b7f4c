"""Structures in and out (gemmi), and writes that never leave a half-written file."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import logging
import os
import shutil
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from ligfit.errors import BadModelError, OutputExistsError

log = logging.getLogger(__name__)

#: ``gemmi.Residue.flag`` of the residues ligfit builds into a given model (``ligfit.trace.loops``): read where the
#: density around them is judged (``ligfit.segment.attachments``).
BUILT_RESIDUE_FLAG = "b"
#: Heavy atoms beyond Cβ in each standard amino acid's side chain; UNK (a residue of unknown type, as ``ligfit.trace.loops``
#: builds where the model has no sequence) as the largest (Trp), since it may be any.
SIDE_CHAIN_ATOMS = {
    "ALA": 0, "GLY": 0, "SER": 1, "CYS": 1, "VAL": 2, "THR": 2, "PRO": 2, "ILE": 3, "LEU": 3, "ASP": 3, "ASN": 3, "MET": 3,
    "GLU": 4, "GLN": 4, "LYS": 4, "HIS": 5, "PHE": 6, "ARG": 6, "TYR": 7, "TRP": 9,
    "UNK": 9,
}  # fmt: skip


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; outputs should not be
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def check_output_folder(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse an output folder that is a file, that exists and is not empty unless ``force``, or that cannot be written (call before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder; choose another output path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(f"output folder {path} exists and is not empty; use --force to replace it")
    check_writable(path)


def check_output_file(path: str | os.PathLike, force: bool = False) -> None:
    """Refuse an output file that is a folder, that exists unless ``force``, or that cannot be written (call before any work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder; give a file name to write")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; use --force to overwrite it")
    check_writable(path)


def check_writable(path: str | os.PathLike) -> None:
    """Refuse ``path`` when it cannot be created: its first existing parent is a file or not writable (a test file is made and removed)."""
    path = Path(os.path.abspath(path))
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputExistsError(f"cannot write {path}: {parent} is a file, not a folder; choose another output path")
    try:
        handle, probe = tempfile.mkstemp(prefix=".ligfit-write-test.", dir=parent)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise OutputExistsError(f"cannot write {path}: {parent} is not writable ({error.strerror}); choose another output path") from None


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` as a whole when the block succeeds.

    Refuses an existing, non-empty ``path`` unless ``force``; on failure nothing is left behind.
    """
    path = Path(path)
    check_output_folder(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(temporary, 0o777 & ~_umask())
    try:
        yield temporary
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(temporary, path)
            shutil.rmtree(old)
        else:
            os.replace(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


# --------------------------------------------------------------------------- structures


def read_structure(source: str | os.PathLike | gemmi.Structure) -> gemmi.Structure:
    """A gemmi Structure from a PDB/mmCIF path, or a copy of one given in memory.

    Only the first model is kept; alternate conformations keep their first choice.
    """
    if isinstance(source, gemmi.Structure):
        structure = source.clone()
    elif not isinstance(source, (str, os.PathLike)):
        raise BadModelError(f"the model must be a PDB/mmCIF path or a gemmi.Structure, got {type(source).__name__}")
    else:
        path = Path(source)
        if not path.is_file():
            raise BadModelError(f"{path}: no such model file; check the path")
        try:
            structure = gemmi.read_structure(str(path))
        except (RuntimeError, ValueError) as error:
            raise BadModelError(f"{path}: not a readable PDB/mmCIF model ({' '.join(str(error).split())})") from None
        if structure.input_format == gemmi.CoorFormat.Pdb:
            _check_pdb_complete(path)
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise BadModelError(f"{_name(source)}: the model holds no atoms")
    while len(structure) > 1:
        del structure[1]
    structure.remove_alternative_conformations()
    structure.setup_entities()
    occupancies = [atom.occ for chain in structure[0] for residue in chain for atom in residue]
    if occupancies and max(occupancies) == 0:
        log.warning("%s: every atom has occupancy 0 (a convention of some tools); treating them as 1", _name(source))
        for atom in (a for chain in structure[0] for residue in chain for a in residue):
            atom.occ = 1.0
    return structure


def _check_pdb_complete(path: Path) -> None:
    """Refuse a PDB file cut off inside a coordinate record; warn when it ends on a coordinate record without END."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        if path.suffix.lower() != ".gz":
            handle.seek(max(0, path.stat().st_size - 4096))
        tail = handle.read()[-4096:] if path.suffix.lower() == ".gz" else handle.read()
    lines = tail.decode("latin-1").rstrip("\n").split("\n")
    last = lines[-1].rstrip("\r") if lines else ""
    if last.startswith(("ATOM", "HETATM")) and (len(last.rstrip()) < 54 or not tail.endswith(b"\n")):
        raise BadModelError(
            f"{path}: the file ends in the middle of an atom record ({last.strip()[:30]!r}…): it looks truncated (an interrupted "
            "download or copy?); fetch or write the whole file again"
        )
    if last.startswith(("ATOM", "HETATM", "ANISOU")):
        log.warning("%s: the file ends on an atom record without END; if it was cut off, part of the model is missing", path)


def _name(source: object) -> str:
    return str(source) if not isinstance(source, gemmi.Structure) else (source.name or "structure in memory")


@dataclass(frozen=True)
class AtomTable:
    """Heavy atoms of a structure as arrays; coordinates in Å."""

    coordinates: np.ndarray  # (n, 3)
    elements: np.ndarray  # (n,) element symbols
    chain: np.ndarray  # (n,) chain names
    residue_number: np.ndarray  # (n,) author sequence numbers
    residue_name: np.ndarray  # (n,)
    atom_name: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.coordinates)

    @classmethod
    def from_arrays(cls, coordinates: np.ndarray, elements: np.ndarray | list[str]) -> AtomTable:
        """A table of atoms known only by position (Å) and element (chain, residue and atom names blank)."""
        count = len(coordinates)
        blank = np.full(count, "", dtype=object)
        return cls(
            np.asarray(coordinates, dtype=float).reshape(-1, 3), np.asarray(elements), blank, np.zeros(count, dtype=int), blank, blank
        )


def heavy_atoms(structure: gemmi.Structure, exclude_residues: set[str] = frozenset({"HOH", "WAT", "DOD"})) -> AtomTable:
    """The model's non-hydrogen atoms (waters excluded) as an :class:`AtomTable`."""
    rows = []
    for chain in structure[0]:
        for residue in chain:
            if residue.name in exclude_residues:
                continue
            for atom in residue:
                if atom.is_hydrogen():
                    continue
                rows.append((atom.pos.x, atom.pos.y, atom.pos.z, atom.element.name, chain.name, residue.seqid.num, residue.name, atom.name))
    if not rows:
        return AtomTable(np.zeros((0, 3)), *(np.array([], dtype=object) for _ in range(5)))
    columns = list(zip(*rows))
    return AtomTable(
        np.array(columns[0:3], dtype=float).T,
        np.array(columns[3]),
        np.array(columns[4]),
        np.array(columns[5], dtype=int),
        np.array(columns[6]),
        np.array(columns[7]),
    )


def residue_center(structure: gemmi.Structure, chain_name: str, number: int) -> np.ndarray:
    """Centre (Å) of the heavy atoms of residue ``chain_name:number``."""
    for chain in structure[0]:
        if chain.name != chain_name:
            continue
        for residue in chain:
            if residue.seqid.num == number:
                positions = [a.pos.tolist() for a in residue if not a.is_hydrogen()]
                if positions:
                    return np.mean(positions, axis=0)
    raise BadModelError(f"residue {chain_name}:{number} is not in the model; check the chain name and number")


def crop_to_box(structure: gemmi.Structure, lower: np.ndarray, upper: np.ndarray) -> gemmi.Structure:
    """A copy of the structure's first model keeping the residues with an atom inside the box [lower, upper] (Å)."""
    cropped = structure.clone()
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    for chain in cropped[0]:
        for index in reversed(range(len(chain))):
            positions = np.array([atom.pos.tolist() for atom in chain[index]]).reshape(-1, 3)
            if not np.any(np.all((positions >= lower) & (positions <= upper), axis=1)):
                del chain[index]
    cropped.remove_empty_chains()
    return cropped


def remove_residues(structure: gemmi.Structure, name: str) -> int:
    """Remove every residue called ``name`` from the structure in place; return how many."""
    removed = 0
    for chain in structure[0]:
        for index in reversed(range(len(chain))):
            if chain[index].name == name:
                del chain[index]
                removed += 1
    structure.remove_empty_chains()
    return removed


def is_amino_acid(name: str) -> bool:
    """Whether gemmi's residue table knows ``name`` as an amino acid (standard or modified)."""
    info = gemmi.find_tabulated_residue(str(name))
    return info is not None and info.is_amino_acid()


def new_atom(name: str, element: str, position, occupancy: float = 1.0, b_factor: float = 30.0) -> gemmi.Atom:
    """A gemmi atom with these attributes (position in Å, any 3-sequence)."""
    atom = gemmi.Atom()
    atom.name = str(name)
    atom.element = gemmi.Element(str(element))
    atom.pos = gemmi.Position(*map(float, position))
    atom.occ = float(occupancy)
    atom.b_iso = float(b_factor)
    return atom


def unused_chain_name(used: set[str]) -> str:
    """A chain name not in ``used``: L, Z, Y, … first, then lower case and digits, then two letters (traces have many chains)."""
    singles = "LZYXWVUTSRQPONMKJIHGFEDCBA" + string.ascii_lowercase + string.digits
    doubles = (a + b for a in string.ascii_uppercase for b in string.ascii_uppercase)
    return next(name for name in itertools.chain(singles, doubles) if name not in used)


def add_ligand(
    structure: gemmi.Structure,
    elements: list[str],
    atom_names: list[str],
    coordinates: np.ndarray,
    residue_name: str = "LIG",
    b_factor: float = 30.0,
) -> gemmi.Structure:
    """A copy of ``structure`` with the ligand added as one HETATM residue in a chain of its own."""
    complex_structure = structure.clone()
    model = complex_structure[0]
    chain = gemmi.Chain(unused_chain_name({chain.name for chain in model}))
    residue = gemmi.Residue()
    residue.name = residue_name
    residue.seqid = gemmi.SeqId(1, " ")
    residue.het_flag = "H"
    residue.entity_type = gemmi.EntityType.NonPolymer
    for element, name, position in zip(elements, atom_names, coordinates):
        residue.add_atom(new_atom(name, element, position, b_factor=b_factor))
    chain.add_residue(residue)
    model.add_chain(chain)
    complex_structure.setup_entities()
    return complex_structure


def write_structure(structure: gemmi.Structure, path: str | os.PathLike) -> None:
    """Write mmCIF (.cif) or PDB (.pdb) atomically."""
    path = Path(path)
    with atomic_path(path) as temporary:
        if path.suffix.lower() in (".cif", ".mmcif"):
            document = structure.make_mmcif_document()
            document.write_file(str(temporary))
        else:
            structure.write_pdb(str(temporary))
