"""Progress people recognise: tqdm bars on a terminal, plain lines elsewhere, nothing unless asked.

:class:`ProgressReporter` is what the CLI passes to the API as its ``progress``: it implements
:class:`ligfit.runtime.Progress` (``stage``, and ``done`` of ``total`` for a counted stage). The API
stays quiet by default (:func:`ligfit.runtime.no_progress`).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class ProgressReporter:
    """Reports stages to ``stream``: a line per stage; for a counted stage a tqdm bar on a terminal
    (``bars``, default: when ``stream`` is one), else a plain line at its start, its end and at most
    every ``every`` seconds between, with the time left."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, bars: bool | None = None, every: float = 10.0):
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.bars = (stream is not None and _is_terminal(stream)) if bars is None else bars
        self.every = every
        self._stage: str | None = None
        self._bar: tqdm | None = None
        self._started = self._last = 0.0

    @classmethod
    def for_stream(cls, stream: TextIO | None = None, quiet: bool = False) -> ProgressReporter:
        """Progress for a command line: on ``stream`` (default stderr), unless ``quiet``."""
        return cls(stream if stream is not None else sys.stderr, enabled=not quiet)

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        if not self.enabled:
            return
        if done is None or total is None:
            self._finish()
            self._write(f"… {stage}")
            return
        if stage != self._stage:
            self._finish()
            self._stage, self._started = stage, time.perf_counter()
            self._last = self._started
            if self.bars:
                self._bar = tqdm(desc=stage, total=total, unit="step", file=self.stream, dynamic_ncols=True, leave=True)
        if self._bar is not None:
            self._bar.total = total
            self._bar.n = done
            self._bar.refresh()
        else:
            now = time.perf_counter()
            if done in (0, total) or now - self._last >= self.every:
                self._last = now
                self._write(f"… {stage}: {done}/{total}{_time_left(now - self._started, done, total)}")
        if done >= total:
            self._finish()

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._stage, self._bar = None, None

    def _write(self, line: str) -> None:
        if self.bars:
            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _time_left(elapsed: float, done: int, total: int) -> str:
    if done == 0:
        return ""
    if done >= total:
        return f", {elapsed:.0f} s"
    left = elapsed / done * (total - done)
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"
