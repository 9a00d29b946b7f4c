"""Reading a ligand library: SMILES (one per line, optional name), SDF, or CSV with a SMILES column.

Lines that do not parse are recorded and skipped; duplicates (same InChIKey) are collapsed
into the first entry and recorded. A library with nothing usable is a :class:`EmptyLibraryError`.
"""

from __future__ import annotations

import csv
import io as text_io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rdkit import Chem
from rdkit.rdBase import BlockLogs

from ligfit.errors import LigfitError
from ligfit.ligand import has_dummy_atoms

#: file name of the shipped library of common ligands; its entries' source is "common_ligands.csv:<category>"
COMMON_LIGANDS_FILE = "common_ligands.csv"
_SMILES_COLUMNS = ("smiles", "smi", "canonical_smiles", "isomeric_smiles")
_NAME_COLUMNS = ("name", "id", "title", "compound", "compound_id", "ligand", "code")


#: (source, name, molecule or None when it did not parse, original text, CCD code)
_Raw = tuple[str, str, "Chem.Mol | None", str, str]


class EmptyLibraryError(LigfitError):
    """The ligand library holds no molecule that parses."""


class BadLibraryError(LigfitError):
    """The ligand library cannot be read (missing file, unknown format, no SMILES column)."""


@dataclass(frozen=True)
class LibraryEntry:
    """One candidate ligand: a unique name, canonical SMILES and InChIKey (the screen's key)."""

    name: str
    smiles: str
    inchikey: str
    heavy_atoms: int
    source: str = ""  # where it came from: "file:line"
    code: str = ""  # CCD code, for the shipped library of common ligands

    @property
    def category(self) -> str:
        """The shipped library's category ('cofactor', 'lipid', …); 'library' for a user's ligands."""
        prefix, _, rest = self.source.partition(":")
        return rest if prefix == COMMON_LIGANDS_FILE and rest else "library"

    @property
    def key(self) -> str:
        """A file-name-safe key, unique within a library."""
        return self.inchikey or re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)


@dataclass
class Library:
    """The parsed entries, and what was skipped (bad lines) or collapsed (duplicates)."""

    entries: list[LibraryEntry]
    skipped: list[dict] = field(default_factory=list)  # {"source", "text", "reason"}
    duplicates: list[dict] = field(default_factory=list)  # {"source", "name", "same_as"}

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> str:
        return f"{len(self.entries)} ligands ({len(self.skipped)} lines skipped, {len(self.duplicates)} duplicates collapsed)"


def read_library(source: str | os.PathLike | Iterable) -> Library:
    """A :class:`Library` from a file path (.smi/.txt, .sdf, .csv/.tsv) or a list.

    A list may hold SMILES strings, (name, SMILES) pairs, RDKit Mols or :class:`LibraryEntry`.
    """
    if isinstance(source, (str, os.PathLike)) and not _looks_like_smiles_text(source):
        path = Path(source)
        if not path.is_file():
            raise BadLibraryError(f"ligand library {path} does not exist; give a .smi, .sdf or .csv file")
        suffix = path.suffix.lower()
        if suffix in (".sdf", ".sd", ".mol"):
            raw = _read_sdf(path)
        elif suffix in (".csv", ".tsv"):
            raw = _read_csv(path, "\t" if suffix == ".tsv" else ",")
        else:
            raw = _read_smiles_lines(path.read_text(errors="replace").splitlines(), path.name)
    elif isinstance(source, (str, os.PathLike)):
        raw = _read_smiles_lines(str(source).splitlines(), "text")
    else:
        raw = _read_items(list(source))
    return _collapse(raw)


def _looks_like_smiles_text(source: str | os.PathLike) -> bool:
    """A string with a newline is library text, not a path."""
    return isinstance(source, str) and "\n" in source


def _read_smiles_lines(lines: list[str], label: str) -> list[_Raw]:
    """(source, name, mol or None, text-or-reason) per non-blank, non-comment line."""
    raw = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 1)
        smiles, name = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if number == 1 and smiles.lower() in _SMILES_COLUMNS:
            continue  # a header line
        raw.append((f"{label}:{number}", name, _mol_from_smiles(smiles), text, ""))
    return raw


def _read_sdf(path: Path) -> list[_Raw]:
    raw = []
    with _quiet():
        supplier = Chem.SDMolSupplier(str(path), sanitize=True, removeHs=True)
        for index, mol in enumerate(supplier, start=1):
            name = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
            raw.append((f"{path.name}:record {index}", name, mol, "" if mol is not None else f"record {index}", ""))
    return raw


def _read_csv(path: Path, delimiter: str) -> list[_Raw]:
    text = path.read_text(errors="replace")
    reader = csv.DictReader(text_io.StringIO(text), delimiter=delimiter)
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    smiles_column = next((columns[c] for c in _SMILES_COLUMNS if c in columns), None)
    if smiles_column is None:
        raise BadLibraryError(f"{path} has no SMILES column (columns: {', '.join(columns.values())}); name one 'smiles'")
    name_column = next((columns[c] for c in _NAME_COLUMNS if c in columns), None)
    raw = []
    for number, row in enumerate(reader, start=2):
        smiles = (row.get(smiles_column) or "").strip()
        name = (row.get(name_column) or "").strip() if name_column else ""
        raw.append((f"{path.name}:{number}", name, _mol_from_smiles(smiles) if smiles else None, smiles or "(empty SMILES cell)", ""))
    return raw


def _read_items(items: list) -> list[_Raw]:
    raw = []
    for index, item in enumerate(items, start=1):
        source = f"item {index}"
        if isinstance(item, LibraryEntry):
            raw.append((item.source or source, item.name, _mol_from_smiles(item.smiles), item.smiles, item.code))
        elif isinstance(item, Chem.Mol):
            raw.append((source, item.GetProp("_Name") if item.HasProp("_Name") else "", item, "", ""))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, smiles = item
            raw.append((source, str(name), _mol_from_smiles(str(smiles)), str(smiles), ""))
        else:
            raw.append((source, "", _mol_from_smiles(str(item)), str(item), ""))
    return raw


def _mol_from_smiles(smiles: str) -> Chem.Mol | None:
    with _quiet():
        return Chem.MolFromSmiles(smiles)


def _collapse(raw: list[_Raw]) -> Library:
    entries: list[LibraryEntry] = []
    skipped: list[dict] = []
    duplicates: list[dict] = []
    by_key: dict[str, LibraryEntry] = {}
    names: set[str] = set()
    for source, name, mol, text, code in raw:
        if mol is None or mol.GetNumAtoms() == 0:
            skipped.append({"source": source, "text": text[:200], "reason": "does not parse as a molecule"})
            continue
        if has_dummy_atoms(mol):
            skipped.append({"source": source, "text": text[:200], "reason": "has dummy atoms (*): give the whole molecule"})
            continue
        with _quiet():
            inchikey = Chem.MolToInchiKey(mol) or ""
        smiles = Chem.MolToSmiles(mol)
        key = inchikey or smiles
        if key in by_key:
            duplicates.append({"source": source, "name": name or smiles, "same_as": by_key[key].name})
            continue
        unique = name or f"ligand_{len(entries) + 1}"
        while unique in names:
            unique = f"{unique}_{source.rsplit(':', 1)[-1].replace(' ', '')}"
        names.add(unique)
        entry = LibraryEntry(unique, smiles, inchikey, mol.GetNumHeavyAtoms(), source, code)
        by_key[key] = entry
        entries.append(entry)
    if not entries:
        reasons = f" ({len(skipped)} line(s) did not parse, e.g. {skipped[0]['source']}: {skipped[0]['text'][:60]!r})" if skipped else ""
        raise EmptyLibraryError(f"the ligand library holds no usable molecule{reasons}; give one SMILES per line, an SDF or a CSV")
    return Library(entries, skipped, duplicates)


class _quiet:
    """Silence RDKit's parse warnings while reading a library (bad lines are recorded instead); the caller's log
    settings come back as they were."""

    def __enter__(self) -> None:
        self._block = BlockLogs()

    def __exit__(self, *exc: object) -> None:
        del self._block
