"""What several stages measure: ligand fit to the map, Q-score, clashes and contacts, strain, symmetric RMSD, and a
Vina-like interaction score.

The one place for these measures: docking, refinement, templates, the build pipeline and the
evaluation harness all import them from here.
"""

from ligfit.measures.interactions import interaction_score, ligand_types
from ligfit.measures.pose import (
    CLOSE_CONTACT,
    METAL_ELEMENTS,
    NON_METALS,
    POLAR_ELEMENTS,
    atomic_numbers,
    close_contacts,
    connectivity_mol,
    count_clashes,
    ligand_cc,
    ligand_symmetry,
    packing,
    polar_contacts,
    relax_pose,
    symmetric_rmsd,
    symmetry_matches,
)
from ligfit.measures.qscore import expected_q_score, q_scores

__all__ = [
    "CLOSE_CONTACT",
    "METAL_ELEMENTS",
    "NON_METALS",
    "POLAR_ELEMENTS",
    "atomic_numbers",
    "close_contacts",
    "connectivity_mol",
    "count_clashes",
    "expected_q_score",
    "interaction_score",
    "ligand_cc",
    "ligand_symmetry",
    "ligand_types",
    "packing",
    "polar_contacts",
    "q_scores",
    "relax_pose",
    "symmetric_rmsd",
    "symmetry_matches",
]
