"""Refinement settings in one place; the defaults are the ones the refinement benchmark measured."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ligfit.errors import BadOptionError

SOLVENT_MODELS = ("distance-dependent", "reaction-field", "gbn2")
#: The electrostatics of the pocket and the whole-model refinements (docs/benchmarks.md, Speed per blob, "Round 15").
DEFAULT_SOLVENT = "reaction-field"
LIGAND_FORCE_FIELDS = ("auto", "gaff2", "mmff94")


@dataclass(frozen=True)
class RefinementOptions:
    """How the pocket is chosen, which force field and map weight are used, and the protocol's lengths.

    Distances in Å, restraint force constants in kcal/mol/Å², temperatures in K.
    """

    # Docked poses refined; the best by force field + map energy is kept (choose_start). One since round 5 of the speed
    # work: three gave the same refinement and placement results and took 1.3 s more per 40-atom blob (docs/benchmarks.md).
    starts: int = 1
    mobile_radius: float = 5.0  # residues with a heavy atom this close to a start pose move
    shell_radius: float = 9.0  # residues out to here are kept, fixed, as the mobile atoms' surroundings
    # Electrostatics: "reaction-field" (Coulomb with ε = 4 inside the cutoff, a reaction field beyond it, in OpenMM's own
    # nonbonded kernel; 1–4 pairs keep ε = 4r), "distance-dependent" (ε = 4r for every pair, a custom force 6–7× slower
    # on the CPU: the default before Speed per blob's "Round 15", docs/benchmarks.md) or "gbn2" (OpenMM's GBn2 implicit solvent).
    solvent: str = DEFAULT_SOLVENT
    ligand_force_field: str = "auto"  # GAFF2/AM1-BCC where AmberTools is installed, else MMFF94
    cutoff: float = 7.0  # nonbonded cutoff (switched from cutoff − 2 Å); 9 Å took 1.6× as long, no more accurate (docs/benchmarks.md)
    backbone_restraint: float = 5.0  # harmonic, on backbone heavy atoms of moving residues
    side_chain_restraint: float = 5.0  # flat-bottomed, on side-chain heavy atoms of moving residues ...
    side_chain_tolerance: float = 1.5  # ... free within this distance of the input position
    map_weight: float | None = None  # kJ/mol per σ per carbon-equivalent atom; None: chosen on the ligand's geometry
    weight_scale: float = 1.0  # multiplies the chosen weight
    minimise_iterations: int = 400
    # 2 fs steps, hydrogen masses repartitioned to 3 Da. 1000 → 500 in speed round 1, 500 → 250 (0.5 ps) in round 12
    # (docs/benchmarks.md, Speed per blob): the refinement benchmark's 30 refined poses gave the same PoseBusters passes
    # and mean RMSD (0.580 / 0.581 Å), the realistic maps' sixteen seeds the same answers but one knife-edge map.
    anneal_steps: int = 250
    # After every start is minimised, anneal the top docked start and those whose ligand CC is within this of the
    # best (None: every start). Starts further behind were never chosen after an anneal either (choose_start wants a
    # better fit), and annealing them took ~2/3 of a pocket's refinement.
    anneal_cc_window: float | None = 0.05
    anneal_temperature: float = 300.0  # start of the linear cooling to 0 K
    # Multiplies the ligand's crystal-structure torsion potentials (ETKDG's, ``ligfit.measures.torsions``; kcal/mol)
    # added beside its force field's own torsions, so that a torsion the density does not hold settles where crystal
    # structures put it; 0 leaves them out. At 1, on the realistic maps' fresh seeds 46–55, written answers holding a rare
    # torsion went from 18 to 6 of 107, every placement the same, RMSDs of right answers 0.775 → 0.769 Å on average
    # (docs/benchmarks.md, Realistic maps "Round 42").
    torsion_preference_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.solvent not in SOLVENT_MODELS:
            raise BadOptionError(f"unknown solvent model {self.solvent!r}; use one of {', '.join(SOLVENT_MODELS)}")
        if self.ligand_force_field not in LIGAND_FORCE_FIELDS:
            raise BadOptionError(f"unknown ligand force field {self.ligand_force_field!r}; use one of {', '.join(LIGAND_FORCE_FIELDS)}")
        if self.starts < 1:
            raise BadOptionError(f"starts must be at least 1, got {self.starts}")
        if not (math.isfinite(self.torsion_preference_weight) and self.torsion_preference_weight >= 0):
            raise BadOptionError(f"torsion_preference_weight must be a finite number ≥ 0, got {self.torsion_preference_weight}")
        if not 0 < self.mobile_radius <= self.shell_radius:
            raise BadOptionError(f"need 0 < mobile_radius ≤ shell_radius, got {self.mobile_radius} and {self.shell_radius} Å")

    def as_dict(self) -> dict:
        return asdict(self)
