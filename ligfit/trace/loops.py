"""Short gaps in a given model built through the density, so that an unmodelled loop is not taken for a ligand.

Real models leave loops out where the density is weak or hard to build. When the loop is in the
map, its density is left unexplained: next to a ligand the two form one blob, which the segmentation
then marks as unmodelled protein, ligand and all. For each gap of a few residues between two
residues of one chain (numbering says how many are missing), the Cα path is searched as a beam:
3.8 Å steps over a sphere of directions, the first and last Cα at peptide distance from the
flanking C and N, Cα–Cα–Cα angles as in proteins, no clash with the model, and the path reaching
the far end with the residues left, ranked by the difference density at its Cα and along its links;
the best paths are then rescored by the density at their whole backbone and Cβ (a Cα path alone runs
as well through a ligand beside the loop). Backbone atoms come from the peptide table
(``ligfit.backbone.geometry``), Cβ from ideal geometry, residue names from the model's sequence
when it has one (else UNK). Side chains are not built here: where the sequence names a residue,
``ligfit.trace.truncated`` completes its side chain into the map as it does the model's truncated
ones. A loop is kept only where the density holds it (``LoopOptions.min_density``); the rest stay
gaps. The loops are used to explain density, never written into the user's model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ligfit import io
from ligfit.backbone import geometry
from ligfit.maps import DensityMap

log = logging.getLogger(__name__)

#: Å between consecutive Cα (trans peptides).
CA_STEP = 3.8
#: Å from a residue's C to the next residue's Cα, and from a residue's Cα to the next residue's N (the peptide's own geometry).
PEPTIDE_REACH = 2.43
#: The name of a built residue whose type the model's sequence does not give (backbone and Cβ; its side chain may be any).
UNKNOWN = "UNK"
#: Å: a C–N pair closer than this is a peptide bond (as ``ligfit.segment`` reads chain breaks).
PEPTIDE_BOND_MAX = 2.0


@dataclass(frozen=True)
class LoopOptions:
    """How gaps are built; the defaults are the ones the realistic benchmark measured."""

    max_residues: int = 8  # longer gaps stay open: their path is too free for the density to pin down
    directions: int = 240  # per step, on a sphere of CA_STEP
    beam: int = 400
    reach_tolerance: float = 0.35  # Å, on PEPTIDE_REACH at both ends and CA_STEP at the last link
    min_angle: float = 80.0  # degrees, Cα(i-1)–Cα(i)–Cα(i+1)
    max_angle: float = 150.0
    clash_distance: float = 3.0  # Å, a new Cα to any model heavy atom (the flanking residues' own backbone excepted)
    new_ca_distance: float = 4.2  # Å, between new Cα not consecutive
    density_cap: float = 4.0  # σ: one strong spot does not pay for a path elsewhere in noise
    min_density: float = 2.5  # σ: the mean difference density along a kept loop (Cα and link points)
    rescore: int = 50  # the best paths rescored by the density at their N, Cα, C, O and Cβ (0: the Cα path's own score)
    # The coarse search every gap gets first; only a gap whose coarse path comes within coarse_margin σ of min_density
    # gets the full one (on the realistic maps the loops in the map score 3.2–3.7 σ, the gaps of a cut pocket ≤ 1.5 σ).
    coarse_beam: int = 50
    coarse_directions: int = 120
    coarse_margin: float = 1.0

    def coarse(self, directions: int | None = None) -> LoopOptions:
        """The coarse search's options (``directions``: another sphere than ``coarse_directions``)."""
        return replace(self, beam=self.coarse_beam, directions=directions or self.coarse_directions, rescore=0)


@dataclass(frozen=True)
class BuiltLoop:
    """One gap filled: its chain (name, and place in the model: names may repeat), the residue numbers around it, the new residues."""

    chain: str
    chain_index: int
    after: int
    before: int
    names: list[str]
    atoms: list[list[tuple[str, str, np.ndarray]]]  # per residue: (atom name, element, xyz)
    density: float  # mean difference density (σ) along the path

    def describe(self) -> str:
        return f"{self.chain}:{self.after + 1}-{self.before - 1} ({len(self.names)} residues, {self.density:.1f} σ)"


@dataclass(frozen=True)
class LoopResult:
    """The model with its buildable gaps filled, and what was built or left open."""

    structure: gemmi.Structure
    built: list[BuiltLoop] = field(default_factory=list)
    open_gaps: list[str] = field(default_factory=list)  # "A:57-62 (4 residues): why"

    def summary(self) -> dict:
        return {"built": [loop.describe() for loop in self.built], "left_open": self.open_gaps}


@dataclass(frozen=True)
class _Gap:
    chain: str
    chain_index: int
    first: gemmi.Residue  # the residue before the gap
    last: gemmi.Residue  # the residue after it
    missing: int
    previous_ca: np.ndarray | None  # Cα before ``first`` (for the backbone's quadrilaterals), when bonded
    next_ca: np.ndarray | None
    names: list[str]


def build_missing_loops(structure: gemmi.Structure, difference: DensityMap, options: LoopOptions | None = None) -> LoopResult:
    """The model with the gaps of ≤ ``max_residues`` residues that the ``difference`` map (σ units) holds built in."""
    options = options or LoopOptions()
    gaps = _gaps(structure, options)
    if not gaps:
        return LoopResult(structure)
    model_xyz = io.heavy_atoms(structure, exclude_residues=frozenset()).coordinates
    built, open_gaps = [], []
    for gap in gaps:
        label = f"{gap.chain}:{gap.first.seqid.num + 1}-{gap.last.seqid.num - 1} ({gap.missing} residues)"
        # a coarse search first: a gap whose loop is not in the map (most) costs a tenth of the full one
        path = _best_path(gap, difference, model_xyz, options.coarse())
        if path is None:  # the coarse sphere may miss a tight path: the full sphere, the coarse beam
            path = _best_path(gap, difference, model_xyz, options.coarse(directions=options.directions))
        if path is not None and path[1] >= options.min_density - options.coarse_margin:
            path = _best_path(gap, difference, model_xyz, options)
        if path is None:
            open_gaps.append(f"{label}: no path of that length joins its ends")
            continue
        ca, density = path
        if density < options.min_density:
            open_gaps.append(f"{label}: the density along the best path is {density:.1f} σ")
            continue
        built.append(
            BuiltLoop(gap.chain, gap.chain_index, gap.first.seqid.num, gap.last.seqid.num, gap.names, _residue_atoms(gap, ca), density)
        )
    if not built:
        return LoopResult(structure, [], open_gaps)
    for loop in built:
        log.info("built the unmodelled loop %s to explain its density", loop.describe())
    return LoopResult(_with_loops(structure, built), built, open_gaps)


def _gaps(structure: gemmi.Structure, options: LoopOptions) -> list[_Gap]:
    found = []
    sequences = _sequences(structure)
    for chain_index, chain in enumerate(structure[0]):
        residues = [r for r in chain if all(r.find_atom(name, "*") is not None for name in ("N", "CA", "C"))]  # HIE, MSE, ... too
        for index in range(len(residues) - 1):
            first, last = residues[index], residues[index + 1]
            missing = last.seqid.num - first.seqid.num - 1
            if not 1 <= missing <= options.max_residues or last.seqid.icode != " " or first.seqid.icode != " ":
                continue
            if first.find_atom("C", "*").pos.dist(last.find_atom("N", "*").pos) < PEPTIDE_BOND_MAX:
                continue  # numbered with a gap, but bonded: nothing is missing
            span = first.find_atom("CA", "*").pos.dist(last.find_atom("CA", "*").pos)
            if span > CA_STEP * (missing + 1) - 0.2:
                continue
            previous = residues[index - 1] if index > 0 and residues[index - 1].seqid.num == first.seqid.num - 1 else None
            following = residues[index + 2] if index + 2 < len(residues) and residues[index + 2].seqid.num == last.seqid.num + 1 else None
            found.append(
                _Gap(
                    chain.name,
                    chain_index,
                    first,
                    last,
                    missing,
                    None if previous is None else _xyz(previous, "CA"),
                    None if following is None else _xyz(following, "CA"),
                    _gap_names(sequences.get(chain_index), first, last, missing),
                )
            )
    return found


def _sequences(structure: gemmi.Structure) -> dict[int, list[str]]:
    """Each chain's full sequence (residue names) by its place in the model, where the file gives one (SEQRES, entity_poly_seq)."""
    by_subchain = {}
    for entity in structure.entities:
        if entity.entity_type == gemmi.EntityType.Polymer and entity.full_sequence:
            names = [gemmi.Entity.first_mon(item) for item in entity.full_sequence]
            by_subchain.update(dict.fromkeys(entity.subchains, names))
    by_chain = {}
    for index, chain in enumerate(structure[0]):
        names = next((by_subchain[residue.subchain] for residue in chain if residue.subchain in by_subchain), None)
        if names is not None:
            by_chain[index] = names
    return by_chain


def _gap_names(sequence: list[str] | None, first: gemmi.Residue, last: gemmi.Residue, missing: int) -> list[str]:
    """The missing residues' names from the sequence when its numbering agrees with the model's, else UNK (unknown type)."""
    if sequence and first.label_seq and last.label_seq and last.label_seq - first.label_seq - 1 == missing:
        names = sequence[first.label_seq : last.label_seq - 1]
        if len(names) == missing and all(io.is_amino_acid(name) for name in names):
            return list(names)
    return [UNKNOWN] * missing


def _xyz(residue: gemmi.Residue, name: str) -> np.ndarray:
    return np.array(residue.find_atom(name, "*").pos.tolist())


def _best_path(gap: _Gap, difference: DensityMap, model_xyz: np.ndarray, options: LoopOptions) -> tuple[np.ndarray, float] | None:
    """The new Cα (missing, 3) with the most density that join the gap's ends, and the mean density along them."""
    start, end = _xyz(gap.first, "CA"), _xyz(gap.last, "CA")
    carbon, nitrogen = _xyz(gap.first, "C"), _xyz(gap.last, "N")
    flanks = np.array(
        [start, end, carbon, nitrogen, *(_xyz(r, a) for r in (gap.first, gap.last) for a in ("N", "O") if r.find_atom(a, "*"))]
    )
    flank_tree = cKDTree(flanks)
    near = model_xyz[np.linalg.norm(model_xyz - (start + end) / 2, axis=1) < CA_STEP * (gap.missing + 2)]
    # the flanking residues' own backbone may sit close to the first and last new Cα
    distance_to_flank, _ = flank_tree.query(near)
    walls = cKDTree(near[distance_to_flank > 0.01]) if len(near) else None
    steps = geometry.sphere_directions(options.directions) * CA_STEP
    capped = lambda points: np.clip(difference.interpolate(points), -options.density_cap, options.density_cap)  # noqa: E731

    paths = start[None, None]  # (beam, length, 3): the gap's start, then the new Cα
    scores = np.zeros(1)
    for step in range(gap.missing):
        left = gap.missing - step  # links still to make, counting the one into ``end``
        current = paths[:, -1]
        candidates = (current[:, None] + steps[None]).reshape(-1, 3)
        parent = np.repeat(np.arange(len(paths)), len(steps))
        to_end = np.linalg.norm(candidates - end, axis=1)
        keep = to_end <= CA_STEP * left + options.reach_tolerance
        if step == 0:
            keep &= np.abs(np.linalg.norm(candidates - carbon, axis=1) - PEPTIDE_REACH) <= options.reach_tolerance
        if left == 1:
            keep &= np.abs(to_end - CA_STEP) <= options.reach_tolerance
            keep &= np.abs(np.linalg.norm(candidates - nitrogen, axis=1) - PEPTIDE_REACH) <= options.reach_tolerance
            keep &= _angle_ok(current[parent], candidates, np.broadcast_to(end, candidates.shape), options)
            if gap.next_ca is not None:
                keep &= _angle_ok(
                    candidates, np.broadcast_to(end, candidates.shape), np.broadcast_to(gap.next_ca, candidates.shape), options
                )
        else:
            keep &= to_end >= options.new_ca_distance
        if paths.shape[1] >= 2:  # the angle at the Cα being extended: the one before it, or the model's before the gap
            keep &= _angle_ok(paths[parent, -2], current[parent], candidates, options)
        elif gap.previous_ca is not None:
            keep &= _angle_ok(np.broadcast_to(gap.previous_ca, candidates.shape), current[parent], candidates, options)
        candidates, parent = candidates[keep], parent[keep]  # the cheap tests first, then these on what is left
        if len(candidates) and paths.shape[1] >= 2:
            earlier = paths[parent][:, :-1]  # the start and the new Cα so far, but the one being extended
            keep = (np.linalg.norm(earlier - candidates[:, None], axis=-1) >= options.new_ca_distance).all(axis=1)
            candidates, parent = candidates[keep], parent[keep]
        if len(candidates) and walls is not None:
            keep = walls.query(candidates, distance_upper_bound=options.clash_distance)[0] > options.clash_distance
            candidates, parent = candidates[keep], parent[keep]
        if not len(candidates):
            return None
        link = current[parent]
        gain = capped(candidates) + capped(link + (candidates - link) / 3) + capped(link + 2 * (candidates - link) / 3)
        total = scores[parent] + gain
        order = np.argsort(-total)[: options.beam]
        paths = np.concatenate([paths[parent[order]], candidates[order][:, None]], axis=1)
        scores = total[order]
    # the last link, into ``end``, counts too
    tail = paths[:, -1]
    scores = scores + capped(tail + (end - tail) / 3) + capped(tail + 2 * (end - tail) / 3)
    if options.rescore:
        # the paths' whole backbone and Cβ against the density: the Cα trace alone runs as well through a ligand beside the loop
        finalists = np.argsort(-scores)[: options.rescore]
        atoms = np.array(
            [[xyz for _, _, xyz in residue] for k in finalists for residue in _residue_atoms(gap, paths[k, 1:], with_beta=True)]
        )
        backbone = capped(atoms.reshape(-1, 3)).reshape(len(finalists), -1).mean(axis=1)
        best = int(finalists[np.argmax(backbone)])
    else:
        best = int(np.argmax(scores))
    return paths[best, 1:], float(scores[best] / (3 * gap.missing + 2))


def _angle_ok(a: np.ndarray, b: np.ndarray, c: np.ndarray, options: LoopOptions) -> np.ndarray:
    u, v = a - b, c - b
    cosine = np.sum(u * v, axis=1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-9)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return (angle >= options.min_angle) & (angle <= options.max_angle)


def _residue_atoms(gap: _Gap, ca: np.ndarray, with_beta: bool = False) -> list[list[tuple[str, str, np.ndarray]]]:
    """Backbone (peptide table over the flanks and the new Cα) and Cβ of each new residue (``with_beta``: of glycines too)."""
    chain = [_xyz(gap.first, "CA"), *ca, _xyz(gap.last, "CA")]
    offset = 1
    if gap.previous_ca is not None:
        chain.insert(0, gap.previous_ca)
        offset = 2
    if gap.next_ca is not None:
        chain.append(gap.next_ca)
    n, c, o = geometry.peptide_table().place(np.array(chain))
    rows = slice(offset, offset + len(ca))
    n, c, o = n[rows], c[rows], o[rows]
    beta = geometry.beta_carbon(n, ca, c)
    residues = []
    for k, name in enumerate(gap.names):
        atoms = [("N", "N", n[k]), ("CA", "C", ca[k]), ("C", "C", c[k]), ("O", "O", o[k])]
        if name != "GLY" or with_beta:
            atoms.append(("CB", "C", beta[k]))
        residues.append(atoms)
    return residues


def _with_loops(structure: gemmi.Structure, loops: list[BuiltLoop]) -> gemmi.Structure:
    out = structure.clone()
    for loop in loops:
        chain = out[0][loop.chain_index]
        after = next(i for i, r in enumerate(chain) if r.seqid.num == loop.after and r.seqid.icode == " ")
        subchain = chain[after].subchain  # read before inserting: gemmi's references into a chain move with it
        b_factor = chain[after][0].b_iso if len(chain[after]) else 30.0
        for k, (name, atoms) in enumerate(zip(loop.names, loop.atoms)):
            residue = gemmi.Residue()
            residue.name = name
            residue.seqid = gemmi.SeqId(loop.after + 1 + k, " ")
            residue.subchain = subchain
            residue.entity_type = gemmi.EntityType.Polymer
            residue.het_flag = "A"
            residue.flag = io.BUILT_RESIDUE_FLAG  # read by ligfit.segment.attachments
            for atom_name, element, xyz in atoms:
                residue.add_atom(io.new_atom(atom_name, element, xyz, b_factor=b_factor))
            chain.add_residue(residue, after + 1 + k)
    return out
