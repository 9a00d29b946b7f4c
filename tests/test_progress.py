"""Progress: tqdm bars on a terminal, plain lines elsewhere, nothing when off."""

from __future__ import annotations

import io

from ligfit.progress import ProgressReporter


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _docking(progress: ProgressReporter, blobs: int = 4) -> None:
    for done in range(blobs + 1):
        progress("docking blobs", done, blobs)


def test_off_prints_nothing():
    stream = io.StringIO()
    silent = ProgressReporter(stream, enabled=False)
    silent("reading inputs")
    _docking(silent)
    assert stream.getvalue() == ""
    assert not ProgressReporter.for_stream(_Terminal(), quiet=True).enabled
    assert ProgressReporter.for_stream(_Terminal()).enabled


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = ProgressReporter(stream, every=3600)
    progress("reading inputs")
    _docking(progress)
    progress("refining placements")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "… reading inputs" and lines[-1] == "… refining placements"
    assert lines[1] == "… docking blobs: 0/4"  # its start, then its end only (every = 1 h)
    assert lines[2].startswith("… docking blobs: 4/4, ") and lines[2].endswith(" s")
    assert len(lines) == 4 and "\r" not in stream.getvalue()


def test_tqdm_bar_on_a_terminal():
    stream = _Terminal()
    progress = ProgressReporter(stream)
    assert progress.bars
    _docking(progress, 10)
    text = stream.getvalue()
    assert "docking blobs" in text and "100%" in text and "10/10" in text and "\r" in text
