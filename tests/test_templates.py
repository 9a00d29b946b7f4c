"""Template library: format round trip, bad libraries, pocket superposition, and transplants measured by RMSD."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time

import numpy as np
import pytest
from rdkit import Chem
from scipy.spatial.transform import Rotation

from ligfit import io, maps, segment
from ligfit.errors import OutputExistsError
from ligfit.ligand import load_ligand, parse_ligand
from ligfit.measures import ligand_symmetry, symmetric_rmsd
from ligfit.records import LigandShape
from ligfit.templates import (
    TemplateLibraryError,
    TemplateOptions,
    TemplateSourceError,
    build_library,
    common_substructure,
    library_for_build,
    load_library,
    match_pocket,
    seeds_for_build,
    shipped_library_path,
    template_seeds,
)
from ligfit.templates.library import FORMAT_VERSION, INDEX, MANIFEST, RECORDS, write_library


@pytest.fixture(scope="module")
def shipped():
    return load_library(shipped_library_path())


def _record(library, template_id):
    return library.record(int(np.flatnonzero(library.index.id == template_id)[0]))


def _blobs_for(record, resolution: float, ligand):
    """Blobs of a map simulated from the record's own pocket + ligand (the deposited pose is the answer)."""
    pocket = record.pocket.structure()
    reference = record.ligand
    complex_structure = io.add_ligand(
        pocket, [a.GetSymbol() for a in reference.GetAtoms()], [f"X{i}" for i in range(reference.GetNumAtoms())], record.ligand_coordinates
    )
    grid = maps.grid_around(record.pocket.coordinates, 1.0, 4.0)
    density = maps.simulate(complex_structure, resolution, like=grid, noise=0.2, seed=1)
    difference = segment.difference_map(density, pocket, resolution)
    shape = LigandShape.from_conformers(ligand.conformer_coordinates()[:, : ligand.heavy_atom_count])
    return segment.select_blobs(segment.find_blobs(difference, shape, record.pocket.coordinates), 3)


def _seed_rmsds(seeds, ligand, reference_xyz) -> list[float]:
    matches = ligand_symmetry(ligand)
    return [symmetric_rmsd(seed.coordinates, reference_xyz, matches) for seed in seeds]


# --------------------------------------------------------------------------- format


def test_shipped_library_is_the_openmmforcefields_series(shipped):
    described = shipped.describe()
    assert described["templates"] == 199
    assert described["groups"] == {"bace": 36, "cdk2": 16, "jnk1": 21, "mcl1": 42, "p38a": 34, "ptp1b": 23, "thrombin": 11, "tyk2": 16}
    record = _record(shipped, "tyk2-ejm_31")
    assert record.ligand.GetNumAtoms() == 21 and len(record.pocket) > 30
    assert np.isfinite(record.pocket.calpha()).all()


def test_round_trip_keeps_ligand_pocket_and_index(shipped, tmp_path):
    records = [_record(shipped, name) for name in ("tyk2-ejm_31", "bace-CAT-13a", "thrombin-1a")]
    write_library(records, tmp_path / "lib", sources=[{"files": ["test"]}], rebuild="remake it")
    reloaded = load_library(tmp_path / "lib")
    assert list(reloaded.index.id) == [r.id for r in records]
    for position, original in enumerate(records):
        copy = reloaded.record(position)
        assert Chem.MolToSmiles(copy.ligand) == Chem.MolToSmiles(original.ligand)
        assert np.abs(copy.ligand_coordinates - original.ligand_coordinates).max() < 1e-3
        assert copy.pocket.sequence == original.pocket.sequence
        assert np.abs(copy.pocket.coordinates - original.pocket.coordinates).max() < 1e-3
        assert list(copy.pocket.atom_name) == list(original.pocket.atom_name)
    shipped_rows = [int(np.flatnonzero(shipped.index.id == r.id)[0]) for r in records]
    assert np.array_equal(reloaded.index.fingerprint, shipped.index.fingerprint[shipped_rows])


def test_index_of_thousands_of_templates_loads_in_well_under_a_second(shipped, tmp_path):
    records = [shipped.record(i) for i in range(len(shipped))]
    many = [dataclasses.replace(r, id=f"{r.id}.{copy}") for copy in range(10) for r in records]
    write_library(many, tmp_path / "many", sources=[])
    started = time.perf_counter()
    library = load_library(tmp_path / "many")
    elapsed = time.perf_counter() - started
    assert len(library) == 1990
    assert elapsed < 0.25


def test_seed_library_rebuilds_byte_for_byte_from_openmmforcefields(shipped, tmp_path):
    pytest.importorskip("openmmforcefields")
    from templates.build_seed_library import main  # the repository root is on sys.path (conftest)

    assert main(["--out", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / MANIFEST).read_text())
    assert rebuilt["index_sha256"] == shipped.manifest["index_sha256"]
    assert rebuilt["sources"] == shipped.manifest["sources"]


# --------------------------------------------------------------------------- bad libraries


def _copy_of(shipped, folder):
    records = [shipped.record(i) for i in range(3)]
    write_library(records, folder, sources=[], rebuild="python templates/build_seed_library.py")
    return folder


def test_missing_and_empty_libraries_say_how_to_build_one(tmp_path):
    with pytest.raises(TemplateLibraryError, match=r"does not exist; build one with `ligfit templates build"):
        load_library(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TemplateLibraryError, match=r"empty; build one with"):
        load_library(tmp_path / "empty")


def test_library_from_another_format_version_names_the_rebuild_command(shipped, tmp_path):
    folder = _copy_of(shipped, tmp_path / "old")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["version"] = FORMAT_VERSION + 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(
        TemplateLibraryError, match=rf"format version {FORMAT_VERSION + 1}.*rebuild it with `python templates/build_seed_library.py`"
    ):
        load_library(folder)


@pytest.mark.parametrize("damage", ["no manifest", "no index", "record missing", "index changed", "record changed"])
def test_half_written_library_is_refused_with_the_fix(shipped, tmp_path, damage):
    folder = _copy_of(shipped, tmp_path / "lib")
    record_file = sorted((folder / RECORDS).iterdir())[0]
    if damage == "no manifest":
        (folder / MANIFEST).unlink()
    elif damage == "no index":
        (folder / INDEX).unlink()
    elif damage == "record missing":
        record_file.unlink()
    elif damage == "index changed":
        (folder / INDEX).write_bytes((folder / INDEX).read_bytes()[:-10])
    else:
        record_file.write_bytes(gzip.compress(b'{"id": "truncated"}'))
    with pytest.raises(TemplateLibraryError, match=r"(half-written|does not match).*rebuild it with") as caught:
        library = load_library(folder)
        library.record(int(np.flatnonzero(library.index.record == record_file.name)[0]))
    assert str(folder) in str(caught.value)


# --------------------------------------------------------------------------- search and transplant


def test_pocket_superposition_recovers_a_known_rigid_motion(shipped):
    template = _record(shipped, "p38a_2aa").pocket
    rotation = Rotation.from_euler("xyz", [40, -25, 70], degrees=True).as_matrix()
    moved = dataclasses.replace(template, coordinates=template.coordinates @ rotation.T + [12.0, -3.0, 7.5])
    match = match_pocket(template, moved)
    assert match is not None and match.rmsd < 1e-6 and match.identity == 1.0 and match.coverage == 1.0
    assert np.abs(match.rotation - rotation).max() < 1e-6
    other_target = _record(shipped, "bace-CAT-13a").pocket  # an aspartyl protease, not a kinase like p38α
    unrelated = match_pocket(template, other_target)
    assert unrelated is None or unrelated.identity < TemplateOptions().min_pocket_identity or unrelated.coverage < 0.5


def test_common_substructure_maps_rings_whole_and_lets_aromatic_heteroatoms_swap():
    thf = Chem.MolFromSmiles("Cn1c(=O)c(Oc2ccc(F)cc2F)cc2cnc(N[C@H]3CCOC3)nc21")  # p38α ligands: tetrahydrofuran ...
    thp = Chem.MolFromSmiles("Cn1c(=O)c(Oc2ccc(F)cc2F)cc2cnc(NC3CCOCC3)nc21")  # ... and tetrahydropyran
    common, mappings = common_substructure(thf, thp, timeout=1)
    ring = set(thf.GetSubstructMatch(Chem.MolFromSmarts("C1CCOC1")))
    assert common == thf.GetNumAtoms() - len(ring) and not ring & {q for q, _ in mappings[0]}
    indole = Chem.MolFromSmiles("O=C([O-])c1[nH]c2cc(Cl)ccc2c1CCCOc1cccc2ccccc12")  # MCL1 ligands: indole ...
    benzothiophene = Chem.MolFromSmiles("O=C([O-])c1sc2cc(Cl)ccc2c1CCCOc1cccc2ccccc12")  # ... and benzothiophene
    assert common_substructure(indole, benzothiophene, timeout=1)[0] == indole.GetNumAtoms()


@pytest.mark.parametrize("query_id", ["tyk2-ejm_31", "bace-CAT-13a", "p38a_2gg"])
def test_transplant_from_same_target_lands_within_1_5_A_before_docking(shipped, query_id):
    record = _record(shipped, query_id)
    library = shipped.without(ids=[query_id])
    ligand = load_ligand(record.ligand, max_conformers=4)  # from the molecule: atoms keep the record's order
    blobs = _blobs_for(record, 4.0, ligand)
    found = template_seeds(library, ligand, blobs, record.pocket.atom_table())
    assert found.matches and found.matches[0].record.group == record.group
    assert found.matches[0].record.id != query_id
    rmsds = _seed_rmsds(found.seeds, ligand, record.ligand_coordinates)
    assert rmsds[0] <= 1.5, f"first seed (best template) {rmsds[0]:.2f} Å"
    assert found.seeds[0].label.startswith("template ") and "Tanimoto" in found.seeds[0].label
    assert found.seeded_by(f"seed: {found.seeds[0].label}") is found.matches[0]  # how dock names a seeded pose
    assert found.seeded_by("conformer search") is None
    assert found.summary("conformer search")["best_pose_seeded_by"] is None


def test_without_a_model_templates_are_laid_onto_the_blob(shipped):
    record = _record(shipped, "mcl1-35")
    library = shipped.without(ids=["mcl1-35"])
    ligand = load_ligand(record.ligand, max_conformers=4)
    found = template_seeds(library, ligand, _blobs_for(record, 3.0, ligand), None)
    assert found.matches and all(m.pocket is None and m.shape is not None for m in found.matches)
    assert min(_seed_rmsds(found.seeds, ligand, record.ligand_coordinates)) <= 2.0


def test_a_ligand_unlike_every_template_gets_no_seeds(shipped):
    record = _record(shipped, "tyk2-ejm_31")
    steroid = load_ligand("C[C@]12CC[C@H]3[C@@H](CCC4=CC(=O)CC[C@@]34C)[C@@H]1CC[C@@H]2O", max_conformers=2)  # testosterone
    found = template_seeds(shipped, steroid, _blobs_for(record, 3.0, steroid), record.pocket.atom_table())
    assert found.seeds == [] and found.matches == []


# --------------------------------------------------------------------------- building from complexes (shared data)


def test_build_from_posebusters_pocket_and_ligand_pairs(data, tmp_path):
    entries = ["5SAK_ZRY", "6TW5_9M2"]
    library = build_library([data / "complexes" / e for e in entries], tmp_path / "lib")
    assert list(library.index.pdb_id) == ["5SAK", "6TW5"]
    for position, entry in enumerate(entries):
        record = library.record(position)
        deposited = Chem.MolFromMolFile(str(data / "complexes" / entry / f"{entry}_ligand.sdf"))
        assert np.abs(record.ligand_coordinates - deposited.GetConformer().GetPositions()).max() < 1e-3
        pocket_xyz = record.pocket.coordinates
        nearest = np.linalg.norm(pocket_xyz[:, None] - record.ligand_coordinates[None], axis=-1).min(axis=1)
        per_residue = np.minimum.reduceat(nearest, np.flatnonzero(np.r_[True, np.diff(record.pocket.atom_residue) != 0]))
        assert per_residue.max() <= 8.0 and len(record.pocket) >= 15


def test_build_refuses_to_overwrite_a_folder_before_reading_sources(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        build_library([tmp_path / "no-such-complex.cif"], tmp_path / "lib")
    with pytest.raises(TemplateSourceError, match="no such file"):
        build_library([tmp_path / "no-such-complex.cif"], tmp_path / "lib", force=True)


def test_build_from_a_complex_takes_bond_orders_from_the_ccd(data, tmp_path):
    path = data / "xray" / "3NZD" / "3nzd.cif"
    library = build_library([path], tmp_path / "lib")
    records = [library.record(i) for i in range(len(library))]
    d2q = next(r for r in records if r.ligand_name.startswith("D2Q"))
    assert d2q.pdb_id == "3NZD" and d2q.resolution == pytest.approx(1.8, abs=0.1)
    assert Chem.MolToSmiles(d2q.ligand) == Chem.MolToSmiles(parse_ligand("ccd:D2Q"))
    structure = io.read_structure(path)
    deposited = [
        (atom.element.name, atom.pos.tolist())
        for chain in structure[0]
        for residue in chain
        if residue.name == "D2Q"
        for atom in residue
        if not atom.is_hydrogen()
    ]
    assert len(deposited) == d2q.ligand.GetNumAtoms()
    gaps = np.linalg.norm(d2q.ligand_coordinates[:, None] - np.array([xyz for _, xyz in deposited])[None], axis=-1)
    nearest = gaps.argmin(axis=1)
    assert gaps.min(axis=1).max() < 1e-3 and len(set(nearest)) == len(deposited)
    assert [a.GetSymbol() for a in d2q.ligand.GetAtoms()] == [deposited[i][0] for i in nearest]
    assert all(r.ligand_name.split("_")[0] not in ("HOH", "GOL", "EDO") for r in records)


def test_a_damaged_shipped_record_costs_the_templates_not_the_build(shipped, tmp_path, monkeypatch, caplog):
    import ligfit.templates.library as library_module

    record = _record(shipped, "tyk2-ejm_31")
    folder = tmp_path / "shipped"
    write_library([record, _record(shipped, "tyk2-ejm_42")], folder, sources=[], rebuild="python templates/build_seed_library.py")
    for path in (folder / RECORDS).iterdir():
        path.write_bytes(gzip.compress(b"{}"))  # every record damaged: found only when a template is read
    monkeypatch.setattr(library_module, "shipped_library_path", lambda: folder)
    ligand = load_ligand(record.ligand, max_conformers=2)
    blobs = _blobs_for(record, 3.0, ligand)
    found = seeds_for_build(ligand, blobs, record.pocket.atom_table())
    assert found.seeds == [] and found.library is None and "does not match the index" in found.note
    assert "docking without templates" in caplog.text
    with pytest.raises(TemplateLibraryError, match="does not match the index"):
        seeds_for_build(ligand, blobs, record.pocket.atom_table(), library=folder)


def test_build_falls_back_quietly_only_for_the_shipped_library(tmp_path, monkeypatch, caplog):
    import ligfit.templates.library as library_module

    monkeypatch.setattr(library_module, "shipped_library_path", lambda: tmp_path / "not-installed")
    assert library_for_build() is None
    assert "docking without templates" in caplog.text
    with pytest.raises(TemplateLibraryError, match="does not exist"):
        library_for_build(tmp_path / "named-by-the-user")
