"""Full-atom models from traced chains: backbone from the peptide table, side chains fitted, ideal or stopped at Cβ."""

from __future__ import annotations

import string

import gemmi
import numpy as np

from ligfit import io
from ligfit.backbone import geometry, side_chains
from ligfit.backbone.data import BACKBONE_ATOMS
from ligfit.maps import DensityMap
from ligfit.trace.chains import chain_backbone
from ligfit.trace.records import EXPLAINED, TracedChain, TraceResult
from ligfit.trace.secondary import add_records


def chain_names(count: int) -> list[str]:
    """A, B, …, Z, a, …, z, 0, …, 9, then two letters."""
    single = list(string.ascii_uppercase + string.ascii_lowercase + string.digits)
    return (single + [a + b for a in single for b in single])[:count]


#: Atoms a side chain stopped at Cβ keeps.
BACKBONE_AND_CB = BACKBONE_ATOMS | {"CB"}


def build_structure(chains: list[TracedChain], density: DensityMap | None = None, side_chains_as: str = "fitted") -> gemmi.Structure:
    """A gemmi Structure with every traced chain as full-atom residues; B-factor = 100 × (1 − P(Cα)).

    Chains with the same ``model_chain`` (pieces ordered by the sequence) share one chain ID, in the given order.

    ``side_chains_as``: "fitted" — each side chain takes the rotamer that best fits ``density`` (the
    normalised 1 Å map; :mod:`ligfit.backbone.side_chains`); "ideal" — the CCD conformation; "cb" —
    side chains stop at Cβ (residue names kept).
    """
    if side_chains_as not in ("fitted", "ideal", "cb"):
        raise ValueError(f"side_chains must be 'fitted', 'ideal' or 'cb', got {side_chains_as!r}")
    structure = gemmi.Structure()
    structure.name = "ligfit_trace"
    model = gemmi.Model("1")
    table = geometry.peptide_table()
    atoms = [geometry.full_atoms(*_backbone_with_ca(chain, table), list(chain.residue_names)) for chain in chains]
    if side_chains_as == "cb":
        atoms = [[[atom for atom in residue if side_chains.depth(atom[0]) <= 1] for residue in chain] for chain in atoms]
    elif side_chains_as == "fitted" and density is not None:  # all chains at once: no clash with another chain's backbone either
        names = [name for chain in chains for name in chain.residue_names]
        fitted = iter(side_chains.fit_rotamers([residue for chain in atoms for residue in chain], names, density))
        atoms = [[next(fitted) for _ in chain] for chain in atoms]
    groups, names = _groups(chains)
    built: dict[int, gemmi.Chain] = {}
    secondary: dict[int, list[np.ndarray]] = {}
    for group, chain, chain_atoms in zip(groups, chains, atoms):
        gemmi_chain = built.setdefault(group, gemmi.Chain(names[group]))  # pieces of one model chain share it
        ss = chain.secondary_structure if chain.secondary_structure is not None else np.full(len(chain.ca), 2)
        secondary.setdefault(group, []).append(ss)
        numbers = _residue_numbers(chain)
        for index, (residue_atoms, (number, icode)) in enumerate(zip(chain_atoms, numbers)):
            residue = gemmi.Residue()
            residue.name = chain.residue_names[index]
            residue.seqid = gemmi.SeqId(number, icode)
            residue.entity_type = gemmi.EntityType.Polymer
            b_factor = float(100 * (1 - chain.confidence[index]))
            for atom_name, element, position in residue_atoms:
                residue.add_atom(io.new_atom(atom_name, element, position, b_factor=b_factor))
            gemmi_chain.add_residue(residue)
    for gemmi_chain in built.values():
        model.add_chain(gemmi_chain)
    structure.add_model(model)
    structure.setup_entities()
    if any(chain.secondary_structure is not None for chain in chains):
        add_records(structure, [np.concatenate(secondary[group]) for group in built])
    return structure


def search_model(result: TraceResult, leave_out: set[tuple[str, int, str]] | None = None) -> gemmi.Structure:
    """The traced model with side chains stopped at Cβ: what the ligand search subtracts and docks against.

    A traced side chain of the wrong type or rotamer either erases ligand density or leaves a
    ligand-sized hole elsewhere; stopped at Cβ, what the model misses is side-chain sized. On the
    Tyk2 example the ligand lands 0.26 Å off this way, 2.4 Å with fitted side chains and 34 Å
    with ideal CCD ones. The full model (``result.structure``) is what is refined and written.
    ``leave_out``: residues (:func:`residue_keys`) left out, e.g. the uncertain ones of
    :func:`ligfit.trace.certainty.uncertain_residues`.
    """
    structure = build_structure(result.chains, side_chains_as="cb")
    return without_residues(structure, leave_out) if leave_out else structure


def contact_model(result: TraceResult, leave_out: set[tuple[str, int, str]] | None = None) -> gemmi.Structure:
    """The model the ligand's contacts, clashes and burial are scored against (``result.options.dock_against``).

    "cb": :func:`search_model`. "fitted": the written model (fitted side chains) without ``leave_out``:
    with the uncertain fragments left out the Cβ model is too sparse to tell a pocket from the
    surface (on EMD-3488 the freed hemes' burial fell to 0.37 and no heme was placed; with fitted
    side chains 3 of 4 were). Residues whose type no significant alignment established stop at Cβ
    there too: their side chains are guesses, and a wrong long one in the pocket kept the right pose
    out (held-out 6YJA 1.59 → 17.8 Å when the residue-type classifier changed; 1.83 Å with them stopped).
    """
    if result.options.dock_against == "fitted":
        structure = without_residues(result.structure, leave_out) if leave_out else result.structure
        return stopped_at_cb(structure, unestablished_residues(result))
    if result.options.dock_against != "cb":
        raise ValueError(f"dock_against must be 'cb' or 'fitted', got {result.options.dock_against!r}")
    return search_model(result, leave_out)


def unestablished_residues(result: TraceResult) -> set[tuple[str, int, str]]:
    """Residues (:func:`residue_keys`) of chains whose sequence no significant alignment placed (evidence not in ``EXPLAINED``)."""
    return {key for chain, keys in zip(result.chains, residue_keys(result.chains)) if chain.evidence not in EXPLAINED for key in keys}


def stopped_at_cb(structure: gemmi.Structure, keys: set[tuple[str, int, str]]) -> gemmi.Structure:
    """``structure`` with the side chains of the residues named by ``keys`` cut back to Cβ (a copy where any are)."""
    if not keys:
        return structure
    cut = structure.clone()
    for chain in cut[0]:
        for residue in chain:
            if (chain.name, residue.seqid.num, residue.seqid.icode) in keys:
                for index in reversed(range(len(residue))):
                    if residue[index].name not in BACKBONE_AND_CB:
                        del residue[index]
    return cut


def residue_keys(chains: list[TracedChain]) -> list[list[tuple[str, int, str]]]:
    """Per chain, each residue's (chain ID, sequence number, insertion code) in :func:`build_structure`'s model."""
    groups, names = _groups(chains)
    return [[(names[group], number, icode) for number, icode in _residue_numbers(chain)] for group, chain in zip(groups, chains)]


def without_residues(structure: gemmi.Structure, keys: set[tuple[str, int, str]]) -> gemmi.Structure:
    """A copy of ``structure`` without the residues named by (chain ID, sequence number, insertion code); empty chains dropped."""
    kept = structure.clone()
    for chain in kept[0]:
        for index in reversed(range(len(chain))):
            residue = chain[index]
            if (chain.name, residue.seqid.num, residue.seqid.icode) in keys:
                del chain[index]
    kept.remove_empty_chains()
    return kept


def _groups(chains: list[TracedChain]) -> tuple[list[int], dict[int, str]]:
    """The model chain each traced chain belongs to (pieces ordered by the sequence share one; others stand alone), and its chain ID."""
    groups = [chain.model_chain if chain.model_chain is not None else -1 - k for k, chain in enumerate(chains)]
    return groups, dict(zip(dict.fromkeys(groups), chain_names(len(set(groups)))))


def _backbone_with_ca(chain: TracedChain, table: geometry.PeptideTable) -> tuple[np.ndarray, ...]:
    n, c, o = chain_backbone(chain, table)
    return n, chain.ca, c, o


def _residue_numbers(chain: TracedChain) -> list[tuple[int, str]]:
    """Sequence numbers (1-based) where threaded; unaligned residues take the previous number and an insertion code."""
    if chain.sequence_positions is None:
        return [(k + 1, " ") for k in range(len(chain.ca))]
    positions = chain.sequence_positions
    aligned = positions[positions >= 0]
    previous = int(aligned[0]) if len(aligned) else 0  # leading unaligned residues share the first number - 1
    numbers, inserted = [], 0
    for position in positions:
        if position >= 0:
            previous, inserted = int(position) + 1, 0
            numbers.append((previous, " "))
        else:
            numbers.append((previous, string.ascii_uppercase[inserted % 26]))
            inserted += 1
    return numbers
