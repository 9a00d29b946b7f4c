"""Docking settings in one place: search sizes, score weights, and the support thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ligfit.errors import BadOptionError
from ligfit.runtime import AUTO_DEVICE

#: Where docking pulls rare torsions into their wells (``DockingOptions.torsion_pull``).
TORSION_PULLS = ("off", "placements", "scored")


@dataclass(frozen=True)
class DockingOptions:
    """Search and scoring settings; the defaults are the ones the benchmark measured."""

    # Conformer search: every conformer from 4 principal-axis alignments + random orientations.
    random_orientations: int = 12
    # A blob longer than the ligand also gets conformer starts at its ends (place._start_points). On: the realistic
    # maps, nine seeds, 79 → 82/108 right, decoys and high-confidence precision unchanged (docs/benchmarks.md "Round 14").
    blob_end_starts: bool = True
    smooth_steps: int = 80
    # After this fraction of its steps the conformer search keeps only its best starts (the rest are dominated):
    # this many per pose that goes on to refinement (refine_poses // 2 from this search), or all when fewer. 8 → 4 when
    # refine_poses went 96 → 192 (Round 28), so that the same 384 starts survive and the conformer search costs the same.
    prune_after: float = 0.5
    survivors_per_candidate: int = 4
    # Anchor and grow: the largest rigid fragments placed exhaustively, torsions grown by beam search.
    anchors: int = 3
    anchor_rotations: int = 500
    anchor_poses: int = 16
    beam_width: int = 12
    torsion_step_degrees: float = 15.0
    # Very flexible ligands (≥ flexible_rotatable rotatable bonds: CoA, FAD, UDP-sugars, lipids) fill big blobs whose
    # strongest density (the phosphates) draws the few best anchor placements: their anchors are scored at
    # flexible_anchor_scale × anchor_rotations rotations, the best few rotations at every blob point are polished (not
    # the best overall), flexible_anchor_scale × anchor_poses placements, spread further apart, go on to grow, and the
    # beam is flexible_beam_scale × beam_width wide (scales, so that a smaller search, e.g. the quick screen's, stays so).
    flexible_rotatable: int = 12
    flexible_anchor_scale: int = 4
    flexible_anchor_spacing: float = 2.0  # Å, plain RMSD between kept anchor placements (1 Å for other ligands)
    flexible_beam_scale: float = 8 / 3  # 12 → 32
    # Refinement of the pooled candidates at full resolution, with rounds of torsion kicks, half from each search.
    # 64 → 96 in Round 26 and 96 → 192 in Round 28 (docs/benchmarks.md "Realistic maps"): on sixteen seeds the search
    # misses went 9 → 6 and the maps right 149 → 153 of 192 (four held-out seeds: the same 34 of 48), for 0.1–0.6 s more
    # docking per blob (the refinement is bound by per-step overhead, not by the number of poses). The screen keeps 64
    # (screen.run.SCREEN_DOCKING).
    refine_poses: int = 192
    refine_steps: int = 100
    hops: int = 3
    hop_steps: int = 60
    # Per blob: poses that get MMFF relaxation and the final score (a quarter as many of the template seeds' poses). 16 → 32
    # in Round 21 (docs/benchmarks.md "Realistic maps"): right poses of weakly occupied ligands beside stronger density
    # came out of refinement 26th–35th by the search loss and never reached the score; on sixteen seeds 3 Å 75 → 78/96, nothing lost,
    # decoys unchanged, for ~0.8 s more per 40-atom blob. The screen keeps 16 (screen.run.SCREEN_DOCKING).
    scored_poses: int = 32
    final_poses: int = 10  # clusters reported
    cluster_rmsd: float = 1.5  # Å, symmetry-aware
    # Score terms.
    clash_distance: float = 3.1  # Å, ligand heavy atom to protein C/S (and apolar ligand atom to N/O)
    polar_clash_distance: float = 2.6  # Å, ligand N/O to protein N/O: hydrogen bonds allowed
    clash_weight: float = 4.0
    internal_weight: float = 4.0
    restraint_force: float = 100.0  # kcal/mol/Å² on heavy atoms during MMFF relaxation (weaker ones pull poses off the density)
    strain_allowance: float = 10.0  # kcal/mol of MMFF strain that costs nothing
    # Torsions far up their crystal-structure potential (ligfit.measures.torsions, ETKDG's) pulled into their well during
    # an MMFF relaxation with this force (kcal/mol/deg² beyond ± measures.pose.TORSION_WINDOW_DEGREES of the bottom), the
    # pulled pose kept only where it fits nearly as well (the density does not hold the torsions). torsion_pull says
    # where: "placements" (after the choice, the placed poses only, relaxed with the heavy atoms held by
    # torsion_pull_restraint and kept where neither CC nor score falls by more than torsion_fit_tolerance and no clash is
    # added: the written ligand's torsions as crystal structures show them where the density lets them go; choice and
    # confidence unchanged), "scored" (every scored pose before the choice, under restraint_force, kept where its CC
    # falls by at most torsion_fit_tolerance) or "off". Measured in docs/benchmarks.md, "Round 40" and "Round 41":
    # "scored" placed no more ligands (held out 257 → 258 of 336, one more decoy placed, 10 % more build time) and took
    # the right docked answers holding a rare torsion from 30 % to 9 % (deposited ligands: 11 %). "placements" changed
    # no placement and no RMSD by 0.3 Å on seven held-out seeds, but the written answers holding a rare torsion went
    # only 13 → 10 of 60 (refinement kept most of what docking handed it; since Round 42 it adds torsion potentials of its own) and D2Q in 3NZD 1.55 → 1.61 Å: off.
    torsion_pull: str = "off"
    torsion_preference_force: float = 0.05
    torsion_fit_tolerance: float = 0.01
    # kcal/mol/Å²: held by restraint_force, a placement's bond angles bend instead (the Tyk2 example: strain 14 → 81 kcal/mol).
    torsion_pull_restraint: float = 10.0
    # Very flexible ligands: a second, looser MMFF relaxation of each scored pose (500 steps leave a 50-atom ligand
    # grown torsion by torsion strained by 50–85 kcal/mol), and this much strain allowance per rotatable bond.
    flexible_relax_force: float = 10.0  # kcal/mol/Å²
    flexible_strain_per_rotatable: float = 2.0  # kcal/mol (7D0P's 23 rotatable bonds: 46 kcal/mol free)
    strain_weight: float = 0.004  # final-score penalty per kcal/mol beyond the allowance
    clash_penalty: float = 0.05  # final-score penalty per protein–ligand heavy-atom pair < 2.5 Å
    contact_bonus: float = 0.01  # final-score bonus per ligand atom in a hydrogen bond / salt bridge / coordination
    max_contacts: int = 5  # ... counted up to this many: a tie-breaker, not a docking score
    # Near-ties within a blob: each pose's score moves by weight × (its measure − that of the blob's best-scoring pose),
    # clipped to ± cap, and the shifts of the measures add up (place._with_tie_breaks).
    # Mean difference density at the heavy atoms (σ): of two poses that fit the map about as well, the one whose atoms
    # sit on stronger density. Round 11's 0.05 / 0.03 → 0.2 / 0.1 in Round 18 (docs/benchmarks.md "Realistic maps":
    # twelve seeds, placement guard, D2Q and the hemes of EMD-3488). A cap of 0.05 lost the guard's 7ZDY at 4 Å (a gap of 0.07).
    # The screen keeps Round 11's values (screen.run.SCREEN_TIE_BREAK).
    density_tie_break_weight: float = 0.2
    density_tie_break_cap: float = 0.1
    # Packing (protein heavy atoms within 4 Å per ligand atom): off. At 0.1 / 0.08 it gained 3 and lost 2 on the
    # realistic maps (7 seeds) and flipped real answers: D2Q in 3NZD (0.93 → 5.2 Å, a density gap of 0.063) and a heme
    # of EMD-3488 (0.47 → 5.8 Å, a gap of 0.009). docs/benchmarks.md "Round 9".
    packing_weight: float = 0.0
    packing_cap: float = 0.08
    # The pose's chemistry against the pocket: a Vina-like intermolecular score per heavy atom (ligfit.measures.interactions),
    # lower being better, so a pose 0.1 lower per atom than the blob's best-scoring pose moves up by 0.05 (the cap).
    # Round 19 (docs/benchmarks.md "Realistic maps"): offline on twelve seeds' docked poses, 0.3–0.7 with this cap turned
    # 6 wrong answers right and none wrong; built for real, 107 → 109 of 144 right, wrong placements shown 16 → 10, decoys
    # unchanged. The screen keeps it off (screen.run.SCREEN_TIE_BREAK).
    interaction_tie_break_weight: float = 0.5
    interaction_tie_break_cap: float = 0.05
    # What counts as "supported by the density" for the best pose.
    min_mean_sigma: float = 1.5
    min_fraction_in_density: float = 0.6  # heavy atoms at ≥ 1 σ
    min_cc: float = 0.4
    seed: int = 0
    # Where the search's torch work runs: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu", "cuda" or "cuda:N".
    # The CPU gives the same poses to the bit on any number of threads; a GPU sums in another order, 2.1–2.8× faster on an
    # H200 than two CPU threads (docs/benchmarks.md, Speed per blob, "Round 9").
    device: str = AUTO_DEVICE
    # On the CPU, the search's Adam steps run compiled (ligfit/dock/kernel.py, numba): the same objective with its gradient
    # written out, equal to the torch form to float rounding; False runs them in torch, as on a GPU.
    compiled_search: bool = True

    def __post_init__(self) -> None:
        if self.torsion_pull not in TORSION_PULLS:
            raise BadOptionError(f"torsion_pull must be one of {', '.join(TORSION_PULLS)}, not {self.torsion_pull!r}")

    def as_dict(self) -> dict:
        return asdict(self)
