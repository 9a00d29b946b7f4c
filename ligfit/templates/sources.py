"""Template complexes from files: PDB/mmCIF complexes, or a protein with an SDF of ligands posed in it.

A source on the command line is one of

- ``COMPLEX.cif`` / ``COMPLEX.pdb``: every ligand residue of at least 6 heavy atoms (waters,
  ions and common crystallisation additives excepted) becomes a template, its bond orders
  taken from the Chemical Component Dictionary (biotite's copy) and matched by atom name;
- ``PROTEIN.pdb,LIGANDS.sdf``: every molecule in the SDF becomes a template with that protein;
- a folder holding one protein/complex file and any number of SDF files (the layout of a
  PoseBusters entry, ``ENTRY_pocket.pdb`` + ``ENTRY_ligand.sdf``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gemmi
from rdkit import Chem
from rdkit.rdBase import BlockLogs

from ligfit import io
from ligfit.errors import BadLigandError, BadModelError, OutputExistsError
from ligfit.ligand import parse_ligand
from ligfit.runtime import Progress, no_progress
from ligfit.templates.errors import TemplateSourceError
from ligfit.templates.library import POCKET_RADIUS, TemplateLibrary, TemplateRecord, load_library, pocket_around, write_library

log = logging.getLogger(__name__)

_STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".cif.gz", ".ent.gz", ".mmcif.gz")
_PDB_ID = re.compile(r"^([0-9][A-Za-z0-9]{3})(?:[_.-]|$)")
MIN_LIGAND_ATOMS = 6
#: Residues that are almost never the ligand of interest: buffers, cryoprotectants, detergents, ions.
ADDITIVES = frozenset(
    "HOH WAT DOD GOL EDO PEG PGE PG4 1PE P6G MPD DMS ACT ACE FMT SO4 PO4 NO3 CL NA K MG CA ZN MN "
    "TRS EPE MES BME DTT IPA EOH MOH ACY BU3 CIT FLC TAR IMD NH4 SCN IOD BR LMT BOG NAG".split()
)


@dataclass(frozen=True)
class TemplateSource:
    """Where templates come from: a complex file, or a protein file plus an SDF of ligands posed in it."""

    protein: Path
    ligands: Path | None = None  # SDF; None: the ligand residues of the complex file
    name: str = ""  # prefix of the template ids (default: the file or folder name)
    pdb_id: str = ""  # default: guessed from the structure header or the file name
    group: str = ""  # target or series, e.g. for leave-one-out benchmarks
    method: str = ""
    resolution: float | None = None

    def describe(self, root: Path | None = None) -> dict:
        """Plain data for the manifest: the files (relative to ``root`` where given) and their SHA-256."""
        files = [self.protein] + ([self.ligands] if self.ligands else [])
        return {
            "files": [display_path(path, root) for path in files],
            "sha256": [hashlib.sha256(path.read_bytes()).hexdigest() for path in files],
            "name": self.name,
            "group": self.group,
            "method": self.method,
        }


def parse_source(text: str | os.PathLike) -> TemplateSource:
    """A source named on the command line (see the module docstring) → :class:`TemplateSource`."""
    text = str(text)
    if "," in text:
        protein, _, ligands = text.partition(",")
        source = TemplateSource(Path(protein), Path(ligands))
    else:
        path = Path(text)
        if path.is_dir():
            return _folder_source(path)
        source = TemplateSource(path)
    for path in (source.protein, source.ligands):
        if path is not None and not path.is_file():
            raise TemplateSourceError(f"template source {path}: no such file; check the path")
    return source


def _folder_source(folder: Path) -> TemplateSource:
    structures = sorted(p for p in folder.iterdir() if p.name.lower().endswith(_STRUCTURE_SUFFIXES))
    sdfs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".sdf")
    if len(structures) != 1 or len(sdfs) > 1:
        raise TemplateSourceError(
            f"template source {folder}: expected one protein/complex file and at most one SDF, found "
            f"{len(structures)} structure file(s) and {len(sdfs)} SDF file(s); name them as PROTEIN.pdb,LIGANDS.sdf"
        )
    return TemplateSource(structures[0], sdfs[0] if sdfs else None, name=folder.name)


def read_templates(source: TemplateSource, pocket_radius: float = POCKET_RADIUS, root: Path | None = None) -> list[TemplateRecord]:
    """Every template complex in one source (ligands that cannot be read are skipped with a warning).

    Record sources name the files relative to ``root`` where given (so a library built from an
    installed package does not record this machine's paths).
    """
    try:
        structure = io.read_structure(source.protein)
    except BadModelError as error:
        raise TemplateSourceError(f"template source {source.protein}: {error}") from None
    protein = io.heavy_atoms(structure)
    name = source.name or _stem(source.ligands or source.protein)
    pdb_id = source.pdb_id or _pdb_id(structure, source)
    method, resolution = source.method or _method(structure), source.resolution or (structure.resolution or None)
    if source.ligands is not None:
        ligands = _sdf_ligands(source.ligands)
        where = display_path(source.ligands, root)
    else:
        ligands = _complex_ligands(structure)
        where = display_path(source.protein, root)
    records = []
    for title, mol in ligands:
        pocket = pocket_around(protein, mol.GetConformer().GetPositions(), pocket_radius)
        if len(pocket) < 4:
            log.warning("%s: ligand %s has %d protein residues within %.0f Å; skipped", where, title, len(pocket), pocket_radius)
            continue
        identifier = title if title.startswith(name) else f"{name}-{title}"
        records.append(TemplateRecord(identifier, mol, pocket, f"{where}#{title}", title, pdb_id, source.group, method, resolution))
    if not records:
        log.warning("template source %s holds no usable ligand", where)
    return records


def _sdf_ligands(path: Path) -> list[tuple[str, Chem.Mol]]:
    """(title, heavy-atom molecule with 3D coordinates) for every readable molecule of an SDF."""
    block = BlockLogs()  # unreadable records are skipped below; RDKit's own warnings would only repeat that
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
        molecules = list(supplier)
    finally:
        del block  # the caller's log settings come back as they were
    found = []
    for number, mol in enumerate(molecules, start=1):
        if mol is None or mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
            log.warning("%s: molecule %d cannot be read as a 3D molecule; skipped", path, number)
            continue
        title = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        heavy = _largest_fragment(Chem.RemoveHs(mol))
        if heavy.GetNumHeavyAtoms() < MIN_LIGAND_ATOMS:
            continue
        found.append((safe_title(title) or str(number), heavy))
    return found


def _complex_ligands(structure: gemmi.Structure) -> list[tuple[str, Chem.Mol]]:
    """Ligand residues of a complex with CCD bond orders and deposited coordinates (matched by atom name)."""
    found = []
    for chain in structure[0]:
        for residue in chain:
            if residue.het_flag != "H" or residue.name in ADDITIVES or residue.is_water():
                continue
            heavy_atoms = {atom.name: atom.pos.tolist() for atom in residue if not atom.is_hydrogen()}
            if len(heavy_atoms) < MIN_LIGAND_ATOMS:
                continue
            mol = _ccd_ligand(residue.name, heavy_atoms)
            if mol is not None:
                found.append((f"{residue.name}_{chain.name}{residue.seqid.num}", mol))
    return found


def _ccd_ligand(code: str, positions: dict[str, list[float]]) -> Chem.Mol | None:
    try:
        ideal = parse_ligand(f"ccd:{code}")
    except BadLigandError as error:
        log.warning("ligand %s: %s; skipped", code, error)
        return None
    names = [atom.GetProp("_Name") if atom.HasProp("_Name") else "" for atom in ideal.GetAtoms()]
    missing = [name for name in names if name not in positions]
    if missing:
        log.warning("ligand %s lacks atoms %s in the model; skipped (incomplete ligands make poor templates)", code, ", ".join(missing[:5]))
        return None
    conformer = Chem.Conformer(ideal.GetNumAtoms())
    for index, name in enumerate(names):
        conformer.SetAtomPosition(index, positions[name])
    conformer.Set3D(True)
    mol = Chem.Mol(ideal)
    mol.RemoveAllConformers()
    mol.AddConformer(conformer, assignId=True)
    Chem.AssignStereochemistryFrom3D(mol)
    return mol


def _largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    fragments = Chem.GetMolFrags(mol, asMols=True)
    return max(fragments, key=lambda m: m.GetNumHeavyAtoms()) if len(fragments) > 1 else mol


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as given."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def safe_title(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", title)[:40]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".sdf", *_STRUCTURE_SUFFIXES):
        name = name.removesuffix(suffix)
    return safe_title(name)


def _pdb_id(structure: gemmi.Structure, source: TemplateSource) -> str:
    entry = structure.info["_entry.id"] if "_entry.id" in structure.info else ""
    if len(entry) == 4 and entry[0].isdigit():
        return entry.upper()
    for candidate in (source.protein.stem, source.protein.parent.name, structure.name):
        match = _PDB_ID.match(candidate)
        if match:
            return match.group(1).upper()
    return ""


def _method(structure: gemmi.Structure) -> str:
    methods = [experiment.method for experiment in structure.meta.experiments if experiment.method]
    return methods[0] if methods else (structure.info["_exptl.method"].strip("'") if "_exptl.method" in structure.info else "")


def build_library(
    sources: Iterable[str | os.PathLike | TemplateSource],
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    rebuild: str = "",
    root: Path | None = None,
    progress: Progress = no_progress,
) -> TemplateLibrary:
    """Read every source, write the library to ``out_dir`` (replaced whole) and return it opened.

    ``rebuild`` is the command that remakes this library, stored so that error messages can
    name it (default: ``ligfit templates build`` with these sources). Source files are named
    relative to ``root`` where given.
    """
    out = Path(out_dir)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):  # say so before reading every source
        raise OutputExistsError(f"output folder {out} exists and is not empty; use --force to replace it")
    resolved = [source if isinstance(source, TemplateSource) else parse_source(source) for source in sources]
    if not resolved:
        raise TemplateSourceError("no template sources given; name complexes (PDB/mmCIF) or PROTEIN.pdb,LIGANDS.sdf pairs")
    records: list[TemplateRecord] = []
    for source in resolved:
        progress(f"reading {source.ligands or source.protein}")
        records.extend(read_templates(source, root=root))
    if not records:
        raise TemplateSourceError(f"none of the {len(resolved)} source(s) holds a ligand with a protein pocket; nothing to build")
    records = _unique_ids(records)
    if not rebuild:
        names = " ".join(f"{s.protein},{s.ligands}" if s.ligands else str(s.protein) for s in resolved)
        rebuild = f"ligfit templates build {names} -o {out_dir} --force"
    write_library(records, out_dir, sources=[source.describe(root) for source in resolved], rebuild=rebuild, force=force)
    return load_library(out_dir)


def _unique_ids(records: list[TemplateRecord]) -> list[TemplateRecord]:
    """Records with ids made unique by a numeric suffix where two sources produced the same one."""
    seen: dict[str, int] = {}
    unique = []
    for record in records:
        count = seen.get(record.id, 0)
        seen[record.id] = count + 1
        if count:
            record = TemplateRecord(**{**record.__dict__, "id": f"{record.id}.{count + 1}"})
        unique.append(record)
    return unique
