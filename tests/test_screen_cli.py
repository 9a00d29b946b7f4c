"""`ligfit screen` on bad input: one line on stderr, a non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

from ligfit import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tyk2"


def _screen(tmp_path: Path, library: Path, *extra: str) -> int:
    return cli.main(
        [
            "screen",
            str(EXAMPLE / "map.mrc"),
            "--model",
            str(EXAMPLE / "protein.pdb"),
            "--ligands",
            str(library),
            "--resolution",
            "3.0",
            "-o",
            str(tmp_path / "out"),
            "--quiet",
            *extra,
        ]
    )


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_empty_library_is_one_line_and_exit_1(tmp_path, capsys):
    library = tmp_path / "empty.smi"
    library.write_text("# only a comment\nC1CC( broken\n")
    assert _screen(tmp_path, library) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("ligfit: error:") and "no usable molecule" in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_library_file_is_one_line(tmp_path, capsys):
    assert _screen(tmp_path, tmp_path / "nowhere.smi") == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "nowhere.smi" in lines[0]
    assert not (tmp_path / "out").exists()


def test_dead_scheduler_is_one_line_exit_1_and_nothing_written(tmp_path, capsys):
    library = tmp_path / "library.smi"
    library.write_text("OCC(O)CO glycerol\n")
    assert _screen(tmp_path, library, "--scheduler", "tcp://127.0.0.1:9") == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "does not answer" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_blob_that_is_not_there_is_one_line_listing_the_blobs_and_nothing_written(tmp_path, capsys):
    args = ["identify", str(EXAMPLE / "map.mrc"), "--model", str(EXAMPLE / "protein.pdb"), "--resolution", "3.0"]
    assert cli.main([*args, "--blob", "99", "-o", str(tmp_path / "out"), "--quiet"]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "there is no blob 99" in lines[0] and "blob 1 ~" in lines[0]
    assert not (tmp_path / "out").exists()
