"""Screening: library reading, ranking on the shipped Tyk2 example, and a real Dask cluster on localhost.

The screens here dock with about half of QUICK_SCREEN_DOCKING's search (TEST_DOCKING) and 3 conformers
per ligand, to stay within ~a minute on 2 cores; the Tyk2 map is the shipped simulated 3.0 Å example.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ligfit.errors import SchedulerError
from ligfit.records import LigandShape
from ligfit.screen import QUICK_SCREEN_DOCKING, EmptyLibraryError, ScreenOptions, common_library, read_library, run_screen
from ligfit.screen.ranking import size_prefilter

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"
TRUE_LIGAND = (EXAMPLE / "ligand.smi").read_text().split()[0]
# Decoys of about the Tyk2 ligand's size (17–20 heavy atoms): aryl amides and a sulfonamide.
TEST_DOCKING = dataclasses.replace(
    QUICK_SCREEN_DOCKING,
    random_orientations=4,
    smooth_steps=40,
    anchor_rotations=100,
    anchor_poses=4,
    beam_width=6,
    refine_poses=12,
    refine_steps=40,
    hop_steps=30,
    scored_poses=3,
)
DECOYS = [
    ("decoy_naphthamide", "O=C(Nc1ccncc1)c1cccc2ccccc12"),
    ("decoy_sulfonamide", "Cc1ccc(S(=O)(=O)Nc2ccc(Cl)cc2)cc1"),
    ("decoy_benzanilide", "CC(=O)Nc1ccc(NC(=O)c2ccccc2)cc1"),
]


def test_read_library_smiles_file_records_bad_lines_and_duplicates(tmp_path):
    path = tmp_path / "library.smi"
    path.write_text(f"# comment\n{TRUE_LIGAND} tyk2\nC1CC( broken\nOCC(O)CO glycerol\nC(O)C(O)CO glycerol_again\n*c1ccccc1 r_group\n\n")
    library = read_library(path)
    assert [entry.name for entry in library.entries] == ["tyk2", "glycerol"]
    assert library.skipped[0]["source"] == "library.smi:3"
    assert library.skipped[1]["source"] == "library.smi:6" and "dummy atoms" in library.skipped[1]["reason"]
    assert library.duplicates[0]["same_as"] == "glycerol"
    assert library.entries[0].heavy_atoms == 21


def test_read_library_csv_and_sdf(tmp_path):
    (tmp_path / "lib.csv").write_text("id,SMILES\nA,c1ccccc1O\nB,not_a_smiles\n")
    library = read_library(tmp_path / "lib.csv")
    assert [e.name for e in library.entries] == ["A"] and len(library.skipped) == 1
    library = read_library(EXAMPLE / "reference_ligand.sdf")
    assert len(library) == 1 and library.entries[0].heavy_atoms == 21


def test_empty_library_is_one_clear_error(tmp_path):
    (tmp_path / "empty.smi").write_text("# nothing here\nC1CC(\n")
    with pytest.raises(EmptyLibraryError, match="no usable molecule"):
        read_library(tmp_path / "empty.smi")


def test_common_library_ships_the_usual_suspects():
    codes = {entry.code for entry in common_library().entries}
    assert {"ATP", "NAD", "FAD", "HEM", "GOL", "SO4", "LMT", "CLR", "NAG", "ZN"} <= codes


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local.scheduler_address


def test_screen_on_dask_ranks_true_ligand_first_and_resumes(cluster, tmp_path):
    out = tmp_path / "screen"
    library = [("tyk2", TRUE_LIGAND), *DECOYS, ("broken", "C1CC("), ("tyk2_again", "CC(=O)Nc1cc(NC(=O)c2c(Cl)cccc2Cl)ccn1")]
    options = ScreenOptions(resolution=3.0, max_conformers=3, docking=TEST_DOCKING)

    # Interrupt the screen after the first two ligands finish.
    seen = []

    def interrupt(line: str) -> None:
        seen.append(line)
        if "2/4 ligands done" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", library, options, scheduler=cluster, out=out, progress=interrupt)
    finished = {p: p.stat().st_mtime_ns for p in (out / "ligands").glob("*.json")}
    assert len(finished) == 2 and not (out / "ranking.csv").exists()

    result = run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", library, options, scheduler=cluster, out=out)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # not docked again
    assert len(list((out / "ligands").glob("*.json"))) == 4
    assert sum(1 for row in result.rows if row.get("status") == "ok") == 4

    best = result.rows[0]
    assert best["name"] == "tyk2" and best["hit"], result.table()
    assert best["fit_score"] > result.rows[1]["fit_score"] + 0.15
    assert best["q_score"] > 0.6 and best["explained"] > 0.8
    assert [row["name"] for row in result.hits] == ["tyk2"]
    assert result.library.skipped[0]["text"] == "C1CC(" and result.library.duplicates[0]["same_as"] == "tyk2"
    ranking = (out / "ranking.csv").read_text().splitlines()
    assert ranking[0].startswith("rank,name,status,hit,fit_score") and ranking[1].split(",")[1] == "tyk2"
    assert (out / "top" / "001_tyk2" / "ligand.sdf").is_file() and (out / "top" / "001_tyk2" / "model.cif").is_file()
    page = (out / "ranking.html").read_text()
    hits = page.split("<h2>Ranking</h2>")[0]  # the pictured top hits come before the table
    assert "#1 tyk2 — hit" in hits and hits.count("data:image/") >= 2 and "http" not in page.replace("http-equiv", "")
    assert all(f"#{row['rank']} {row['name']}" in hits for row in result.rows[:4])
    meaning = json.loads((out / "screen.json").read_text())["confidence_meaning"]
    assert meaning == result.confidence_meaning and "best hits called at confidence" in meaning
    assert f"Confidence {best['confidence']:.2f}: " in page

    # Decoys only, in the same folder: every decoy is reused (nothing docked again) and none fits.
    before = {p: p.stat().st_mtime_ns for p in (out / "ligands").glob("*.json")}
    decoys = run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", DECOYS, options, scheduler=cluster, out=out)
    assert decoys.none_fits and "none of these explains" in decoys.verdict and decoys.confidence_meaning is None
    reused = [out / "ligands" / f"{e.key}.json" for e in decoys.library.entries]
    assert all(path in before and path.stat().st_mtime_ns == before[path] for path in reused)  # not docked again


def test_local_workers_give_the_ranking_of_one_process():
    """workers=2: a local pool of two spawned workers gives every fit score of one process (which screens on one torch thread)."""
    library = [("tyk2", TRUE_LIGAND), *DECOYS]
    options = ScreenOptions(resolution=3.0, max_conformers=3, docking=TEST_DOCKING)
    threads = torch.get_num_threads()
    alone = run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", library, options, workers=1)
    assert torch.get_num_threads() == threads  # one process screens on a torch thread of its own; the caller's are as they were
    shared = run_screen(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", library, options, workers=2)
    assert [(row["name"], row["fit_score"]) for row in shared.rows] == [(row["name"], row["fit_score"]) for row in alone.rows]
    assert shared.rows[0]["name"] == "tyk2" and shared.rows[0]["hit"]


def test_prefilter_skips_hopeless_sizes_in_milliseconds(tmp_path):
    result = run_screen(
        EXAMPLE / "map.mrc",
        EXAMPLE / "protein.pdb",
        [("glycerol", "OCC(O)CO"), ("ethylene_glycol", "OCCO")],
        ScreenOptions(resolution=3.0),
        workers=1,
    )
    assert [row["status"] for row in result.rows] == ["filtered", "filtered"]
    assert all(row["time_s"] < 0.1 for row in result.rows) and result.none_fits


def test_scheduler_that_does_not_answer_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "screen"
    with pytest.raises(SchedulerError, match="does not answer"):
        run_screen(
            EXAMPLE / "map.mrc",
            EXAMPLE / "protein.pdb",
            DECOYS,
            ScreenOptions(resolution=3.0),
            scheduler="tcp://127.0.0.1:9",
            out=out,
            scheduler_timeout=2.0,
        )
    assert not out.exists()


def test_size_prefilter_reason_names_both_sizes(tmp_path):
    from ligfit import io, maps, segment

    density = maps.read_map(EXAMPLE / "map.mrc")
    structure = io.read_structure(EXAMPLE / "protein.pdb")
    difference = segment.difference_map(density, structure, 3.0)
    blob = segment.find_blobs(difference, LigandShape(20, np.array([2.5, 1.5, 0.8])), io.heavy_atoms(structure).coordinates)[0]
    assert "too big" in size_prefilter(80, blob) and "too small" in size_prefilter(4, blob) and size_prefilter(21, blob) == ""


def test_challenge_runs_its_rows_on_the_dask_cluster(cluster, tmp_path):
    from rdkit import Chem

    from ligfit import io
    from ligfit.evaluate import run_challenge

    reference = Chem.MolFromMolFile(str(EXAMPLE / "reference_ligand.sdf"))
    complex_ = io.add_ligand(
        io.read_structure(EXAMPLE / "protein.pdb"),
        [a.GetSymbol() for a in reference.GetAtoms()],
        [f"X{i}" for i in range(reference.GetNumAtoms())],
        reference.GetConformer().GetPositions(),
        residue_name="LIG",
    )
    io.write_structure(complex_, tmp_path / "reference.cif")
    (tmp_path / "submissions.csv").write_text(
        f"target,map,resolution,reference,model,group,ligand\ntyk2,{EXAMPLE / 'map.mrc'},3.0,reference.cif,reference.cif,exact,LIG\n"
    )
    result = run_challenge(tmp_path / "submissions.csv", tmp_path / "results", whole_model=False, scheduler=cluster)
    assert [r["status"] for r in result.records] == ["ok"], result.records
    assert result.scores[0]["rmsd"] == pytest.approx(0.0, abs=1e-3)


def test_a_ligand_that_fails_is_recorded_with_its_error():
    from ligfit.screen import LibraryEntry
    from ligfit.screen.run import prepare_context, screen_ligand

    options = ScreenOptions(resolution=3.0)
    library = read_library([("tyk2", TRUE_LIGAND)])
    context = prepare_context(EXAMPLE / "map.mrc", EXAMPLE / "protein.pdb", options, library, lambda line: None)
    record = screen_ligand(context, LibraryEntry("unparseable", "C1CC(", "", 21))
    assert record["status"] == "error" and "unparseable" == record["name"] and record["note"]
