"""ligfit.report: the build report as strict JSON, and output folders written all at once (shipped example only)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from tyk2_example import EXAMPLE, FAST_BUILD, SMILES

from ligfit import maps, report
from ligfit.errors import OutputExistsError
from ligfit.pipeline import BuildOptions, BuildResult, run_build
from ligfit.records import CONFIDENCE_RECORD, confidence_meaning

OUTPUTS = [
    "difference.mrc",
    "ligand.sdf",
    "ligand_protonated.sdf",
    "model.cif",
    "model.pdb",
    "open_in_chimerax.cxc",
    "open_in_coot.py",
    "poses.sdf",
    "report.html",
    "report.json",
]


@pytest.fixture(scope="module")
def found() -> BuildResult:
    return run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), FAST_BUILD)


@pytest.fixture(scope="module")
def nothing() -> BuildResult:
    """The example with a blob threshold no density reaches: no blobs, no docking."""
    options = BuildOptions(resolution=3.0, refine=False, use_templates=False, max_conformers=2, threshold=1000.0)
    return run_build(str(EXAMPLE / "map.mrc"), SMILES, str(EXAMPLE / "protein.pdb"), options)


def _folder_names(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir())


# --------------------------------------------------------------------------- build_report


def test_report_of_a_placement_is_strict_json(found):
    content = report.build_report(found, command="ligfit build map.mrc")
    text = json.dumps(content, allow_nan=False)
    assert json.loads(text) == content
    assert content["status"] == "found" and content["command"] == "ligfit build map.mrc"
    assert content["confidence"] == pytest.approx(found.confidence)
    assert content["confidence_label"] == report.confidence_label(found.confidence)
    right, placed = CONFIDENCE_RECORD[content["confidence_label"]]
    assert f"{right} of {placed} placements called {content['confidence_label']}" in content["confidence_meaning"]
    assert content["best_pose"] == found.best_pose.summary()
    assert content["placements"] == [pose.summary() for pose in found.placements]
    assert len(content["poses"]) == len(found.poses) > 0
    assert content["blobs"][0] == found.blobs[0].summary()
    assert content["ligand"]["heavy_atoms"] == 21 and content["ligand"]["force_field"] == "MMFF94"
    assert content["ligand"]["conformers"] == found.ligand.mol.GetNumConformers() <= 8
    assert content["options"]["docking"]["anchor_rotations"] == 100 and content["options"]["refine"] is False
    assert content["options"]["templates"] is None and content["templates"] is None
    assert content["difference_map"]["model_map_cc"] == round(found.difference.model_cc, 4)
    assert content["timings_s"] == found.timings
    assert content["inputs"]["model_heavy_atoms"] == 2352
    assert content["versions"]["numpy"] == np.__version__
    assert content["refinement"] == [] and content["ligand_fit"] == found.ligand_fit


def test_report_property_is_the_report_without_a_command(found):
    assert found.report["command"] is None
    assert {k: v for k, v in found.report.items() if k != "command"} == {
        k: v for k, v in report.build_report(found, "x").items() if k != "command"
    }


def test_report_of_no_density_is_strict_json(nothing):
    assert not nothing.found and nothing.blobs == []
    content = report.build_report(nothing)
    json.dumps(content, allow_nan=False)
    assert content["status"] == "no convincing density"
    assert content["confidence_label"] == "none" and content["confidence_meaning"] is None
    assert content["best_pose"] is None and content["poses"] == [] and content["placements"] == []
    assert "1000.0 σ" in content["message"]


def test_report_of_a_build_given_a_fasta_path_is_json(found, tmp_path):
    fasta = tmp_path / "protein.fasta"
    fasta.write_text(">A\nMVLSPADKTNVKAAW\n")
    # The API takes a model and a sequence (the sequence is then unused) or a sequence alone; either way it is in the options.
    given = dataclasses.replace(found, options=dataclasses.replace(found.options, sequence=fasta))
    content = report.build_report(given)
    assert json.loads(json.dumps(content, allow_nan=False))["options"]["sequence"] == str(fasta)
    given.write(tmp_path / "out")
    assert _folder_names(tmp_path / "out") == OUTPUTS


@pytest.mark.parametrize(
    "confidence, label", [(0.95, "high"), (0.7, "high"), (0.69, "medium"), (0.4, "medium"), (0.39, "low"), (0.0, "low")]
)
def test_confidence_labels(confidence, label):
    assert report.confidence_label(confidence) == label


# --------------------------------------------------------------------------- write_build_outputs


def test_outputs_are_written_and_readable(found, tmp_path):
    folder = report.write_build_outputs(found, tmp_path / "out", force=False, command="ligfit build")
    assert folder == tmp_path / "out"
    assert _folder_names(folder) == OUTPUTS
    assert _folder_names(tmp_path) == ["out"]  # no staging folder or .part file left
    written = json.loads((folder / "report.json").read_text())
    assert written["command"] == "ligfit build" and written["best_pose"] == found.best_pose.summary()
    (placed,) = list(Chem.SDMolSupplier(str(folder / "ligand.sdf")))
    assert placed.GetNumAtoms() == 21 and placed.GetProp("cc") == str(found.best_pose.summary()["cc"])
    np.testing.assert_allclose(placed.GetConformer().GetPositions(), found.best_pose.coordinates[:21], atol=1e-3)
    poses = list(Chem.SDMolSupplier(str(folder / "poses.sdf")))
    assert len(poses) == len(found.poses)
    difference = maps.read_map(folder / "difference.mrc")
    assert difference.shape == found.difference.difference.shape
    np.testing.assert_allclose(difference.origin, found.difference.difference.origin, atol=1e-3)
    np.testing.assert_allclose(difference.values, found.difference.difference.values, atol=1e-4)
    model = (folder / "model.pdb").read_text()
    assert model.count("HETATM") >= 21 and " LIG " in model


def test_outputs_without_a_placement(nothing, tmp_path):
    report.write_build_outputs(nothing, tmp_path / "out", force=False)
    assert _folder_names(tmp_path / "out") == ["difference.mrc", "open_in_chimerax.cxc", "open_in_coot.py", "report.html", "report.json"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "no convincing density"


def test_build_result_write_uses_the_same_writer(found, tmp_path):
    found.write(tmp_path / "out", command="api")
    assert _folder_names(tmp_path / "out") == OUTPUTS
    assert json.loads((tmp_path / "out" / "report.json").read_text())["command"] == "api"


def _fail(*args, **kwargs):
    raise RuntimeError("disk full (simulated)")


@pytest.mark.parametrize("writer", ["ligfit.maps.write_map", "ligfit.report._write_sdf", "ligfit.io.write_text"])
def test_a_failure_midway_leaves_no_folder_and_no_part_files(found, tmp_path, monkeypatch, writer):
    monkeypatch.setattr(writer, _fail)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_build_outputs(found, tmp_path / "out", force=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_keeps_the_old_outputs(found, tmp_path, monkeypatch):
    old = tmp_path / "out"
    old.mkdir()
    (old / "report.json").write_text("{}")
    monkeypatch.setattr("ligfit.maps.write_map", _fail)
    with pytest.raises(RuntimeError):
        report.write_build_outputs(found, old, force=True)
    assert _folder_names(tmp_path) == ["out"] and _folder_names(old) == ["report.json"]
    assert (old / "report.json").read_text() == "{}"


def test_outputs_replace_an_old_folder_only_with_force(found, tmp_path):
    old = tmp_path / "out"
    old.mkdir()
    (old / "stale.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        report.write_build_outputs(found, old, force=False)
    assert _folder_names(old) == ["stale.txt"]
    report.write_build_outputs(found, old, force=True)
    assert _folder_names(old) == OUTPUTS  # replaced as a whole: the stale file is gone
    assert _folder_names(tmp_path) == ["out"]


def test_confidence_meaning_says_the_benchmark_record_for_placed_labels_only():
    assert confidence_meaning("high").startswith("on ligfit's realistic-map benchmark")
    assert confidence_meaning("low") is None and confidence_meaning("none") is None
    for right, placed in CONFIDENCE_RECORD.values():
        assert 0 < right <= placed
