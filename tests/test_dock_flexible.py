"""Docking very flexible ligands (≥ DockingOptions.flexible_rotatable rotatable bonds): propionyl-CoA in its pocket."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.cases import simulated_case
from benchmarks.ligand_placement import ligand_rmsd
from ligfit import api
from ligfit.dock import DockingOptions
from ligfit.dock.place import strain_allowance
from ligfit.ligand import heavy_atom_mol, load_ligand


def test_flexible_settings_leave_ordinary_ligands_alone():
    ordinary = load_ligand("CC(=O)Nc1ccc(O)cc1", max_conformers=2)  # paracetamol: 1 rotatable bond
    options = DockingOptions()
    assert strain_allowance(ordinary, options) == options.strain_allowance
    assert strain_allowance(ordinary, replace(options, flexible_strain_per_rotatable=100.0)) == options.strain_allowance
    lipid = load_ligand("CCCCCCCCCCCCCCCCC", max_conformers=2)  # heptadecane (6YRV's PJ8): 14 rotatable bonds
    assert strain_allowance(lipid, options) == max(options.strain_allowance, 14 * options.flexible_strain_per_rotatable)


def test_propionyl_coa_lands_in_its_pocket_at_3_5_angstrom(data):
    """7D0P's 1VU (52 heavy atoms, 23 rotatable bonds), map seed 3 at 3.5 Å: the search used to stop 4.2 Å off."""
    case = simulated_case(data, "7D0P_1VU", 3.5, seed=3)
    result = api.build(case.density, case.smiles, case.model, resolution=3.5, refine=False)
    assert len(result.ligand.rotatable_bonds) >= DockingOptions().flexible_rotatable
    assert result.found
    assert ligand_rmsd(heavy_atom_mol(result.ligand, result.best_pose.coordinates), case.reference) <= 2.0
    assert result.best_pose.cc >= 0.75
