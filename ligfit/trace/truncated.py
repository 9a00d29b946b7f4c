"""Side chains a given model cuts short, completed into the map so that their density is not taken for a ligand.

Real models stop side chains at Cβ where the density looked weak or unclear, yet the map often holds
them. Their density is then left unexplained and, next to a ligand, joins the ligand's blob (on the
realistic benchmark, ≥ 5 % of the ligand's blob in 20 of 48 misses; completed, 6 maps were gained and
5 lost: docs/benchmarks.md "Round 25"). Each amino acid with a Cβ and at least two side-chain atoms missing is completed with the
ideal CCD side chain on its own backbone (``ligfit.backbone.geometry``), turned to the grid rotamer that
best fits the map while avoiding the rest of the model, and its χ angles then refined
(``ligfit.backbone.side_chains``). The residues of loops ``ligfit.trace.loops`` built are completed the same way
when the model's sequence names them (an UNK residue's side chain may be any, so it is left at Cβ). Like those loops,
these side chains explain density; they are never written into the user's model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gemmi
import numpy as np

from ligfit import io, maps
from ligfit.backbone.geometry import full_atoms
from ligfit.backbone.side_chains import fit_rotamers
from ligfit.io import SIDE_CHAIN_ATOMS
from ligfit.maps import DensityMap

log = logging.getLogger(__name__)

#: A side chain missing at least this many heavy atoms beyond Cβ is cut short (as ``ligfit.segment.attachments`` reads it).
MIN_MISSING_ATOMS = 2
#: Degrees: each χ of the best grid rotamer is then moved by these steps while the fit improves (on the Tyk2 example's
#: 29 side chains nearest its ligand, cut to Cβ: median RMSD to the deposited side chain 0.78 Å on the grid, 0.45 Å refined).
REFINE_STEPS = (20.0, 10.0)
#: The atoms of a truncated residue kept as the model has them.
_KEPT = frozenset({"N", "CA", "C", "O", "OXT", "CB"})


#: A completed side chain is kept only where the map holds it: the mean normalised density at its atoms beyond Cβ at
#: least this fraction of the median at the model's own side-chain atoms. Deposited models cut side chains short where
#: the density is absent: in maps simulated from such models (PoseBusters pockets at 3 Å) the completed side chains sat
#: at −0.2–1.6 σ, against 2.2–4.5 σ where the map holds them (the realistic cases), the model's own at ~3 σ.
MIN_SUPPORT = 0.5


@dataclass(frozen=True)
class SideChainCompletion:
    """The model with its truncated side chains completed where the map holds them, and which ("A123 LYS").

    ``loop_side_chains``: the side chains of built loops' residues completed likewise (their names from the sequence).
    """

    structure: gemmi.Structure
    completed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # left truncated: the map does not hold them
    loop_side_chains: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        summary = {"completed": len(self.completed), "residues": self.completed, "left_truncated": self.unsupported}
        if self.loop_side_chains:
            summary["loop_side_chains"] = self.loop_side_chains
        return summary


def _truncated(residue: gemmi.Residue) -> bool:
    """A side chain to complete: one the model cuts short, or one of a loop ``ligfit.trace.loops`` built whose type the
    model's sequence names (an UNK residue's side chain may be any)."""
    if residue.name not in SIDE_CHAIN_ATOMS or residue.name == "UNK":
        return False
    names = {atom.name for atom in residue if not atom.is_hydrogen()}
    if not {"N", "CA", "C", "O", "CB"} <= names:
        return False
    side = sum(name not in _KEPT for name in names)
    return SIDE_CHAIN_ATOMS[residue.name] - side >= MIN_MISSING_ATOMS


def complete_side_chains(structure: gemmi.Structure, density: DensityMap) -> SideChainCompletion:
    """``structure`` (first model) with every truncated side chain completed and fitted into ``density`` (any scale).

    Built loops' residues are completed too, where the model's sequence names them.
    """
    places = [
        (chain_index, residue_index)
        for chain_index, chain in enumerate(structure[0])
        for residue_index, residue in enumerate(chain)
        if _truncated(residue)
    ]
    if not places:
        return SideChainCompletion(structure)
    residues = [structure[0][c][r] for c, r in places]

    def xyz(residue: gemmi.Residue, name: str) -> np.ndarray:
        return np.array(residue.find_atom(name, "*").pos.tolist())

    backbone = {name: np.array([xyz(residue, name) for residue in residues]) for name in ("N", "CA", "C", "O", "CB")}
    names = [residue.name for residue in residues]
    built = full_atoms(backbone["N"], backbone["CA"], backbone["C"], backbone["O"], names)
    # the model's own Cβ (the ideal one differs by a few tenths of an Å); the rotamers turn about it
    built = [[(a, e, backbone["CB"][row] if a == "CB" else p) for a, e, p in atoms] for row, atoms in enumerate(built)]
    own = {(c, r) for c, r in places}
    others = np.array(
        [
            atom.pos.tolist()
            for c, chain in enumerate(structure[0])
            for r, residue in enumerate(chain)
            if (c, r) not in own
            for atom in residue
            if not atom.is_hydrogen()
        ]
    ).reshape(-1, 3)
    normalised = maps.normalise(density)
    fitted = fit_rotamers(built, names, normalised, obstacles=others, refine=REFINE_STEPS)
    floor = MIN_SUPPORT * _own_side_chain_density(structure, own, normalised)
    completed = structure.clone()
    labels, unsupported, in_loops = [], [], []
    for (c, r), atoms in zip(places, fitted):
        residue = completed[0][c][r]
        in_loop = residue.flag == io.BUILT_RESIDUE_FLAG
        label = f"{completed[0][c].name}{residue.seqid.num} {residue.name}"
        side = np.array([position for name, _, position in atoms if name not in _KEPT]).reshape(-1, 3)
        if not len(side) or float(normalised.interpolate(side).mean()) < floor:
            if not in_loop:  # a built loop's residue is not the model's: nothing to report as left truncated
                unsupported.append(label)
            continue
        b_iso = _mean_b(residue)
        for k in reversed(range(len(residue))):  # the model's few atoms beyond Cβ give way to the fitted side chain
            if residue[k].name not in _KEPT:
                del residue[k]
        for name, element, position in atoms:
            if name in _KEPT:
                continue
            atom = gemmi.Atom()
            atom.name, atom.element, atom.pos = name, gemmi.Element(element), gemmi.Position(*map(float, position))
            atom.occ, atom.b_iso = 1.0, b_iso
            residue.add_atom(atom)
        (in_loops if in_loop else labels).append(label)
    log.info(
        "completed %d truncated side chain(s) and %d of built loops into the map to explain their density (%d left: the map "
        "does not hold them)",
        len(labels),
        len(in_loops),
        len(unsupported),
    )
    if not labels and not in_loops:
        return SideChainCompletion(structure, [], unsupported)
    return SideChainCompletion(completed, labels, unsupported, in_loops)


def _own_side_chain_density(structure: gemmi.Structure, skip: set[tuple[int, int]], normalised: DensityMap) -> float:
    """Median normalised density at the model's own atoms beyond Cβ inside the map (1 σ when it has none there)."""
    atoms = np.array(
        [
            atom.pos.tolist()
            for c, chain in enumerate(structure[0])
            for r, residue in enumerate(chain)
            if (c, r) not in skip and residue.name in SIDE_CHAIN_ATOMS
            for atom in residue
            if atom.name not in _KEPT and not atom.is_hydrogen()
        ]
    ).reshape(-1, 3)
    atoms = atoms[normalised.contains(atoms)]
    return float(np.median(normalised.interpolate(atoms))) if len(atoms) else 1.0


def _mean_b(residue: gemmi.Residue) -> float:
    values = [atom.b_iso for atom in residue]
    return float(np.mean(values)) if values else 30.0
