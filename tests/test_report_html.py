"""A build's report.html (rendered in a real headless browser), its viewer scripts, and SDFs with the input's chemistry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from ligfit.cli import main
from ligfit.ligand import load_ligand, protonation_summary, write_ligand_sdf
from ligfit.viewers import CHIMERAX_SCRIPT, COOT_SCRIPT

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"
SMILES = (EXAMPLE / "ligand.smi").read_text().strip()


@pytest.fixture(scope="module")
def example_build(tmp_path_factory) -> Path:
    """The shipped example built without refinement (the pictures and files do not depend on it)."""
    out = tmp_path_factory.mktemp("report") / "out"
    arguments = ["build", str(EXAMPLE / "map.mrc"), "--ligand", SMILES, "--model", str(EXAMPLE / "protein.pdb")]
    assert main([*arguments, "--resolution", "3.0", "--no-refine", "-o", str(out), "-q"]) == 0
    return out


def _inchi(mol: Chem.Mol) -> str:
    return Chem.MolToInchi(mol)


def test_report_html_is_self_contained_and_says_the_verdict(example_build):
    html = (example_build / "report.html").read_text()
    images = re.findall(r"<img src='(data:image/(?:png|svg\+xml);base64,[^']+)'", html)
    assert len(images) >= 4  # three views, 2D depiction, Q chart, blob
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", html) and "<script" not in html
    assert "Placed</b> — confidence <b>1.00</b>" in html and "ligfit build" in html and "--no-refine" in html
    assert "What “high” has meant: on ligfit&#x27;s realistic-map benchmark" in html
    assert all(section in html for section in ("The ligand in its density", "Unexplained density", "Top poses", "Refinement", "Versions"))
    assert (example_build / "report.html").stat().st_size < 2_000_000


def test_the_page_numbers_blobs_as_the_messages_do(example_build):
    """report.json ranks blobs from 0; the page, like every message ("blob 1 holds a pose …"), from 1."""
    report = json.loads((example_build / "report.json").read_text())
    html = (example_build / "report.html").read_text()
    placed = report["poses"][0]["blob"]
    assert f"<span>blob <b>{placed + 1}</b></span>" in html
    assert f"alt='blob {report['blobs'][0]['rank'] + 1}'" in html and "alt='blob 0'" not in html


def test_output_sdfs_carry_the_ligand_as_given(example_build):
    given = _inchi(Chem.MolFromSmiles(SMILES))
    placed = Chem.MolFromMolFile(str(example_build / "ligand.sdf"))
    assert _inchi(placed) == given and placed.GetNumAtoms() == 21
    poses = [m for m in Chem.SDMolSupplier(str(example_build / "poses.sdf")) if m is not None]
    assert len(poses) >= 2 and all(_inchi(m) == given for m in poses)
    protonated = Chem.MolFromMolFile(str(example_build / "ligand_protonated.sdf"), removeHs=False)
    assert protonated.GetNumAtoms() > 21  # hydrogens as used for scoring, at the same heavy-atom positions
    np.testing.assert_allclose(protonated.GetConformer().GetPositions()[:21], placed.GetConformer().GetPositions(), atol=1e-3)


def test_posebusters_dock_and_redock_checks_pass_on_ligand_sdf(example_build):
    posebusters = pytest.importorskip("posebusters")
    for config in ("dock", "redock"):
        table = posebusters.PoseBusters(config=config).bust(
            mol_pred=example_build / "ligand.sdf", mol_true=EXAMPLE / "reference_ligand.sdf", mol_cond=EXAMPLE / "protein.pdb"
        )
        checks = table.select_dtypes(bool)
        failed = [name for name in checks.columns if not checks[name].all()]
        assert len(checks.columns) >= 20 and not failed, f"{config}: {failed}"


def test_neutral_amine_given_as_smiles_is_written_neutral(tmp_path):
    smiles = "NCCc1ccc(O)c(O)c1"  # dopamine: ligfit scores it as the pH 7 ammonium
    ligand = load_ligand(smiles, max_conformers=2)
    assert protonation_summary(ligand) == {
        "given_smiles": "NCCc1ccc(O)c(O)c1",
        "given_charge": 0,
        "used_smiles": "[NH3+]CCc1ccc(O)c(O)c1",
        "used_charge": 1,
    }
    coordinates = ligand.conformer_coordinates()[0]
    write_ligand_sdf(tmp_path / "amine.sdf", ligand, [coordinates])
    written = Chem.MolFromMolFile(str(tmp_path / "amine.sdf"))
    assert _inchi(written) == _inchi(Chem.MolFromSmiles(smiles)) and Chem.GetFormalCharge(written) == 0
    np.testing.assert_allclose(written.GetConformer().GetPositions(), coordinates[: written.GetNumAtoms()], atol=1e-3)


def test_chimerax_script_opens_model_maps_and_centres_on_the_ligand(example_build):
    lines = (example_build / CHIMERAX_SCRIPT).read_text().splitlines()
    opened = [line.split(" ", 1)[1] for line in lines if line.startswith("open ")]
    assert opened[0] == "model.cif" and opened[2] == "difference.mrc"
    assert Path(opened[1]).is_absolute() and Path(opened[1]).samefile(EXAMPLE / "map.mrc")
    assert all((example_build / name).is_file() for name in (opened[0], opened[2]))
    level = float(next(line for line in lines if line.startswith("volume #2 ")).split(" level ")[1].split()[0])
    assert 1.0 < level / _map_rms() < 3.0  # a readable contour: between 1 and 3 × the map's rms
    assert "volume zone #2,3 nearAtoms :LIG range 2.4" in lines and "view :LIG" in lines and "color #1 bychain" in lines


def test_coot_script_reads_the_outputs_and_centres_on_the_ligand(example_build):
    """Coot is not installable here: the script runs against a recorder of the Coot 0.9 API functions it calls."""
    calls: list[tuple] = []
    names = ("read_pdb", "handle_read_ccp4_map", "set_contour_level_absolute", "set_rotation_centre", "set_zoom", "set_colour_by_chain")
    namespace = {name: (lambda *args, _name=name: calls.append((_name, *args)) or len(calls)) for name in names}
    namespace["__file__"] = str(example_build / COOT_SCRIPT)
    source = (example_build / COOT_SCRIPT).read_text()
    exec(compile(source, str(example_build / COOT_SCRIPT), "exec"), namespace)  # noqa: S102 - the script under test
    by_name = {call[0]: call[1:] for call in calls}
    assert Path(by_name["read_pdb"][0]).samefile(example_build / "model.cif")
    maps_read = [call[1:] for call in calls if call[0] == "handle_read_ccp4_map"]
    assert Path(maps_read[0][0]).samefile(EXAMPLE / "map.mrc") and maps_read[0][1] == 0
    assert Path(maps_read[1][0]).samefile(example_build / "difference.mrc") and maps_read[1][1] == 1
    placed = Chem.MolFromMolFile(str(example_build / "ligand.sdf")).GetConformer().GetPositions()
    assert np.linalg.norm(np.array(by_name["set_rotation_centre"]) - placed.mean(axis=0)) < 0.01


def _map_rms() -> float:
    from ligfit import maps

    return float(maps.read_map(EXAMPLE / "map.mrc").values.std())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium (apt-get install chromium) for the browser test")
def test_report_renders_in_a_headless_browser(example_build, tmp_path):
    """Chromium renders the page: a screenshot that is not blank, and no console errors from the page."""
    screenshot = example_build.parent / "report_screenshot.png"  # kept beside the build as the test's artifact
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1280,2000",
        (example_build / "report.html").resolve().as_uri(),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    page_errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line]
    assert not page_errors, page_errors
    from matplotlib.image import imread

    pixels = imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.1  # not blank
    coloured = np.ptp(pixels, axis=-1) > 0.2  # the pictures' blue mesh and Q colours, not just black text on white
    assert coloured.mean() > 0.005
