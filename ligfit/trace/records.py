"""The tracer's records: options, one traced chain, and what a trace returns."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import gemmi
import numpy as np

from ligfit import io, maps
from ligfit.errors import LigfitError
from ligfit.maps import DensityMap

#: De novo tracing is refused for maps coarser than this (Å).
COARSEST_RESOLUTION = 5.0


@dataclass(frozen=True)
class TraceOptions:
    """Tracing parameters (defaults from ``benchmarks/backbone_tune.py``: validation split, 3 and 4 Å, shipped weights)."""

    ca_threshold: float = 0.3  # minimum P(Cα) of a candidate peak
    nms_radius: float = 2.2  # Å: weaker peaks this close to a kept one are dropped
    link_range: tuple[float, float] = (2.3, 4.9)  # Å: Cα–Cα distances that may be consecutive
    # Weaker peaks may fill a chain's gaps (never end a chain); off by default (= ca_threshold): at 0.12 haemoglobin
    # (EMD-3488) gains recall 0.90 → 0.94, but on 3J6B chain 9 (EMD-2566) the sequence then no longer threads (z 2.4).
    weak_ca_threshold: float = 0.3
    weak_min_support: float = 0.5  # … along links with at least this mean P(backbone mask)
    weak_cost: float = 6.0  # … at this extra link cost per weak peak (strong links are chosen first)
    gap_range: tuple[float, float] = (4.9, 7.8)  # Å: chain ends this far apart are joined through one new residue
    gap_min_support: float = 0.5  # … when the backbone mask supports the gap this much
    min_support: float = 0.3  # minimum mean P(backbone mask) along a link
    min_chain: int = 1  # shorter chains are dropped (lone residues are kept: pockets and gaps leave them)
    min_residues: int = 10  # fewer traced residues in all: no protein-like density
    insertion_penalty: float = 4.0  # threading: a traced Cα with no sequence residue (log units)
    deletion_penalty: float = 4.0  # threading: a sequence residue with no traced Cα
    shuffles: int = 100  # shuffled sequences for the significance of the threading
    min_sequence_z: float = 3.0  # threading must beat shuffled sequences by this many σ
    sequence_method: str = "hmm"  # "hmm": profile HMM per chain (ligfit.trace.hmm); "dp": threading by dynamic programming
    hmm_sharpness: float = 0.7  # hmm: match states emit the residue-type probabilities raised to this (renormalised): flattened,
    # sequence match 0.70 → 0.71 (EMD-3488), 0.94 → 0.97 (EMD-20026), 0.61 unchanged (EMD-2566; 0.55 and 0.4 no better)
    max_evalue: float = 0.01  # hmm: a chain takes the sequence where its alignment's E-value is at most this
    max_trace_evalue: float = 0.01  # hmm: … and the trace is refused unless best E-value × chains is at most this (real maps:
    # right sequences 3e-30 to 2e-3 (EMD-3488 in 78 fragments), 5 shuffles of each 0.5 to 25)
    min_register_z: float = 2.0  # hmm: an unthreaded fragment next to a threaded piece takes its best register this far above the rest
    fill_unassigned: int = 1  # hmm: chains of at least this many residues still without a significant alignment are threaded
    # by dynamic programming (0: never): on 3J6B chain 9 (EMD-2566) sequence match 0.40 → 0.61, on EMD-3488 22 → 12 chains
    prune_unassigned: int = 4  # hmm: chains shorter than this that no alignment explains are dropped (0: none); at 4
    # precision 0.84 → 0.85 (EMD-3488), 0.70 → 0.73 (EMD-2566), 0.73 → 0.83 (EMD-20026), recall −0.01 on the first two
    prune_surplus_below: int = 7  # hmm: … and, shortest first, those shorter than this while the trace holds more residues
    # than the sequences (copies counted) have: they cannot all be this protein (0: none)
    split_penalty: float = 8.0  # threading: the alignment may jump in the sequence at this cost (the chain is cut there)
    unknown_residue: str = "most-likely"  # without a sequence: "most-likely" type or "ALA"
    side_chains: str = "fitted"  # "fitted" (best rotamer in the density), "ideal" (CCD conformation) or "cb" (stop at Cβ)
    density_type_weight: float = 1.0  # residue types: weight of the side-chain density classifier (log-probabilities)
    network_type_weight: float = 0.5  # … and of the backbone network's residue-type head
    cube: int = 64
    margin: int = 16  # voxels of context each cube keeps around its centre (8 let the shipped network's cubes disagree by 0.2 in P(Cα))
    max_voxels: int = 300**3  # at 1 Å: ~15 min and ~1 GB on 2 CPU cores; larger maps must be boxed
    seed: int = 0
    # build only: chains shorter than this that no significant alignment explains (evidence "dp" or "none") are uncertain;
    # they are not subtracted before the ligand search and are removed where a placed ligand takes their place (0: none)
    compete_below: int = 0
    # build only: the model the ligand's contacts, clashes and burial are scored against: "cb" (the searched model, side chains
    # to Cβ) or "fitted" (the written model's fitted side chains, uncertain residues left out)
    dock_against: str = "cb"


#: The fragment tracer: links 2.6–4.6 Å, no gaps closed, no jumps in the threading, no lone residues, nothing pruned.
#: Its HMMs keep the probabilities unflattened: flattened, EMD-3488's 95 fragments reach trace-wide E 0.022 only
#: (refused; build then places 1 of 4 hemes right instead of 2). Unflattened they sit near the 0.01 limit too (0.0078 with
#: the MLP residue-type classifier, 0.0105 with the CNN), so ``build_protein_model`` accepts the sequence on the joined
#: chains of :func:`ligfit.trace.trace` (EMD-3488: trace-wide E 3e-12) and lets each fragment take it by its own E-value.
FRAGMENT_TRACE = TraceOptions(
    min_chain=2,
    link_range=(2.6, 4.6),
    gap_range=(0.0, 0.0),
    split_penalty=float("inf"),
    prune_unassigned=0,
    prune_surplus_below=0,
    hmm_sharpness=1.0,
)

#: Joined chains for ``build``: no lone residues, no gaps closed through new residues, and chains under 6
#: residues that the sequence does not explain dropped. On the Tyk2 example the joined chains' gap-closing
#: residues sat 0.5 Å from ligand atoms and the ligand landed 32 Å off; without gap closing 0.21 Å (3
#: chains). On EMD-3488 (ccd:HEM, 4 copies) it placed 1 heme, 13.5 Å off, against 1 of 4 right (0.5 Å)
#: with :data:`FRAGMENT_TRACE` (benchmarks/de_novo_build.py --haemoglobin), so build keeps the fragments.
JOINED_BUILD_TRACE = TraceOptions(min_chain=2, gap_range=(0.0, 0.0), fill_unassigned=0, prune_unassigned=6)

#: :data:`FRAGMENT_TRACE` whose short unexplained fragments compete with the ligand for their density (see
#: :mod:`ligfit.trace.certainty`), the ligand docked against the confident part with its fitted side chains. On EMD-3488
#: (ccd:HEM, 4 copies) the fragments through the two missed hemes (2–4 residues, threaded by the DP fill only) are among
#: 47 such chains under 6 residues, 43 of them true protein, and no feature the trace holds (length, P(Cα), P(backbone),
#: residue-type sharpness, threading score, model-chain links) sets them apart, so all 47 (152 residues) compete:
#: 3 of 4 hemes ≤ 2 Å and the 9 wrong residues removed, against 0 of 4 (2 of 4 docking 12 blobs). On 8 held-out
#: pockets 2/8 either way, but not the same ones: the freed protein density of small fragments looks like a small
#: ligand (7EBG's 14-atom J0L 0.36 → 14.8 Å) while a wrong fragment no longer hides 6YJA's (18.3 → 1.6 Å).
COMPETING_TRACE = replace(FRAGMENT_TRACE, compete_below=6, dock_against="fitted")

#: How ``build`` traces its de novo model (see :func:`ligfit.trace.build_protein_model`); FRAGMENT_TRACE subtracts every
#: traced fragment.
BUILD_TRACE = COMPETING_TRACE


#: Evidence (``TracedChain.evidence``) that places a fragment in the sequence on its own: a significant HMM
#: alignment, or the one register next to a threaded piece that stands out. Other residues' types are not established.
EXPLAINED = ("hmm", "register")


@dataclass(frozen=True)
class TracedChain:
    """One traced chain, N→C: Cα positions (Å), residue names and, when threaded, sequence positions."""

    ca: np.ndarray  # (L, 3)
    residue_names: tuple[str, ...]
    confidence: np.ndarray  # (L,) P(Cα) at each peak
    aa_probabilities: np.ndarray  # (L, 20)
    sequence_index: int | None = None  # which distinct input sequence (first occurrence order), when threaded
    sequence_positions: np.ndarray | None = None  # (L,) 0-based, -1 where no residue aligned
    threading_score: float = 0.0  # log-odds of the alignment
    lone_backbone: np.ndarray | None = None  # (2, 3) N and C of a single-residue chain (from the heat-maps)
    aa_probabilities_reversed: np.ndarray | None = None  # (L, 20) the chain read C→N (last residue first)
    secondary_structure: np.ndarray | None = None  # (L,) 0 helix, 1 strand, 2 coil (see ligfit.trace.secondary)
    junctions: tuple[int, ...] = ()  # after threading: residues where the alignment jumped (a new piece starts)
    model_chain: int | None = None  # after ordering by the sequence: pieces with one label form one model chain (one chain ID)
    evidence: str = "none"  # what placed the sequence: "hmm" (significant alignment), "register" (next to a threaded piece),
    # "dp" (threaded by dynamic programming, significant only trace-wide or not at all), "none" (most likely types)

    def profiles(self) -> tuple[np.ndarray, np.ndarray]:
        """Residue-type probabilities read N→C and read C→N (each in its own residue order)."""
        reversed_ = self.aa_probabilities_reversed if self.aa_probabilities_reversed is not None else self.aa_probabilities[::-1]
        return self.aa_probabilities, reversed_


@dataclass
class TraceResult:
    """What ``trace`` built: chains as plain arrays, the model, and how well the sequence fits."""

    chains: list[TracedChain]
    structure: gemmi.Structure
    candidates: np.ndarray  # (n, 3) every Cα candidate, Å
    sequence_score: dict | None
    message: str
    timings: dict[str, float] = field(default_factory=dict)
    options: TraceOptions = field(default_factory=TraceOptions)
    secondary_structure_map: DensityMap | None = None  # per voxel: 0 not backbone, 1 helix, 2 strand, 3 coil

    def write_secondary_structure_map(self, path: str | os.PathLike) -> None:
        """Write the per-voxel secondary structure (MRC; 0 not backbone, 1 helix, 2 strand, 3 coil)."""
        if self.secondary_structure_map is None:
            raise LigfitError("this trace has no secondary-structure map; trace the map again to write one")
        maps.write_map(self.secondary_structure_map, path)

    @property
    def model_chain_count(self) -> int:
        """Chains of the model: pieces ordered into one chain by the sequence count once."""
        labels = [chain.model_chain for chain in self.chains]
        return len(set(labels)) if labels and None not in labels else len(self.chains)

    @property
    def residue_count(self) -> int:
        return sum(len(chain.ca) for chain in self.chains)

    def write(self, path: str | os.PathLike) -> None:
        """Write the model (mmCIF or PDB by suffix, atomically)."""
        io.write_structure(self.structure, path)

    def secondary_structure_counts(self) -> dict[str, int]:
        """Traced residues called helix, strand and coil."""
        labels = [chain.secondary_structure for chain in self.chains if chain.secondary_structure is not None]
        counts = np.bincount(np.concatenate(labels), minlength=3) if labels else np.zeros(3, dtype=int)
        return {"helix": int(counts[0]), "strand": int(counts[1]), "coil": int(counts[2])}

    def summary(self) -> dict:
        """Plain data for reports: what was traced and how well the sequence fits."""
        return {
            "source": "traced de novo by ligfit's backbone network",
            "message": self.message,
            "chains": self.model_chain_count,
            "pieces": len(self.chains),
            "residues": self.residue_count,
            "secondary_structure": self.secondary_structure_counts(),
            "sequence_score": self.sequence_score,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


SequenceInput = str | os.PathLike | list[str] | None


#: Progress callback: (stage, done, total); stages "network" (cubes), "tracing", "threading", "model".
Progress = Callable[[str, int, int], None]
