"""Plain records that travel between stages: blobs, the ligand's shape, seed poses and poses.

Coordinates are in Å in the map's frame; arrays are (n, 3) in (x, y, z) order. Stages create
and read these records; none of them belongs to one stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Confidence labels: "high" from HIGH_CONFIDENCE, "medium" from MEDIUM_CONFIDENCE, "low" below
#: (a full answer below medium is not reported as found).
MEDIUM_CONFIDENCE, HIGH_CONFIDENCE = 0.4, 0.7


def confidence_label(confidence: float) -> str:
    """ "high", "medium" or "low"."""
    return "high" if confidence >= HIGH_CONFIDENCE else "medium" if confidence >= MEDIUM_CONFIDENCE else "low"


#: What each label has meant: (right, placed) on the realistic-map benchmark (benchmarks/realistic_maps.py --quick, seeds
#: 18–82, held out from every rule the benchmark's rounds tuned: 390 pockets at 3.0 and 3.5 Å each with their decoys,
#: incomplete models, waters, a detergent, weak ligands), right = within 2 Å of the deposited pose; every placement
#: counts, a ligand placed in a map without it as wrong. Seeds 18–45 rebuilt whole (docs/benchmarks.md "Round 39"),
#: 46–61 run fresh ("Round 42"), both with the verdict of "Round 43" (a pose making a bound ligand's contacts raised)
#: applied to their rows, 62–73 run fresh with it, and 74–82 run fresh with the code of Speed per blob's "Round 16":
#: high 185/193, 98/102, 86/87 and 51/53, medium 76/108, 53/72, 30/40 and 26/41.
#: On seeds 2–17, where the rules were tuned, high was right 117 of 121 times.
#: `realistic_maps.py --summarise` prints these beside a new run's: update them whenever docking or its confidence changes.
CONFIDENCE_RECORD = {"high": (420, 435), "medium": (185, 261)}
#: The realistic-map seeds CONFIDENCE_RECORD counts.
CONFIDENCE_RECORD_SEEDS = "18–82"


def confidence_meaning(label: str) -> str | None:
    """One sentence on how often placements with this label were right on the benchmark (None for "low" or "none")."""
    if label not in CONFIDENCE_RECORD:
        return None
    right, placed = CONFIDENCE_RECORD[label]
    return (
        f"on ligfit's realistic-map benchmark (3.0–3.5 Å maps with incomplete models) {right} of {placed} placements "
        f"called {label} lay within 2 Å of the deposited pose"
    )


@dataclass(frozen=True)
class Blob:
    """One region of unexplained density. Positions in Å in the map frame, heights in σ."""

    rank: int
    points: np.ndarray  # (n, 3) voxel centres
    values: np.ndarray  # (n,) difference density, σ
    volume: float  # Å³ above the threshold
    centroid: np.ndarray  # density-weighted, Å
    principal_axes: np.ndarray  # (3, 3), rows, longest first
    extents: np.ndarray  # (3,) root-mean-square spread along each axis, Å
    peak: float
    mean: float
    estimated_heavy_atoms: float | None
    protein_contacts: int  # protein heavy atoms within 4 Å of the blob
    protein_distance: float  # closest protein heavy atom to any blob voxel, Å (inf without a model)
    ligand_match: float  # 0-1: how well this blob could hold the ligand (size and shape)
    explanation: str = ""  # what else the blob looks like (e.g. unmodelled protein); "" when it may be a ligand site
    carved: bool = False  # the ligand-like part of a bigger blob (``segment.carve_ligand``)

    def summary(self) -> dict:
        """Plain-data description for reports."""
        return {
            "rank": self.rank,
            "voxels": int(len(self.points)),
            "volume_A3": round(self.volume, 1),
            "centroid": np.round(self.centroid, 2).tolist(),
            "extents_A": np.round(self.extents, 2).tolist(),
            "peak_sigma": round(self.peak, 2),
            "mean_sigma": round(self.mean, 2),
            "estimated_heavy_atoms": None if self.estimated_heavy_atoms is None else round(self.estimated_heavy_atoms, 1),
            "protein_contacts": self.protein_contacts,
            "protein_distance_A": None if not np.isfinite(self.protein_distance) else round(self.protein_distance, 2),
            "ligand_match": round(self.ligand_match, 3),
            "explanation": self.explanation,
            "carved": self.carved,
        }


@dataclass(frozen=True)
class LigandShape:
    """What segmentation and template search need to know of the ligand: heavy-atom count and typical spread (Å)."""

    heavy_atoms: int
    extents: np.ndarray  # (3,) sorted root-mean-square spread along principal axes, Å

    @classmethod
    def from_conformers(cls, heavy_coordinates: np.ndarray) -> LigandShape:
        """From conformer coordinates (n_conformers, n_heavy, 3)."""
        spreads = [principal_spread(c)[1] for c in heavy_coordinates]
        return cls(heavy_coordinates.shape[1], np.median(spreads, axis=0))


def principal_spread(points: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (rows, longest first) and root-mean-square spread along them (Å)."""
    centre = np.average(points, axis=0, weights=weights)
    covariance = np.cov((points - centre).T, aweights=weights) if len(points) > 1 else np.zeros((3, 3))
    eigenvalues, eigenvectors = np.linalg.eigh(np.atleast_2d(covariance))
    order = np.argsort(eigenvalues)[::-1]
    return eigenvectors[:, order].T, np.sqrt(np.clip(eigenvalues[order], 0, None))


@dataclass(frozen=True)
class SeedPose:
    """A starting pose from elsewhere (e.g. a template complex): all atoms in the ligand's order, Å."""

    coordinates: np.ndarray
    label: str


@dataclass(frozen=True)
class Pose:
    """One placement of the ligand; ``coordinates`` hold every atom (hydrogens too), Å, map frame."""

    coordinates: np.ndarray
    blob_rank: int
    score: float
    cc: float  # correlation with the difference map inside the ligand mask
    mean_sigma: float  # mean difference density at the heavy atoms, σ
    fraction_in_density: float  # heavy atoms at ≥ 1 σ
    clashes: int  # protein–ligand heavy-atom pairs closer than 0.75 × their summed vdW radii (metal coordination excepted)
    polar_contacts: int  # ligand N/O/metal atoms with a protein N/O (/S for metals) at bonding distance
    strain: float | None  # MMFF energy above the lowest conformer, kcal/mol
    source: str
    confidence: float = 0.0  # 0–1, set for placements (poses the density supports)
    packing: float = 0.0  # protein heavy atoms within 4 Å of a ligand heavy atom, on average (ligfit.measures.packing)
    interaction: float = 0.0  # Vina-like protein–ligand score per heavy atom, lower is better (ligfit.measures.interactions)
    tie_break_shift: float = 0.0  # what the near-tie breaks added to ``score`` (density, packing, interaction: DockingOptions)
    chosen_by_tie_break: bool = False  # a tie-break put it ahead of a pose in its blob that scored better before

    @property
    def score_before_tie_breaks(self) -> float:
        """The density fit less the clash, strain and contact terms, before near-ties in its blob were broken."""
        return self.score - self.tie_break_shift

    def summary(self) -> dict:
        return {
            "blob": self.blob_rank,
            "score": round(self.score, 4),
            "cc": round(self.cc, 4),
            "mean_sigma": round(self.mean_sigma, 2),
            "fraction_in_density": round(self.fraction_in_density, 3),
            "clashes": self.clashes,
            "polar_contacts": self.polar_contacts,
            "strain_kcal_mol": None if self.strain is None else round(self.strain, 1),
            "packing": round(self.packing, 2),
            "interaction": round(self.interaction, 3),
            "found_by": self.source,
            "confidence": round(self.confidence, 3),
        }
