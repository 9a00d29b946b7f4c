"""Progress: tqdm bars on a terminal, plain lines elsewhere, nothing when off."""

from __future__ import annotations

import io

from ligfit.progress import QUIET, Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_by_default_prints_nothing_and_yields_everything():
    assert list(QUIET.track(range(5), "docking")) == [0, 1, 2, 3, 4]
    QUIET("reading inputs")
    stream = io.StringIO()
    silent = Progress(stream, enabled=False)
    silent("reading inputs")
    assert list(silent.track([1, 2], "docking")) == [1, 2] and stream.getvalue() == ""


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream, every=3600)
    progress("reading inputs")
    assert list(progress.track(range(4), "docking", unit="blob")) == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert lines == ["… reading inputs", lines[1], lines[2]]
    assert lines[1].startswith("… docking: 1/4 blobs (25%), about") and lines[1].endswith("s left")
    assert lines[2].startswith("… docking: 4/4 blobs (100%), ") and "\r" not in stream.getvalue()


def test_tqdm_bar_on_a_terminal():
    stream = _Terminal()
    progress = Progress(stream)
    assert progress.bars
    assert sum(progress.track(range(10), "refining", unit="placement")) == 45
    text = stream.getvalue()
    assert "refining" in text and "100%" in text and "10/10" in text and "\r" in text


def test_cli_helper_respects_quiet():
    stream = _Terminal()
    assert not Progress.for_stream(stream, quiet=True).enabled
    assert Progress.for_stream(stream).enabled
