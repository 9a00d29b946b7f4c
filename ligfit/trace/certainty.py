"""Confident and uncertain parts of a traced model: what the ligand may take the density of.

A de novo trace for ``build`` is a set of fragments. Long ones, and those a significant
profile-HMM alignment (or the register next to a threaded piece) explains, are protein; a short
fragment that only the dynamic-programming fill threads may as well run through a ligand's
density (on EMD-3488 three such fragments of 2–4 residues cover the hemes of α1 and β2).
Instead of deciding up front, ``build`` with ``TraceOptions.compete_below`` leaves the uncertain
fragments out of the model it subtracts (the ligand's blob comes back if one covered it), and
afterwards removes from the written model the uncertain residues a placed ligand took the place
of (:func:`displaced_residues`); the others stay. A user-given model is all confident.
"""

from __future__ import annotations

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ligfit.measures import METAL_ELEMENTS
from ligfit.trace.model import residue_keys
from ligfit.trace.records import EXPLAINED, TracedChain, TraceResult

#: Å: a residue with a heavy atom this close to a placed ligand's heavy (non-metal) atom is displaced by it.
DISPLACED_DISTANCE = 2.0


def is_uncertain(chain: TracedChain, compete_below: int) -> bool:
    """A chain shorter than ``compete_below`` that no significant alignment explains (threaded by the DP fill, or not at all)."""
    return chain.evidence not in EXPLAINED and len(chain.ca) < compete_below


def uncertain_chains(result: TraceResult, compete_below: int | None = None) -> np.ndarray:
    """Per traced chain: whether it is uncertain (default threshold: the trace's ``options.compete_below``; 0: none)."""
    below = result.options.compete_below if compete_below is None else compete_below
    return np.array([is_uncertain(chain, below) for chain in result.chains], dtype=bool)


def uncertain_residues(result: TraceResult, compete_below: int | None = None) -> set[tuple[str, int, str]]:
    """(chain ID, sequence number, insertion code) of the uncertain chains' residues in ``result.structure``."""
    flags = uncertain_chains(result, compete_below)
    return {key for flag, keys in zip(flags, residue_keys(result.chains)) if flag for key in keys}


def displaced_residues(
    structure: gemmi.Structure,
    uncertain: set[tuple[str, int, str]],
    ligand_xyz: np.ndarray,
    ligand_elements,
    distance: float = DISPLACED_DISTANCE,
) -> set[tuple[str, int, str]]:
    """The ``uncertain`` residues of ``structure`` with a heavy atom within ``distance`` Å of a ligand heavy atom.

    ``ligand_xyz`` (n, 3) and ``ligand_elements`` (n,) may hold several placed ligands; metal atoms are
    left out (a residue coordinating a metal sits close to it by right).
    """
    if not uncertain or len(ligand_xyz) == 0:
        return set()
    elements = np.array([str(e).capitalize() for e in ligand_elements])
    keep = np.array([e not in METAL_ELEMENTS and e != "H" for e in elements], dtype=bool)
    if not keep.any():
        return set()
    tree = cKDTree(np.asarray(ligand_xyz, dtype=float)[keep])
    found = set()
    for chain in structure[0]:
        for residue in chain:
            key = (chain.name, residue.seqid.num, residue.seqid.icode)
            if key not in uncertain:
                continue
            xyz = np.array([atom.pos.tolist() for atom in residue if not atom.is_hydrogen()]).reshape(-1, 3)
            if len(xyz) and np.isfinite(tree.query(xyz, distance_upper_bound=distance)[0]).any():
                found.add(key)
    return found
