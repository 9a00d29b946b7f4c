"""ligfit.measures: ligand CC, clashes and contacts on hand-placed atoms, symmetric RMSD against spyrmsd, strain."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest
from rdkit import Chem

from benchmarks.ligand_placement import ligand_rmsd
from ligfit import io, maps
from ligfit.io import AtomTable
from ligfit.ligand import load_ligand, posed_mol
from ligfit.measures import (
    CLOSE_CONTACT,
    METAL_ELEMENTS,
    NON_METALS,
    POLAR_ELEMENTS,
    close_contacts,
    count_clashes,
    ligand_cc,
    ligand_symmetry,
    packing,
    polar_contacts,
    relax_pose,
    symmetric_rmsd,
    symmetry_matches,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"
TYK2_SMILES = "CC(=O)Nc1cc(NC(=O)c2c(Cl)cccc2Cl)ccn1"


def _protein(*atoms: tuple[str, tuple[float, float, float]]) -> AtomTable:
    """A hand-placed 'protein' of single atoms (element, position Å)."""
    n = len(atoms)
    return AtomTable(
        np.array([position for _, position in atoms], dtype=float).reshape(n, 3),
        np.array([element for element, _ in atoms]),
        np.array(["A"] * n),
        np.arange(1, n + 1),
        np.array(["UNK"] * n),
        np.array([element for element, _ in atoms]),
    )


def _at(x: float) -> np.ndarray:
    return np.array([[x, 0.0, 0.0]])


# --------------------------------------------------------------------------- element sets


def test_metal_elements():
    assert {"Fe", "Zn", "Mg", "Ca", "Mn", "Cu", "Na", "K", "Co", "Ni"} <= METAL_ELEMENTS
    assert not {"C", "N", "O", "S", "P", "Se", "H", "Cl", "Br", "I", "B", "Si", "As"} & METAL_ELEMENTS
    assert not METAL_ELEMENTS & NON_METALS
    assert POLAR_ELEMENTS == {"N", "O"}


# --------------------------------------------------------------------------- ligand_cc


@pytest.fixture(scope="module")
def reference_ligand():
    mol = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    return mol.GetConformer().GetPositions(), [atom.GetSymbol() for atom in mol.GetAtoms()]


@pytest.fixture(scope="module")
def ligand_map(reference_ligand):
    """A 3 Å map simulated from the reference ligand alone (no noise)."""
    coordinates, elements = reference_ligand
    empty = gemmi.Structure()
    empty.add_model(gemmi.Model(1))
    structure = io.add_ligand(empty, elements, [f"{e}{i}" for i, e in enumerate(elements)], coordinates)
    return maps.simulate(structure, 3.0, voxel_size=0.8, margin=8.0)


def test_ligand_cc_of_the_ligand_in_its_own_map_is_one(ligand_map, reference_ligand):
    coordinates, elements = reference_ligand
    # Gaussians weighted by electron scattering vs gemmi's electron scattering factors: 0.986 (by atomic number, as
    # X-ray scatters: 0.96)
    assert ligand_cc(ligand_map, coordinates, elements, 3.0) > 0.98


def test_ligand_cc_weighs_atoms_as_a_cryo_em_map_shows_them(data):
    """EMD-3488 (real, 3.2 Å): 5NI1's hemes correlate 0.85–0.86 with the map weighted by electron scattering, 0.77–0.78
    by atomic number (iron counted 4.3 carbons where the map shows 2.5)."""
    from benchmarks.cases import hemoglobin_hemes

    density, _, hemes = hemoglobin_hemes(data)
    assert hemes["5NI1"]
    for heme in hemes["5NI1"]:
        elements = [atom.GetSymbol() for atom in heme.GetAtoms()]
        assert ligand_cc(density, heme.GetConformer().GetPositions(), elements, 3.2) > 0.83


@pytest.mark.parametrize("shift", [2.0, 4.0])
def test_ligand_cc_of_a_shifted_pose_is_low(ligand_map, reference_ligand, shift):
    coordinates, elements = reference_ligand
    right = ligand_cc(ligand_map, coordinates, elements, 3.0)
    shifted = ligand_cc(ligand_map, coordinates + np.array([shift, 0.0, 0.0]), elements, 3.0)
    assert shifted < 0.75 and shifted < right - 0.2


def test_ligand_cc_of_a_rotated_pose_is_lower(ligand_map, reference_ligand):
    coordinates, elements = reference_ligand
    centre = coordinates.mean(axis=0)
    turn = np.array([[np.cos(np.pi / 2), -np.sin(np.pi / 2), 0], [np.sin(np.pi / 2), np.cos(np.pi / 2), 0], [0, 0, 1]])
    rotated = (coordinates - centre) @ turn.T + centre
    assert ligand_cc(ligand_map, rotated, elements, 3.0) < 0.7


def test_ligand_cc_outside_the_map_is_zero(ligand_map, reference_ligand):
    coordinates, elements = reference_ligand
    assert ligand_cc(ligand_map, coordinates + 100.0, elements, 3.0) == 0.0


# --------------------------------------------------------------------------- clashes and contacts


def test_carbon_pairs_clash_below_three_quarters_of_the_vdw_sum():
    protein = _protein(("C", (0.0, 0.0, 0.0)))
    limit = 0.75 * (1.7 + 1.7)  # 2.55 Å with RDKit's (Bondi) radii
    assert count_clashes(_at(limit - 0.05), ["C"], protein) == 1
    assert count_clashes(_at(limit + 0.05), ["C"], protein) == 0
    assert count_clashes(_at(3.8), ["C"], protein) == 0


def test_clashes_count_pairs_and_use_each_pair_s_radii():
    protein = _protein(("O", (0.0, 0.0, 0.0)), ("C", (0.0, 4.0, 0.0)))
    # N–O limit 0.75·(1.6 + 1.55) = 2.36 Å: 2.4 Å is a hydrogen bond, 2.2 Å a clash.
    assert count_clashes(_at(2.4), ["N"], protein) == 0
    assert count_clashes(_at(2.2), ["N"], protein) == 1
    # One ligand atom between both protein atoms, 2.0 Å from each: two clashing pairs.
    assert count_clashes(np.array([[0.0, 2.0, 0.0]]), ["C"], protein) == 2
    assert count_clashes(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.0]]), ["C", "C"], protein) == 3


@pytest.mark.parametrize("partner", ["N", "O", "S"])
def test_metal_coordination_is_not_a_clash(partner):
    protein = _protein((partner, (0.0, 0.0, 0.0)))
    for metal in ("Zn", "Fe", "Mg"):
        assert count_clashes(_at(2.1), [metal], protein) == 0
        assert close_contacts(_at(2.1), [metal], protein) == 0
    assert count_clashes(_at(2.1), ["C"], protein) == 1  # the same distance for a carbon is a clash


@pytest.mark.parametrize("donor", ["N", "O", "S"])
def test_a_ligand_atom_coordinating_a_protein_metal_is_not_a_clash(donor):
    protein = _protein(("Zn", (0.0, 0.0, 0.0)), ("C", (0.0, 6.0, 0.0)))
    assert close_contacts(_at(2.05), [donor], protein) == 0  # coordination, as close_contacts already says
    assert count_clashes(_at(2.05), [donor], protein) == 0


def test_a_metal_next_to_a_protein_carbon_clashes():
    protein = _protein(("C", (0.0, 0.0, 0.0)))
    assert count_clashes(_at(2.1), ["Zn"], protein) == 1


def test_no_protein_means_no_clashes_or_contacts():
    for protein in (None, _protein()):
        assert count_clashes(_at(0.5), ["C"], protein) == 0
        assert close_contacts(_at(0.5), ["C"], protein) == 0
        assert polar_contacts(_at(2.9), ["N"], protein) == 0


def test_packing_averages_the_protein_atoms_within_4_angstrom_of_each_ligand_atom():
    protein = _protein(("C", (3.9, 0.0, 0.0)), ("O", (0.0, 3.0, 0.0)), ("N", (4.1, 0.0, 0.0)))
    ligand = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    assert packing(ligand, protein) == pytest.approx(1.0)  # two atoms within 4 Å of the first, none of the second
    assert packing(ligand[:1], protein) == pytest.approx(2.0)
    assert packing(ligand, None) == 0.0


def test_close_contacts_below_2_2_angstrom():
    assert CLOSE_CONTACT == 2.2
    protein = _protein(("C", (0.0, 0.0, 0.0)), ("O", (0.0, 1.5, 0.0)), ("Zn", (0.0, -2.0, 0.0)))
    assert close_contacts(_at(2.1), ["C"], protein) == 1  # only the protein C is within 2.2 Å
    assert close_contacts(_at(2.3), ["C"], protein) == 0
    assert close_contacts(np.array([[0.0, 0.75, 0.0]]), ["C"], protein) == 2  # C and O, not the metal far away
    assert close_contacts(np.array([[0.0, -1.0, 0.0]]), ["O"], protein) == 1  # the protein Zn (coordination) is excepted


def test_polar_contacts_are_hydrogen_bonds_and_coordination():
    protein = _protein(("O", (0.0, 0.0, 0.0)), ("C", (0.0, 6.0, 0.0)), ("S", (0.0, -6.0, 0.0)))
    assert polar_contacts(_at(2.9), ["N"], protein) == 1
    assert polar_contacts(_at(2.9), ["O"], protein) == 1
    assert polar_contacts(_at(3.5), ["N"], protein) == 0  # too far
    assert polar_contacts(_at(2.3), ["N"], protein) == 0  # too close for a hydrogen bond
    assert polar_contacts(_at(2.9), ["C"], protein) == 0  # not polar
    assert polar_contacts(np.array([[0.0, 3.0, 0.0]]), ["N"], protein) == 1  # 3.0 Å from the O, the C is no partner
    assert polar_contacts(np.array([[0.0, 3.0, 0.0]]), ["Cl"], protein) == 0
    assert polar_contacts(np.array([[0.0, -3.9, 0.0]]), ["Zn"], protein) == 1  # metal–S at 2.1 Å
    assert polar_contacts(np.array([[0.0, -3.9, 0.0]]), ["N"], protein) == 0  # N–S is no hydrogen bond here
    assert polar_contacts(np.array([[0.0, 2.1, 0.0]]), ["Zn"], protein) == 1  # metal–O at 2.1 Å
    assert polar_contacts(np.array([[0.0, 2.9, 0.0]]), ["Zn"], protein) == 0  # metal–O at 2.9 Å is too far


def test_polar_contacts_count_ligand_atoms_not_pairs():
    protein = _protein(("O", (0.0, 1.5, 0.0)), ("N", (0.0, -1.5, 0.0)))
    assert polar_contacts(_at(2.5), ["O"], protein) == 1  # one ligand O, two partners at 2.9 Å
    assert polar_contacts(np.array([[2.5, 0.0, 0.0], [-2.5, 0.0, 0.0]]), ["O", "N"], protein) == 2


# --------------------------------------------------------------------------- symmetry and RMSD


@pytest.fixture(scope="module")
def ibuprofen():
    """Ibuprofen (two methyls and a ring flip: 4 automorphisms) with several conformers."""
    return load_ligand("CC(C)Cc1ccc(cc1)C(C)C(=O)O", protonation="as-given", max_conformers=6, seed=1)


def test_ligand_symmetry_sizes(ibuprofen):
    assert len(ligand_symmetry(load_ligand("c1ccccc1", max_conformers=1))) == 12
    # Graphs of elements and connectivity, as spyrmsd: the acid's two oxygens swap, the chiral carbon's neighbours do not.
    chiral = ligand_symmetry(load_ligand("C[C@H](N)C(=O)O", protonation="as-given", max_conformers=1))
    assert chiral.shape == (2, 6)
    np.testing.assert_array_equal(chiral[0], np.arange(6))
    assert sorted(set(np.flatnonzero(chiral[1] != np.arange(6)))) == [4, 5]  # only the two oxygens move
    symmetry = ligand_symmetry(ibuprofen)
    assert symmetry.shape == (8, 15)  # ring flip × isopropyl methyls × carboxyl oxygens
    assert len({tuple(row) for row in symmetry}) == 8  # distinct permutations
    assert np.all(np.sort(symmetry, axis=1) == np.arange(15))  # each row is a permutation


def _heavy_with_conformer(ligand, index: int) -> Chem.Mol:
    heavy = Chem.RemoveHs(Chem.Mol(ligand.mol))
    conformer = Chem.Conformer(heavy.GetConformers()[index])
    heavy.RemoveAllConformers()
    heavy.AddConformer(conformer, assignId=True)
    return heavy


def _topology(mol: Chem.Mol) -> Chem.Mol:
    """Elements and single bonds only (spyrmsd's graph: no bond orders, charges or hydrogens)."""
    editable = Chem.RWMol()
    for atom in mol.GetAtoms():
        plain = Chem.Atom(atom.GetAtomicNum())
        plain.SetNoImplicit(True)
        editable.AddAtom(plain)
    for bond in mol.GetBonds():
        editable.AddBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), Chem.BondType.SINGLE)
    graph = editable.GetMol()
    graph.UpdatePropertyCache(strict=False)
    return graph


def test_symmetric_rmsd_matches_spyrmsd_on_shuffled_atoms(ibuprofen):
    assert ibuprofen.mol.GetNumConformers() >= 3
    first = _heavy_with_conformer(ibuprofen, 0)
    rng = np.random.default_rng(7)
    for index in range(1, ibuprofen.mol.GetNumConformers()):
        second = _heavy_with_conformer(ibuprofen, index)
        # Move the second pose so the RMSD is not trivially small, then shuffle its atoms.
        moved = second.GetConformer()
        for atom in range(second.GetNumAtoms()):
            position = np.array(moved.GetAtomPosition(atom)) + np.array([0.7, -0.4, 0.2])
            moved.SetAtomPosition(atom, position.tolist())
        order = rng.permutation(second.GetNumAtoms()).tolist()
        assert order != list(range(second.GetNumAtoms()))
        shuffled = Chem.RenumberAtoms(second, order)
        # spyrmsd's graphs carry no bond orders, so the acid's C=O and C–OH oxygens swap too: 2 · 2 · 2 matches.
        matches = symmetry_matches(_topology(first), _topology(shuffled))
        assert matches.shape == (8, 15)
        first_xyz, shuffled_xyz = first.GetConformer().GetPositions(), shuffled.GetConformer().GetPositions()
        ours = symmetric_rmsd(first_xyz, shuffled_xyz, matches)
        assert ours == pytest.approx(ligand_rmsd(shuffled, first), abs=1e-6)
        assert ours > 0.1  # a real distance, not a trivial 0
        # With bond orders the oxygens stay apart: fewer matches, never a smaller RMSD.
        strict = symmetry_matches(first, shuffled)
        assert strict.shape == (4, 15)
        assert symmetric_rmsd(first_xyz, shuffled_xyz, strict) >= ours - 1e-9


def test_ligand_symmetry_swaps_the_oxygens_of_a_carboxylate():
    benzoate = load_ligand("OC(=O)c1ccccc1", max_conformers=1)  # pH 7: O=C([O-])c1ccccc1
    assert "[O-]" in benzoate.smiles
    heavy = benzoate.heavy_atom_count
    pose = benzoate.conformer_coordinates()[0]
    oxygens = [atom.GetIdx() for atom in benzoate.mol.GetAtoms() if atom.GetSymbol() == "O"]
    swapped = pose.copy()
    swapped[oxygens] = pose[oxygens[::-1]]
    mol_a, mol_b = Chem.RemoveHs(posed_mol(benzoate, pose)), Chem.RemoveHs(posed_mol(benzoate, swapped))
    assert ligand_rmsd(mol_b, mol_a) == pytest.approx(0.0, abs=1e-6)  # the same pose to spyrmsd
    assert len(ligand_symmetry(benzoate)) == 4  # ring flip × oxygen swap (gives 2)
    assert symmetric_rmsd(pose[:heavy], swapped[:heavy], ligand_symmetry(benzoate)) == pytest.approx(0.0, abs=1e-6)


def test_symmetric_rmsd_of_a_symmetry_mate_is_zero():
    ligand = load_ligand(TYK2_SMILES, max_conformers=2)
    symmetry = ligand_symmetry(ligand)
    assert len(symmetry) == 2  # the dichlorophenyl ring flip
    heavy = ligand.heavy_atom_count
    pose = ligand.conformer_coordinates()[0]
    flipped = pose.copy()
    flipped[symmetry[1]] = pose[:heavy]  # atom p[i] of the mate sits where atom i was
    plain = float(np.sqrt(((flipped[:heavy] - pose[:heavy]) ** 2).sum(-1).mean()))
    assert plain > 0.5  # without symmetry the two look different
    assert symmetric_rmsd(pose, flipped, symmetry) == pytest.approx(0.0, abs=1e-9)


def test_symmetry_matches_of_different_graphs_are_empty():
    benzene = Chem.MolFromSmiles("c1ccccc1")
    pyridine = Chem.MolFromSmiles("c1ccncc1")
    assert symmetry_matches(benzene, pyridine).shape == (0, 6)
    assert symmetry_matches(benzene, Chem.MolFromSmiles("C1CCCCC1C")).shape == (0, 6)


# --------------------------------------------------------------------------- strain


@pytest.fixture(scope="module")
def tyk2_ligand():
    return load_ligand(TYK2_SMILES, max_conformers=4, seed=0)


def test_lowest_conformer_has_no_strain(tyk2_ligand):
    lowest = int(np.argmin(tyk2_ligand.conformer_energies))
    pose = tyk2_ligand.conformer_coordinates()[lowest]
    relaxed, strain = relax_pose(tyk2_ligand, pose, restraint_force=100.0)
    assert strain is not None and -1e-6 <= strain < 0.5  # zero up to rounding: the minimum is the minimum
    assert relaxed.shape == pose.shape
    assert np.abs(relaxed - pose).max() < 0.05


def test_distorted_pose_is_strained_and_relaxed_in_place(tyk2_ligand):
    heavy = tyk2_ligand.heavy_atom_count
    pose = tyk2_ligand.conformer_coordinates()[0]
    noisy = pose + np.random.default_rng(3).normal(0.0, 0.15, pose.shape)
    relaxed, strain = relax_pose(tyk2_ligand, noisy, restraint_force=100.0)
    conformer_strain = tyk2_ligand.conformer_energies[0] - tyk2_ligand.conformer_energies.min()
    assert strain > conformer_strain + 1.0  # the noise costs energy that the restraints keep
    # Heavy atoms stay near the pose they were held to.
    assert np.sqrt(((relaxed[:heavy] - noisy[:heavy]) ** 2).sum(-1).mean()) < 0.2
    _, weak = relax_pose(tyk2_ligand, noisy, restraint_force=1.0)
    assert weak < strain  # weaker restraints let it relax further


def test_strain_is_none_without_mmff_parameters():
    boronic = load_ligand("OB(O)c1ccccc1", max_conformers=1)
    assert boronic.force_field != "MMFF94"
    pose = boronic.conformer_coordinates()[0]
    relaxed, strain = relax_pose(boronic, pose, restraint_force=100.0)
    assert strain is None
    np.testing.assert_array_equal(relaxed, pose)
