"""Ligand parsing, protonation and conformer ensembles, on real ligands."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolAlign

from ligfit.errors import BadLigandError
from ligfit.ligand import load_ligand, parse_ligand, protonate_ph7


def _charges(smiles: str) -> list[int]:
    return sorted(a.GetFormalCharge() for a in protonate_ph7(Chem.MolFromSmiles(smiles)).GetAtoms() if a.GetFormalCharge())


def test_ph7_charges_acids_and_bases_but_only_one_piperazine_nitrogen():
    assert _charges("NCCCC(=O)O") == [-1, 1]  # GABA is a zwitterion
    assert _charges("CC(=O)Nc1ccc(O)cc1") == []  # amide and phenol stay neutral
    assert _charges("CN1CCN(Cc2ccccc2)CC1") == [1]  # one charge on N-methylpiperazine
    assert _charges("Nc1ccccc1") == []  # aniline stays neutral


def test_conformers_are_distinct_minimised_and_heavy_atoms_come_first():
    ligand = load_ligand("Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1")  # imatinib
    assert ligand.heavy_atom_count == 37
    assert all(a.GetAtomicNum() > 1 for a in ligand.mol.GetAtoms() if a.GetIdx() < 37)
    assert ligand.mol.GetNumConformers() >= 20
    heavy = Chem.RemoveHs(ligand.mol)
    rms = [rdMolAlign.GetBestRMS(heavy, heavy, prbId=i, refId=0, maxMatches=10) for i in range(1, 6)]
    assert min(rms) > 0.5  # deduplicated at 0.5 Å
    assert np.all(np.diff(ligand.conformer_energies) >= 0)  # lowest energy first


@pytest.mark.parametrize("entry", ["7KRU_ATP", "5SB2_1K2", "7QFM_AY3"])
def test_ensemble_holds_a_conformer_close_to_the_deposited_pose(data, entry):
    reference = Chem.MolFromMolFile(str(data / "complexes" / entry / f"{entry}_ligand.sdf"))
    ligand = load_ligand(Chem.MolToSmiles(reference), protonation="as-given")
    heavy = Chem.RemoveHs(ligand.mol)
    best = min(rdMolAlign.GetBestRMS(heavy, reference, prbId=i, maxMatches=100) for i in range(heavy.GetNumConformers()))
    assert best < 1.5


def test_more_conformers_asked_for_get_a_larger_embedding_budget(monkeypatch):
    """The 16 CPU-s budget is for the default count: twice the count asked for gets twice the budget (a macrocycle's
    ring is docked only as its conformers hold it), a count below the default the same budget. A clock that charges the
    first batch of 8 one CPU-second each makes the budget bind; what each call asks ETKDG for is recorded."""
    import itertools

    import ligfit.ligand as ligand_module

    mol = Chem.MolFromSmiles("CCCCCCCCO")
    default = ligand_module.conformer_count(len(ligand_module.rotatable_bonds(Chem.AddHs(mol))))
    assert default > 40
    embed = ligand_module._embed
    for asked, expected in ((None, [8, 8]), (20, [8, 8]), (2 * default, [8, 24])):
        requested: list[int] = []
        clock = itertools.chain([0.0, 8.0], itertools.repeat(8.0))
        monkeypatch.setattr(ligand_module.time, "process_time", lambda clock=clock: next(clock))
        monkeypatch.setattr(
            ligand_module,
            "_embed",
            lambda mol_h, count, seed, requested=requested, **kw: requested.append(count) or embed(mol_h, count, seed, **kw),
        )
        ligand_module.generate_conformers(mol, max_conformers=asked)
        monkeypatch.undo()
        assert requested == expected, asked


def test_a_macrocycle_is_embedded_with_its_own_count_and_budget(monkeypatch):
    """A flexible ring of 12 or more atoms (FK506's 21) makes a macrocycle, fused small rings and a porphyrin do not.
    A macrocycle asks ETKDG for MACROCYCLE_CONFORMERS with the budget raised to match (a clock charges the first batch
    of eight 80 CPU-s, so the default budget of 16 would allow none more); a count asked for explicitly is kept (eight
    charged 8 CPU-s)."""
    import itertools

    import ligfit.ligand as ligand_module

    fk506 = "C=CC[C@@H]1/C=C(\\C)C[C@H](C)C[C@H](OC)[C@H]2O[C@@](O)(C(=O)C(=O)N3CCCC[C@H]3C(=O)O[C@H](/C(C)=C/[C@@H]3CC[C@@H](O)[C@H](OC)C3)[C@H](C)[C@@H](O)CC1=O)[C@H](C)C[C@@H]2OC"  # 7U0U's FK5
    lactone = "O=C1CCCCCCCCCCCO1"  # 13-membered ring, no rotatable bond
    assert ligand_module.is_macrocycle(Chem.MolFromSmiles(fk506))
    assert ligand_module.is_macrocycle(Chem.MolFromSmiles(lactone))
    porphine = "c1cc2cc3ccc(cc4ccc(cc5ccc(cc1n2)[nH]5)n4)[nH]3"  # a 16-atom ring, but conjugated: rigid
    for rigid in ("C1CCC2CCCCC2C1", "c1ccc2ccccc2c1", "C1CCCCCCCCC1", porphine):  # decalin, naphthalene, cyclodecane
        assert not ligand_module.is_macrocycle(Chem.MolFromSmiles(rigid)), rigid
    mol = Chem.MolFromSmiles(lactone)
    default = ligand_module.conformer_count(len(ligand_module.rotatable_bonds(Chem.AddHs(mol))))
    budget = 16.0 * ligand_module.MACROCYCLE_CONFORMERS / default  # CPU-s
    embed = ligand_module._embed
    for asked, first_batch, expected in ((None, 80.0, [8, int((budget - 80.0) / 10.0)]), (20, 8.0, [8, 12])):
        requested: list[int] = []
        clock = itertools.chain([0.0, first_batch], itertools.repeat(first_batch))
        monkeypatch.setattr(ligand_module.time, "process_time", lambda clock=clock: next(clock))
        monkeypatch.setattr(
            ligand_module,
            "_embed",
            lambda mol_h, count, seed, requested=requested, **kw: requested.append(count) or embed(mol_h, min(count, 8), seed, **kw),
        )
        ligand_module.generate_conformers(mol, max_conformers=asked)
        monkeypatch.undo()
        assert requested == expected, asked


def test_ccd_codes_and_sdf_files_load(data):
    assert load_ligand("ATP").heavy_atom_count == 31
    assert parse_ligand("ccd:HEM").GetNumHeavyAtoms() == 43
    sdf = data / "complexes" / "5SAK_ZRY" / "5SAK_ZRY_ligand.sdf"
    assert load_ligand(str(sdf)).heavy_atom_count == 18


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("C1CC(", "not a valid SMILES"),
        ("XYZ12", "not in the Chemical Component Dictionary"),
        ("/no/such/file.sdf", "no such ligand file"),
        ("*c1ccccc1", "dummy atoms"),
    ],
)
def test_bad_ligands_get_a_clear_message(source, message):
    with pytest.raises(BadLigandError, match=message):
        load_ligand(source)
