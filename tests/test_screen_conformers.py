"""How many conformers a screen docks each ligand with: more for a ligand with many rotatable bonds.

The data test screens PoseBusters 7ZZB's 51-atom bis-adenosine (KGX, 11 rotatable bonds by RDKit's count) simulated at
3 Å (benchmarks/cases.py, seed 4: a held-out split of docs/benchmarks.md, "Screening a library") alone against its
map, once as screens did before (8 conformers) and once with the screen's defaults (24). With 8 its fit score was 0.16
and it ranked 8th of its 21-ligand library; with 24 it fits at about 0.40 and ranks first.
"""

from __future__ import annotations

import dataclasses

from ligfit.screen import ScreenOptions, run_screen
from ligfit.screen.identify import IDENTIFY_FLEXIBLE_CONFORMERS
from ligfit.screen.run import FLEXIBLE_ROTORS, MANY_ROTORS, conformers_for


def test_a_ligand_with_many_rotatable_bonds_gets_more_conformers():
    options = ScreenOptions(resolution=3.0)
    assert conformers_for(0, options) == conformers_for(MANY_ROTORS, options) == options.max_conformers == 8
    assert conformers_for(MANY_ROTORS + 1, options) == conformers_for(FLEXIBLE_ROTORS, options) == options.many_rotor_conformers == 24
    assert conformers_for(FLEXIBLE_ROTORS + 1, options) == 8  # CoA, lipids, detergents: anchor and grow explore their torsions


def test_the_caps_and_the_old_rule_stay_available():
    identify = ScreenOptions(resolution=3.0, flexible_conformers=IDENTIFY_FLEXIBLE_CONFORMERS)
    assert conformers_for(FLEXIBLE_ROTORS, identify) == 24 and conformers_for(FLEXIBLE_ROTORS + 1, identify) == IDENTIFY_FLEXIBLE_CONFORMERS
    assert conformers_for(12, ScreenOptions(resolution=3.0, many_rotor_conformers=None)) == 8
    assert conformers_for(12, ScreenOptions(resolution=3.0, max_conformers=40)) == 40  # never fewer than asked for
    assert conformers_for(12, ScreenOptions(resolution=3.0, max_conformers=None)) is None  # build's own count


def test_more_conformers_let_a_flexible_true_ligand_fit_its_blob(data):
    from benchmarks.cases import simulated_case

    case = simulated_case(data, "7ZZB_KGX", 3.0, seed=4)
    options = ScreenOptions(resolution=3.0, seed=4)
    before = run_screen(
        case.density, case.model, [("KGX", case.smiles)], dataclasses.replace(options, many_rotor_conformers=None), workers=1
    )
    now = run_screen(case.density, case.model, [("KGX", case.smiles)], options, workers=1)
    assert before.rows[0]["fit_score"] < 0.25, before.table()
    assert now.rows[0]["fit_score"] >= 0.35, now.table()
