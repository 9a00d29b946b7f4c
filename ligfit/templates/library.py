"""The on-disk template library: one record per template complex plus an index for fast search.

Format version 1 (a folder)::

    library.json          manifest, written last: format name and version, template count,
                          fingerprint and pocket definitions, sources (with SHA-256), the
                          command that rebuilds it, and the SHA-256 of index.npz
    index.npz             one row per template (NumPy arrays, no pickles): id, pdb_id, group,
                          record file and its SHA-256, heavy-atom count, principal extents of
                          the ligand (Å), Morgan fingerprint (radius 2, 2048 bits, packed),
                          pocket sequence (one letter per residue) and amino-acid composition
    records/ID.json.gz    one template complex: the ligand as an MDL molfile (heavy atoms,
                          bond orders, coordinates in Å) with its name and SMILES, the pocket
                          residues within ``pocket_radius`` Å of it (chain, number, name, atom
                          count; atom names, elements, coordinates in Å, same frame as the ligand), and
                          source, PDB ID, group, method and resolution where known

A library whose manifest is missing, from another version, or that disagrees with its index
or records is refused with a message that says how to rebuild it. Searching reads only the
index; records are read (and checked against their SHA-256) when a template is used.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.rdBase import BlockLogs
from scipy.spatial import cKDTree

from ligfit import io
from ligfit.io import AtomTable
from ligfit.records import LigandShape
from ligfit.runtime import versions
from ligfit.templates.errors import TemplateLibraryError

log = logging.getLogger(__name__)

FORMAT = "ligfit-templates"
FORMAT_VERSION = 1
#: The packages whose versions shape the records and the index (RDKit: fingerprints and molfiles).
MANIFEST_PACKAGES = ("ligfit", "rdkit", "gemmi", "numpy")
MANIFEST, INDEX, RECORDS = "library.json", "index.npz", "records"
FINGERPRINT_RADIUS, FINGERPRINT_BITS = 2, 2048
POCKET_RADIUS = 8.0  # Å from any ligand heavy atom
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_INDEX_FIELDS = (
    "id",
    "pdb_id",
    "group",
    "record",
    "record_sha256",
    "heavy_atoms",
    "ligand_extents",
    "fingerprint",
    "pocket_sequence",
    "pocket_composition",
)


def shipped_library_path() -> Path:
    """Where the library shipped with ligfit lives: ``templates/`` of a source checkout, else the installed copy."""
    source = Path(__file__).resolve().parents[2] / "templates"
    if (source / "library.json").is_file():
        return source
    return Path(__file__).resolve().parents[1] / "shipped_templates"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Pocket:
    """Amino-acid residues around a ligand; coordinates in Å in the frame of their structure."""

    chain: np.ndarray  # (r,) per residue
    residue_number: np.ndarray  # (r,)
    residue_name: np.ndarray  # (r,) three-letter names
    atom_residue: np.ndarray  # (a,) index of each atom's residue
    atom_name: np.ndarray  # (a,)
    elements: np.ndarray  # (a,)
    coordinates: np.ndarray  # (a, 3)

    def __len__(self) -> int:
        return len(self.residue_name)

    @property
    def sequence(self) -> str:
        """One-letter codes of the residues in order (X for unknown ones)."""
        return "".join(_one_letter(name) for name in self.residue_name)

    def calpha(self) -> np.ndarray:
        """Cα coordinates (r, 3), Å; NaN for residues without a CA atom."""
        positions = np.full((len(self), 3), np.nan)
        is_ca = self.atom_name == "CA"
        positions[self.atom_residue[is_ca]] = self.coordinates[is_ca]
        return positions

    def composition(self) -> np.ndarray:
        """How many of each of the 20 standard amino acids (order of ``AMINO_ACIDS``)."""
        sequence = self.sequence
        return np.array([sequence.count(letter) for letter in AMINO_ACIDS], dtype=np.uint8)

    def structure(self) -> gemmi.Structure:
        """The pocket as a gemmi Structure (occupancy 1, B 30 Å²), e.g. to write it out or simulate its density."""
        structure = gemmi.Structure()
        structure.add_model(gemmi.Model(1))
        chains: dict[str, gemmi.Chain] = {}
        for index in range(len(self)):
            residue = gemmi.Residue()
            residue.name = str(self.residue_name[index])
            residue.seqid = gemmi.SeqId(int(self.residue_number[index]), " ")
            residue.entity_type = gemmi.EntityType.Polymer
            for atom_index in np.flatnonzero(self.atom_residue == index):
                residue.add_atom(io.new_atom(self.atom_name[atom_index], self.elements[atom_index], self.coordinates[atom_index]))
            chains.setdefault(str(self.chain[index]), gemmi.Chain(str(self.chain[index]))).add_residue(residue)
        for chain in chains.values():
            structure[0].add_chain(chain)
        structure.setup_entities()
        return structure

    def atom_table(self) -> AtomTable:
        """The pocket's heavy atoms as an :class:`~ligfit.io.AtomTable` (e.g. to stand in for a model)."""
        return AtomTable(
            self.coordinates,
            self.elements,
            self.chain[self.atom_residue],
            self.residue_number[self.atom_residue],
            self.residue_name[self.atom_residue],
            self.atom_name,
        )


def pocket_around(protein: AtomTable, points: np.ndarray, radius: float = POCKET_RADIUS) -> Pocket:
    """The amino-acid residues of ``protein`` with a heavy atom within ``radius`` Å of any of ``points``."""
    if len(protein) == 0 or len(points) == 0:
        return _empty_pocket()
    distances, _ = cKDTree(np.asarray(points, dtype=float)).query(protein.coordinates, distance_upper_bound=radius)
    keys = np.char.add(np.char.add(protein.chain.astype(str), ":"), protein.residue_number.astype(str))
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    atom_residue = np.cumsum(np.r_[True, keys[1:] != keys[:-1]]) - 1
    near = np.maximum.reduceat(np.isfinite(distances), starts)
    amino = np.array([io.is_amino_acid(name) for name in protein.residue_name[starts]], dtype=bool)
    chosen = np.flatnonzero(near & amino)
    if len(chosen) == 0:
        return _empty_pocket()
    renumber = np.full(len(starts), -1)
    renumber[chosen] = np.arange(len(chosen))
    atoms = renumber[atom_residue] >= 0
    return Pocket(
        chain=protein.chain[starts][chosen].astype(str),
        residue_number=protein.residue_number[starts][chosen].astype(int),
        residue_name=protein.residue_name[starts][chosen].astype(str),
        atom_residue=renumber[atom_residue][atoms],
        atom_name=protein.atom_name[atoms].astype(str),
        elements=protein.elements[atoms].astype(str),
        coordinates=protein.coordinates[atoms].astype(float),
    )


def _empty_pocket() -> Pocket:
    text = np.array([], dtype=str)
    return Pocket(text, np.array([], dtype=int), text, np.array([], dtype=int), text, text, np.zeros((0, 3)))


def _one_letter(name: str) -> str:
    info = gemmi.find_tabulated_residue(str(name))
    letter = info.one_letter_code.upper() if info is not None else " "
    return letter if letter in AMINO_ACIDS else "X"


@dataclass(frozen=True)
class TemplateRecord:
    """One template complex: the ligand (heavy atoms, bond orders, coordinates in Å) and its pocket, in one frame."""

    id: str
    ligand: Chem.Mol
    pocket: Pocket
    source: str
    ligand_name: str = ""
    pdb_id: str = ""
    group: str = ""  # target or congeneric series, for leave-out benchmarks
    method: str = ""
    resolution: float | None = None  # Å, where known

    @property
    def ligand_coordinates(self) -> np.ndarray:
        """Heavy-atom coordinates of the ligand (n, 3), Å."""
        return self.ligand.GetConformer().GetPositions()

    def to_json(self) -> dict:
        """The record as plain data (the content of ``records/ID.json.gz``)."""
        pocket = self.pocket
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "id": self.id,
            "source": self.source,
            "pdb_id": self.pdb_id,
            "group": self.group,
            "method": self.method,
            "resolution_A": self.resolution,
            "ligand": {"name": self.ligand_name, "smiles": Chem.MolToSmiles(self.ligand), "molfile": Chem.MolToMolBlock(self.ligand)},
            "pocket": {
                "residues": [[c, int(n), r] for c, n, r in zip(pocket.chain, pocket.residue_number, pocket.residue_name)],
                "atoms_per_residue": np.bincount(pocket.atom_residue, minlength=len(pocket)).tolist(),
                "atom_name": pocket.atom_name.tolist(),
                "element": pocket.elements.tolist(),
                "xyz": np.round(pocket.coordinates, 3).ravel().tolist(),
            },
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> TemplateRecord:
        """Rebuild a record from :meth:`to_json` output; ``where`` names the file in errors."""
        try:
            ligand = Chem.MolFromMolBlock(data["ligand"]["molfile"], removeHs=False)
            pocket_data = data["pocket"]
            residues = pocket_data["residues"]
            pocket = Pocket(
                chain=np.array([r[0] for r in residues], dtype=str),
                residue_number=np.array([r[1] for r in residues], dtype=int),
                residue_name=np.array([r[2] for r in residues], dtype=str),
                atom_residue=np.repeat(np.arange(len(residues)), pocket_data["atoms_per_residue"]),
                atom_name=np.array(pocket_data["atom_name"], dtype=str),
                elements=np.array(pocket_data["element"], dtype=str),
                coordinates=np.array(pocket_data["xyz"], dtype=float).reshape(-1, 3),
            )
            record = cls(
                id=data["id"],
                ligand=ligand,
                pocket=pocket,
                source=data["source"],
                ligand_name=data["ligand"]["name"],
                pdb_id=data["pdb_id"],
                group=data["group"],
                method=data["method"],
                resolution=data["resolution_A"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise TemplateLibraryError(f"{where}: not a valid template record ({error!r}); rebuild the library") from None
        if ligand is None or ligand.GetNumConformers() == 0:
            raise TemplateLibraryError(f"{where}: the ligand molfile cannot be read; rebuild the library")
        return record


def ligand_fingerprint(mol: Chem.Mol) -> np.ndarray:
    """Morgan fingerprint (radius 2, 2048 bits) of the neutralised heavy-atom graph, packed into 256 bytes.

    Charges are removed first so that a ligand drawn at pH 7 matches its neutral template.
    """
    heavy = Chem.RemoveHs(mol)
    block = BlockLogs()  # the uncharger logs every charge it removes
    neutral = rdMolStandardize.Uncharger().uncharge(heavy)
    del block
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=FINGERPRINT_RADIUS, fpSize=FINGERPRINT_BITS)
    return np.packbits(generator.GetFingerprintAsNumPy(neutral).astype(bool))


_BITS_SET = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)  # np.bitwise_count needs NumPy 2


def tanimoto(query: np.ndarray, fingerprints: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of one packed fingerprint to each row of ``fingerprints``."""
    common = _BITS_SET[fingerprints & query].sum(axis=1, dtype=np.int64)
    either = _BITS_SET[fingerprints | query].sum(axis=1, dtype=np.int64)
    return np.where(either > 0, common / np.maximum(either, 1), 0.0)


# --------------------------------------------------------------------------- the library


@dataclass(frozen=True)
class TemplateIndex:
    """The search index: one row per template (see the module docstring for the columns)."""

    id: np.ndarray
    pdb_id: np.ndarray
    group: np.ndarray
    record: np.ndarray
    record_sha256: np.ndarray
    heavy_atoms: np.ndarray
    ligand_extents: np.ndarray  # (n, 3) Å, root-mean-square spread along principal axes
    fingerprint: np.ndarray  # (n, 256) uint8
    pocket_sequence: np.ndarray
    pocket_composition: np.ndarray  # (n, 20) uint8

    def __len__(self) -> int:
        return len(self.id)

    def take(self, positions: np.ndarray) -> TemplateIndex:
        return TemplateIndex(**{name: getattr(self, name)[positions] for name in _INDEX_FIELDS})


class TemplateLibrary:
    """An opened template library: the index in memory; records read on demand and kept."""

    def __init__(self, folder: Path, manifest: dict, index: TemplateIndex, records: dict[str, TemplateRecord] | None = None):
        self.folder = folder
        self.manifest = manifest
        self.index = index
        self._records = records if records is not None else {}

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"TemplateLibrary({str(self.folder)!r}, {len(self)} templates)"

    @property
    def pocket_radius(self) -> float:
        return float(self.manifest["pocket_radius_A"])

    def record(self, position: int) -> TemplateRecord:
        """The template at ``position`` in the index, read from its record file (checked against the index)."""
        identifier = str(self.index.id[position])
        if identifier not in self._records:
            path = self.folder / RECORDS / str(self.index.record[position])
            if not path.is_file():
                raise TemplateLibraryError(f"{path} is missing: the library {self.folder} is half-written; {rebuild_advice(self)}")
            payload = path.read_bytes()
            if hashlib.sha256(payload).hexdigest() != self.index.record_sha256[position]:
                raise TemplateLibraryError(f"{path} does not match the index (damaged or half-written); {rebuild_advice(self)}")
            self._records[identifier] = TemplateRecord.from_json(json.loads(gzip.decompress(payload)), str(path))
        return self._records[identifier]

    def subset(self, keep: np.ndarray) -> TemplateLibrary:
        """A view holding only the templates where ``keep`` (boolean, one per template) is true."""
        return TemplateLibrary(self.folder, self.manifest, self.index.take(np.flatnonzero(keep)), self._records)

    def without(self, *, ids: Iterable[str] = (), pdb_ids: Iterable[str] = (), groups: Iterable[str] = ()) -> TemplateLibrary:
        """A view without the named templates, PDB entries or groups (for leave-out benchmarks)."""
        pdb_ids = {p.upper() for p in pdb_ids}
        drop = np.isin(self.index.id, list(ids)) | np.isin(np.char.upper(self.index.pdb_id.astype(str)), list(pdb_ids))
        drop |= np.isin(self.index.group, list(groups))
        return self.subset(~drop)

    def describe(self) -> dict:
        """What the library holds, for ``ligfit templates info``."""
        heavy = self.index.heavy_atoms
        groups, counts = np.unique(self.index.group, return_counts=True)
        return {
            "folder": str(self.folder),
            "format": f"{self.manifest['format']} version {self.manifest['version']}",
            "templates": len(self),
            "pdb_entries": int(len({p for p in self.index.pdb_id if p})),
            "groups": {str(g): int(c) for g, c in zip(groups, counts) if g},
            "ligand_heavy_atoms": {"min": int(heavy.min()), "median": float(np.median(heavy)), "max": int(heavy.max())}
            if len(self)
            else {},
            "pocket_residues_median": float(np.median([len(s) for s in self.index.pocket_sequence])) if len(self) else 0.0,
            "fingerprint": self.manifest["fingerprint"],
            "pocket_radius_A": self.manifest["pocket_radius_A"],
            "sources": self.manifest["sources"],
            "rebuild": self.manifest.get("rebuild", ""),
            "built_with": self.manifest.get("built_with", {}),
        }


def rebuild_advice(library_or_folder: TemplateLibrary | Path, manifest: dict | None = None) -> str:
    """How to rebuild a library: the command recorded in its manifest, else the generic one."""
    if isinstance(library_or_folder, TemplateLibrary):
        folder, manifest = library_or_folder.folder, library_or_folder.manifest
    else:
        folder = library_or_folder
    command = (manifest or {}).get("rebuild") or f"ligfit templates build SRC... -o {folder} --force"
    return f"rebuild it with `{command}`"


# --------------------------------------------------------------------------- writing


def write_library(
    records: Sequence[TemplateRecord],
    folder: str | os.PathLike,
    *,
    sources: list[dict],
    rebuild: str = "",
    force: bool = False,
) -> Path:
    """Write ``records`` as a library folder (records, index, manifest last), replacing ``folder`` whole.

    Files are byte-for-byte reproducible (no timestamps), so a rebuilt library diffs cleanly.
    """
    identifiers = [r.id for r in records]
    if len(set(identifiers)) != len(identifiers):
        raise ValueError("template ids must be unique")
    with io.output_folder(folder, force=force) as temporary:
        (temporary / RECORDS).mkdir()
        record_files, record_hashes = [], []
        for record in records:
            name = f"{safe_name(record.id)}.json.gz"
            payload = gzip.compress(json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True).encode(), mtime=0)
            (temporary / RECORDS / name).write_bytes(payload)
            record_files.append(name)
            record_hashes.append(hashlib.sha256(payload).hexdigest())
        index = _index_of(records, record_files, record_hashes)
        _write_npz(temporary / INDEX, {name: getattr(index, name) for name in _INDEX_FIELDS})
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "templates": len(records),
            "fingerprint": {"kind": "morgan", "radius": FINGERPRINT_RADIUS, "bits": FINGERPRINT_BITS, "neutralised": True},
            "pocket_radius_A": POCKET_RADIUS,
            "sources": sources,
            "rebuild": rebuild,
            "built_with": versions(MANIFEST_PACKAGES),
            "index_sha256": hashlib.sha256((temporary / INDEX).read_bytes()).hexdigest(),
        }
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return Path(folder)


def _index_of(records: Sequence[TemplateRecord], record_files: list[str], record_hashes: list[str]) -> TemplateIndex:
    count = len(records)
    return TemplateIndex(
        id=np.array([r.id for r in records], dtype=str),
        pdb_id=np.array([r.pdb_id for r in records], dtype=str),
        group=np.array([r.group for r in records], dtype=str),
        record=np.array(record_files, dtype=str),
        record_sha256=np.array(record_hashes, dtype=str),
        heavy_atoms=np.array([r.ligand.GetNumHeavyAtoms() for r in records], dtype=np.int32),
        ligand_extents=np.array(
            [LigandShape.from_conformers(r.ligand_coordinates[None]).extents for r in records], dtype=np.float32
        ).reshape(count, 3),
        fingerprint=np.array([ligand_fingerprint(r.ligand) for r in records], dtype=np.uint8).reshape(count, FINGERPRINT_BITS // 8),
        pocket_sequence=np.array([r.pocket.sequence for r in records], dtype=str),
        pocket_composition=np.array([r.pocket.composition() for r in records], dtype=np.uint8).reshape(count, len(AMINO_ACIDS)),
    )


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz with fixed timestamps (np.savez stamps the current time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def safe_name(identifier: str) -> str:
    """A file-name-safe version of a template id."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", identifier)


# --------------------------------------------------------------------------- reading


def load_library(folder: str | os.PathLike) -> TemplateLibrary:
    """Open a library folder: read and check its manifest and index (records are read when used).

    Raises :class:`TemplateLibraryError` naming the problem and the fix when the folder is
    missing, empty, from another format version, or half-written.
    """
    folder = Path(folder)
    if not folder.exists():
        raise TemplateLibraryError(f"template library {folder} does not exist; build one with `ligfit templates build SRC... -o {folder}`")
    if not folder.is_dir():
        raise TemplateLibraryError(
            f"template library {folder} is a file, not a library folder; give the folder `ligfit templates build` wrote"
        )
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        if not any(folder.iterdir()):
            raise TemplateLibraryError(f"template library {folder} is empty; build one with `ligfit templates build SRC... -o {folder}`")
        raise TemplateLibraryError(
            f"template library {folder} has no {MANIFEST}: it is half-written or not a template library; {rebuild_advice(folder)}"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TemplateLibraryError(f"{manifest_path} is damaged ({error}); {rebuild_advice(folder)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TemplateLibraryError(
            f"{folder} is not a ligfit template library ({MANIFEST} names no {FORMAT!r} format); {rebuild_advice(folder)}"
        )
    if manifest.get("version") != FORMAT_VERSION:
        raise TemplateLibraryError(
            f"template library {folder} has format version {manifest.get('version')!r}; this ligfit reads version "
            f"{FORMAT_VERSION}; {rebuild_advice(folder, manifest)}"
        )
    index = _read_index(folder, manifest)
    if len(index) == 0:
        raise TemplateLibraryError(
            f"template library {folder} holds no templates; {rebuild_advice(folder, manifest)} from sources that contain ligands"
        )
    records_folder = folder / RECORDS
    present = {entry.name for entry in os.scandir(records_folder)} if records_folder.is_dir() else set()
    missing = [name for name in index.record if name not in present]
    if missing:
        raise TemplateLibraryError(
            f"template library {folder} is half-written: {len(missing)} of {len(index)} record files are missing "
            f"(e.g. {RECORDS}/{missing[0]}); {rebuild_advice(folder, manifest)}"
        )
    return TemplateLibrary(folder, manifest, index)


def library_for_build(folder: str | os.PathLike | None = None) -> TemplateLibrary | None:
    """The library a build uses: the one named (its errors raised), else the shipped one.

    A shipped library that is missing or broken is logged and skipped (None): the build goes
    on from the density alone rather than failing over an optional aid.
    """
    if folder is not None:
        return load_library(folder)
    try:
        return load_library(shipped_library_path())
    except TemplateLibraryError as error:
        log.warning("shipped template library not used: %s; docking without templates", error)
        return None


def _read_index(folder: Path, manifest: dict) -> TemplateIndex:
    path = folder / INDEX
    if not path.is_file():
        raise TemplateLibraryError(f"template library {folder} has no {INDEX}: it is half-written; {rebuild_advice(folder, manifest)}")
    payload = path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != manifest.get("index_sha256"):
        raise TemplateLibraryError(f"{path} does not match {MANIFEST} (half-written or edited); {rebuild_advice(folder, manifest)}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            columns = {name: arrays[name] for name in _INDEX_FIELDS}
    except (KeyError, ValueError, zipfile.BadZipFile) as error:
        raise TemplateLibraryError(f"{path} cannot be read ({error}); {rebuild_advice(folder, manifest)}") from None
    index = TemplateIndex(**columns)
    if len({len(column) for column in columns.values()}) != 1 or len(index) != manifest.get("templates"):
        raise TemplateLibraryError(f"{path} disagrees with {MANIFEST} on the number of templates; {rebuild_advice(folder, manifest)}")
    return index
