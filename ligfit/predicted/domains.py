"""Confidence and domains of a predicted model: pLDDT trimming, PAE, structural domain splits.

AlphaFold writes its per-residue confidence (pLDDT, 0–100, or 0–1 in some tools) in the
B-factor column and its predicted aligned error (PAE, Å) in a JSON file. Residues the
prediction is unsure of are trimmed before the search; domains come from the PAE where given
(residues that are confidently placed relative to each other belong together), else from the
Cα coordinates (Ward clustering, compact domains), which is what servers without PAE do.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import gemmi
import numpy as np
from scipy.cluster import hierarchy

from ligfit.predicted.errors import BadConfidenceError

log = logging.getLogger(__name__)

#: Residues with pLDDT below this are trimmed by default (AlphaFold's "confident" boundary).
PLDDT_CUTOFF = 70.0


def plddt(structure: gemmi.Structure) -> np.ndarray | None:
    """Per-residue pLDDT (0–100) from the B-factor column, or None when the column does not hold pLDDT.

    It holds pLDDT when every residue's atoms share one value, the values lie in 0–100 (or 0–1,
    then scaled) and they are not all equal; experimental B-factors vary within residues.
    """
    per_residue, uniform = [], True
    for chain in structure[0]:
        for residue in chain:
            values = [atom.b_iso for atom in residue]
            if not values:
                continue
            uniform &= max(values) - min(values) < 1e-3
            per_residue.append(values[0])
    values = np.array(per_residue, dtype=float)
    if not uniform or len(values) == 0 or np.ptp(values) == 0 or values.min() < 0 or values.max() > 100:
        return None
    return values * 100.0 if values.max() <= 1.0 else values


def trim_low_confidence(structure: gemmi.Structure, cutoff: float | None = PLDDT_CUTOFF) -> tuple[gemmi.Structure, list[str]]:
    """A copy of ``structure`` without residues of pLDDT below ``cutoff``, and their labels ("A:17").

    Nothing is trimmed when there is no pLDDT, ``cutoff`` is None, or trimming would leave under
    30% of the residues (then the column is more likely B-factors than confidence; a warning says so).
    """
    trimmed = structure.clone()
    confidence = plddt(structure)
    if cutoff is None or confidence is None:
        return trimmed, []
    if np.mean(confidence >= cutoff) < 0.3:
        log.warning(
            "pLDDT below %.0f for %.0f%% of residues; not trimming (B-factors, not pLDDT?)", cutoff, 100 * np.mean(confidence < cutoff)
        )
        return trimmed, []
    removed, index = [], 0
    for chain in trimmed[0]:
        keep_flags = list(confidence[index : index + len(chain)] >= cutoff)
        index += len(chain)
        for position in reversed(range(len(chain))):
            if not keep_flags[position]:
                removed.append(f"{chain.name}:{chain[position].seqid.num}")
                del chain[position]
    trimmed.remove_empty_chains()
    return trimmed, sorted(removed, key=lambda label: (label.split(":")[0], int(label.split(":")[1])))


def read_pae(path: str | os.PathLike) -> np.ndarray:
    """The PAE matrix (Å, residues × residues) from an AlphaFold/ColabFold JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BadConfidenceError(f"{path}: cannot read the PAE JSON ({error}); give AlphaFold's predicted_aligned_error file") from None
    if isinstance(data, list):
        data = data[0]
    for key in ("predicted_aligned_error", "pae"):
        if key in data:
            matrix = np.asarray(data[key], dtype=float)
            if matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1]:
                return matrix
    raise BadConfidenceError(f"{path}: no square 'predicted_aligned_error' or 'pae' matrix; give AlphaFold's PAE JSON")


def split_domains(ca: np.ndarray, count: int, *, pae: np.ndarray | None = None) -> np.ndarray:
    """Domain labels 0..count-1 of residues (Cα coordinates Å, (n, 3)), from the PAE when given, else the structure.

    Labels are smoothed so that no stretch shorter than 10 residues forms its own piece.
    """
    if pae is not None:
        if pae.shape != (len(ca), len(ca)):
            raise BadConfidenceError(
                f"the PAE matrix is {pae.shape[0]}×{pae.shape[1]} but the model has {len(ca)} residues; give the model's own PAE"
            )
        distance = (pae + pae.T) / 2
        condensed = distance[np.triu_indices(len(ca), 1)]
        tree = hierarchy.linkage(condensed, method="average")
    else:
        tree = hierarchy.linkage(ca, method="ward")
    labels = hierarchy.fcluster(tree, count, criterion="maxclust") - 1
    return _smooth(labels, 10)


def _smooth(labels: np.ndarray, minimum: int) -> np.ndarray:
    """Stretches shorter than ``minimum`` residues take the label of the residue before them."""
    labels = labels.copy()
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if i - start < minimum and start > 0:
                labels[start:i] = labels[start - 1]
            start = i
    _, labels = np.unique(labels, return_inverse=True)
    return labels
