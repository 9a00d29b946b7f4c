"""ligfit.io: structures in and out, the AtomTable, atomic file and folder writes (no ../shared/data needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import gemmi
import numpy as np
import pytest

from ligfit import io
from ligfit.errors import BadModelError, OutputExistsError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"


def _pdb_line(
    serial: int, name: str, altloc: str, residue: str, chain: str, number: int, xyz, occupancy: float, element: str, record="ATOM"
) -> str:
    return (
        f"{record:<6}{serial:>5} {name:<4}{altloc:1}{residue:>3} {chain:1}{number:>4}    "
        f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occupancy:6.2f}{30.0:6.2f}          {element:>2}"
    )


# Residue A:1 ALA with two hydrogens and an alternate conformation of CB (A at occupancy 0.6, B at 0.4),
# residue A:2 GLY, one water B:101 and one ligand-like HETATM residue B:201 (name EDO).
ATOMS = [
    ("N", "", "ALA", "A", 1, (0.0, 0.0, 0.0), 1.0, "N", "ATOM"),
    ("CA", "", "ALA", "A", 1, (1.458, 0.0, 0.0), 1.0, "C", "ATOM"),
    ("C", "", "ALA", "A", 1, (2.009, 1.420, 0.0), 1.0, "C", "ATOM"),
    ("O", "", "ALA", "A", 1, (1.251, 2.390, 0.0), 1.0, "O", "ATOM"),
    ("CB", "A", "ALA", "A", 1, (1.988, -0.773, -1.199), 0.6, "C", "ATOM"),
    ("CB", "B", "ALA", "A", 1, (1.988, -0.773, 1.199), 0.4, "C", "ATOM"),
    ("H", "", "ALA", "A", 1, (-0.5, -0.8, 0.0), 1.0, "H", "ATOM"),
    ("HA", "", "ALA", "A", 1, (1.8, -0.5, 0.9), 1.0, "H", "ATOM"),
    ("N", "", "GLY", "A", 2, (3.332, 1.536, 0.0), 1.0, "N", "ATOM"),
    ("CA", "", "GLY", "A", 2, (3.988, 2.839, 0.0), 1.0, "C", "ATOM"),
    ("C", "", "GLY", "A", 2, (5.504, 2.693, 0.0), 1.0, "C", "ATOM"),
    ("O", "", "GLY", "A", 2, (6.049, 1.586, 0.0), 1.0, "O", "ATOM"),
    ("O", "", "HOH", "B", 101, (8.0, 8.0, 8.0), 1.0, "O", "HETATM"),
    ("C1", "", "EDO", "B", 201, (6.0, 5.0, 1.0), 1.0, "C", "HETATM"),
    ("O1", "", "EDO", "B", 201, (7.0, 5.0, 1.0), 1.0, "O", "HETATM"),
]


def _write_pdb(path: Path, occupancy: float | None = None) -> Path:
    lines = ["CRYST1   30.000   30.000   30.000  90.00  90.00  90.00 P 1"]
    for serial, (name, altloc, residue, chain, number, xyz, occ, element, record) in enumerate(ATOMS, start=1):
        lines.append(_pdb_line(serial, name, altloc, residue, chain, number, xyz, occ if occupancy is None else occupancy, element, record))
    lines.append("END")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small_pdb(tmp_path) -> Path:
    return _write_pdb(tmp_path / "small.pdb")


def _atoms(structure: gemmi.Structure) -> list[tuple[str, int, str, str, tuple[float, float, float], float]]:
    return [
        (chain.name, residue.seqid.num, residue.name, atom.name, tuple(round(v, 3) for v in atom.pos.tolist()), round(atom.occ, 2))
        for chain in structure[0]
        for residue in chain
        for atom in residue
    ]


# --------------------------------------------------------------------------- read_structure


def test_read_structure_keeps_the_first_alternate_conformation(small_pdb):
    structure = io.read_structure(small_pdb)
    cb = [atom for atom in _atoms(structure) if atom[3] == "CB"]
    assert len(cb) == 1
    assert cb[0][4] == (1.988, -0.773, -1.199)  # altloc A, not B
    assert structure[0].count_atom_sites() == len(ATOMS) - 1


def test_read_structure_keeps_only_the_first_model(tmp_path, small_pdb):
    structure = gemmi.read_structure(str(small_pdb))
    second = structure[0].clone()
    structure.add_model(second)
    structure.renumber_models()
    assert len(structure) == 2
    read = io.read_structure(structure)
    assert len(read) == 1
    assert len(structure) == 2  # the caller's structure is not changed (a copy is read)


def test_all_zero_occupancies_become_one(tmp_path, caplog):
    path = _write_pdb(tmp_path / "zero.pdb", occupancy=0.0)
    with caplog.at_level(logging.WARNING, logger="ligfit.io"):
        structure = io.read_structure(path)
    occupancies = {atom[5] for atom in _atoms(structure)}
    assert occupancies == {1.0}
    assert "occupancy 0" in caplog.text


def test_some_zero_occupancies_are_kept(tmp_path):
    lines = (EXAMPLE / "protein.pdb").read_text().splitlines()
    # Set the first ATOM record's occupancy to 0: a real partially-occupied model keeps it.
    index = next(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    lines[index] = lines[index][:54] + f"{0.0:6.2f}" + lines[index][60:]
    path = tmp_path / "partial.pdb"
    path.write_text("\n".join(lines) + "\n")
    occupancies = np.array([atom[5] for atom in _atoms(io.read_structure(path))])
    assert occupancies[0] == 0.0 and np.all(occupancies[1:] == 1.0)


@pytest.mark.parametrize("content", [b"", b"this is not a model\n", b"\x00\x01\x02" * 50])
def test_unreadable_file_is_a_bad_model(tmp_path, content):
    path = tmp_path / "junk.pdb"
    path.write_bytes(content)
    with pytest.raises(BadModelError, match="junk.pdb"):
        io.read_structure(path)


def test_missing_file_is_a_bad_model(tmp_path):
    with pytest.raises(BadModelError, match="no such model file"):
        io.read_structure(tmp_path / "absent.pdb")


def test_structure_without_atoms_is_a_bad_model():
    empty = gemmi.Structure()
    empty.add_model(gemmi.Model(1))
    with pytest.raises(BadModelError, match="no atoms"):
        io.read_structure(empty)


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_write_and_read_structure_round_trip(tmp_path, suffix):
    original = io.read_structure(EXAMPLE / "protein.pdb")
    path = tmp_path / f"copy{suffix}"
    io.write_structure(original, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .part file left behind
    again = io.read_structure(path)
    before, after = io.heavy_atoms(original), io.heavy_atoms(again)
    assert len(after) == len(before) == 2352
    np.testing.assert_allclose(after.coordinates, before.coordinates, atol=1e-3)
    assert list(after.atom_name) == list(before.atom_name)
    assert list(after.residue_name) == list(before.residue_name)
    assert np.array_equal(after.residue_number, before.residue_number)
    if suffix == ".cif":
        assert len(gemmi.cif.read(str(path)).sole_block().find_loop("_atom_site.id")) == 2352


def test_small_structure_round_trips_through_mmcif(tmp_path, small_pdb):
    original = io.read_structure(small_pdb)
    io.write_structure(original, tmp_path / "small.cif")
    again = io.read_structure(tmp_path / "small.cif")
    assert _atoms(again) == _atoms(original)


# --------------------------------------------------------------------------- AtomTable


def test_heavy_atoms_exclude_hydrogens_and_waters(small_pdb):
    table = io.heavy_atoms(io.read_structure(small_pdb))
    assert len(table) == 11  # 15 records − 1 alternate conformation − 2 hydrogens − 1 water
    assert "H" not in set(table.elements)
    assert "HOH" not in set(table.residue_name)
    assert table.coordinates.shape == (11, 3) and table.coordinates.dtype == float
    assert table.residue_number.dtype.kind == "i"
    assert set(table.chain) == {"A", "B"}
    edo = table.residue_name == "EDO"
    np.testing.assert_allclose(table.coordinates[edo], [[6.0, 5.0, 1.0], [7.0, 5.0, 1.0]])
    assert list(table.atom_name[edo]) == ["C1", "O1"] and list(table.elements[edo]) == ["C", "O"]


def test_heavy_atoms_exclude_residues_on_request(small_pdb):
    structure = io.read_structure(small_pdb)
    everything = io.heavy_atoms(structure, exclude_residues=frozenset())
    assert len(everything) == 12 and "HOH" in set(everything.residue_name)
    no_ligand = io.heavy_atoms(structure, exclude_residues={"HOH", "EDO"})
    assert len(no_ligand) == 9 and not {"HOH", "EDO"} & set(no_ligand.residue_name)


def test_heavy_atoms_of_a_structure_without_heavy_atoms_is_empty():
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    residue = gemmi.Residue()
    residue.name, residue.seqid = "HOH", gemmi.SeqId(1, " ")
    residue.add_atom(io.new_atom("O", "O", (0, 0, 0)))
    chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    table = io.heavy_atoms(structure)
    assert len(table) == 0 and table.coordinates.shape == (0, 3)


# --------------------------------------------------------------------------- residues and ligands


def test_residue_center_is_the_mean_of_heavy_atoms(small_pdb):
    structure = io.read_structure(small_pdb)
    centre = io.residue_center(structure, "A", 2)
    expected = np.mean([atom[5] for atom in ATOMS if atom[2] == "GLY"], axis=0)
    np.testing.assert_allclose(centre, expected, atol=1e-3)
    ala = io.residue_center(structure, "A", 1)  # hydrogens and the B conformation left out
    heavy = [atom[5] for atom in ATOMS if atom[2] == "ALA" and atom[7] != "H" and atom[1] != "B"]
    np.testing.assert_allclose(ala, np.mean(heavy, axis=0), atol=1e-3)


@pytest.mark.parametrize("chain, number", [("A", 99), ("C", 1)])
def test_residue_center_of_a_missing_residue_is_a_bad_model(small_pdb, chain, number):
    with pytest.raises(BadModelError, match=f"{chain}:{number}"):
        io.residue_center(io.read_structure(small_pdb), chain, number)


def test_unused_chain_name_order():
    assert io.unused_chain_name(set()) == "L"
    assert io.unused_chain_name({"L"}) == "Z"
    assert io.unused_chain_name({"L", "Z", "Y"}) == "X"
    upper = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert io.unused_chain_name(upper) == "a"
    everything = upper | set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert io.unused_chain_name(everything) == "AA"
    assert io.unused_chain_name(everything | {"AA"}) == "AB"


def test_add_ligand_puts_the_ligand_in_a_chain_of_its_own(small_pdb):
    structure = io.read_structure(small_pdb)
    coordinates = np.array([[10.0, 10.0, 10.0], [11.5, 10.0, 10.0], [12.2, 11.2, 10.0]])
    complex_structure = io.add_ligand(structure, ["C", "C", "O"], ["C1", "C2", "O1"], coordinates, residue_name="XYZ", b_factor=45.0)
    assert structure[0].count_atom_sites() == 14  # the input is not changed
    assert complex_structure[0].count_atom_sites() == 17
    chains = [chain.name for chain in complex_structure[0]]
    assert chains == ["A", "B", "L"]
    (ligand,) = list(complex_structure[0]["L"])
    assert ligand.name == "XYZ" and ligand.het_flag == "H" and ligand.entity_type == gemmi.EntityType.NonPolymer
    np.testing.assert_allclose([atom.pos.tolist() for atom in ligand], coordinates)
    assert [atom.element.name for atom in ligand] == ["C", "C", "O"]
    assert [atom.b_iso for atom in ligand] == [45.0] * 3
    again = io.add_ligand(complex_structure, ["C"], ["C1"], coordinates[:1])
    assert [chain.name for chain in again[0]] == ["A", "B", "L", "Z"]


def test_added_ligand_survives_both_formats(tmp_path, small_pdb):
    complex_structure = io.add_ligand(io.read_structure(small_pdb), ["N", "C"], ["N1", "C1"], np.array([[9.0, 9.0, 9.0], [10.4, 9.0, 9.0]]))
    for suffix in (".pdb", ".cif"):
        io.write_structure(complex_structure, tmp_path / f"complex{suffix}")
        table = io.heavy_atoms(io.read_structure(tmp_path / f"complex{suffix}"))
        ligand = table.residue_name == "LIG"
        assert list(table.chain[ligand]) == ["L", "L"]
        np.testing.assert_allclose(table.coordinates[ligand], [[9.0, 9.0, 9.0], [10.4, 9.0, 9.0]], atol=1e-3)


def test_remove_residues_counts_and_drops_empty_chains(small_pdb):
    structure = io.read_structure(small_pdb)
    assert io.remove_residues(structure, "EDO") == 1
    assert io.remove_residues(structure, "HOH") == 1
    assert [chain.name for chain in structure[0]] == ["A"]
    assert io.remove_residues(structure, "EDO") == 0


# --------------------------------------------------------------------------- atomic writes


def test_write_text_writes_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "notes.txt"
    io.write_text(path, "first\nsecond\n")
    assert path.read_text() == "first\nsecond\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["notes.txt"]


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="midway"):
        with io.atomic_path(path) as temporary:
            temporary.write_text("half")
            assert temporary.exists() and temporary.parent == tmp_path and temporary.name.endswith(".part")
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as temporary:
            temporary.write_text("new but broken")
            raise RuntimeError("midway")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    io.write_text(path, "new")
    assert path.read_text() == "new"


def test_written_files_are_not_private(tmp_path):
    io.write_text(tmp_path / "shared.txt", "x")
    assert (tmp_path / "shared.txt").stat().st_mode & 0o044  # readable by group or others under any usual umask


# --------------------------------------------------------------------------- output folders


def test_output_folder_appears_as_a_whole(tmp_path):
    target = tmp_path / "out"
    with io.output_folder(target) as staging:
        assert staging != target and staging.parent == tmp_path
        (staging / "a.txt").write_text("a")
        assert not target.exists()  # nothing visible until the block ends
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or .old folders left


def test_output_folder_replaces_an_old_one_as_a_whole_with_force(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with io.output_folder(target, force=True) as staging:
        (staging / "fresh.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["fresh.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_folder_refuses_a_non_empty_folder_without_force(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        with io.output_folder(target):
            pytest.fail("the block must not run")
    assert (target / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_folder_accepts_an_empty_folder_without_force(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with io.output_folder(target) as staging:
        (staging / "a.txt").write_text("a")
    assert [p.name for p in target.iterdir()] == ["a.txt"]


def test_output_folder_refuses_a_file(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file")
    for force in (False, True):
        with pytest.raises(OutputExistsError, match="not a folder"):
            io.check_output_folder(target, force=force)
        with pytest.raises(OutputExistsError):
            with io.output_folder(target, force=force):
                pytest.fail("the block must not run")
    assert target.read_text() == "a file"


def test_failed_output_folder_leaves_the_old_one_and_no_staging(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with io.output_folder(target, force=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("midway")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_check_output_folder_passes_absent_and_empty_folders(tmp_path):
    io.check_output_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    io.check_output_folder(tmp_path / "empty")
    assert not (tmp_path / "absent").exists()  # checking creates nothing
