"""Progress of long stages: tqdm bars on a terminal, plain lines elsewhere, nothing unless asked.

The API stays quiet by default (:data:`QUIET`); the CLI turns progress on with
``Progress.for_stream(sys.stderr)``. Stages call ``progress("stage name")`` for a one-off line
and wrap their loops in ``progress.track(items, "docking")`` for a bar with the time left.
A :class:`Progress` is also a ``Callable[[str], None]``, so it can be passed wherever a stage
takes ``progress=`` today.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Progress:
    """Reports stage messages and loop progress to ``stream``; silent when ``enabled`` is false.

    ``bars``: draw tqdm bars (default: when ``stream`` is a terminal). Without bars a loop prints
    a plain line at most every ``every`` seconds, and always its first and last step.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, bars: bool | None = None, every: float = 10.0):
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.bars = (stream is not None and _is_terminal(stream)) if bars is None else bars
        self.every = every

    @classmethod
    def for_stream(cls, stream: TextIO | None = None, quiet: bool = False) -> Progress:
        """Progress for a command line: on ``stream`` (default stderr), unless ``quiet``."""
        return cls(stream if stream is not None else sys.stderr, enabled=not quiet)

    def __call__(self, message: str) -> None:
        """Say that a stage starts (one line)."""
        if not self.enabled:
            return
        if self.bars:
            tqdm.write(f"… {message}", file=self.stream)
        else:
            print(f"… {message}", file=self.stream, flush=True)

    def track(self, items: Iterable[T], description: str, total: int | None = None, unit: str = "step") -> Iterator[T]:
        """Yield ``items`` while showing how many are done and the time left."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        if not self.enabled:
            yield from items
            return
        if self.bars:
            with tqdm(items, desc=description, total=total, unit=unit, file=self.stream, dynamic_ncols=True, leave=True) as bar:
                yield from bar
            return
        yield from self._lines(items, description, total, unit)

    def _lines(self, items: Iterable[T], description: str, total: int | None, unit: str) -> Iterator[T]:
        started = last = time.perf_counter()
        done = 0
        for item in items:
            yield item
            done += 1
            now = time.perf_counter()
            if done == 1 or done == total or now - last >= self.every:
                last = now
                print(f"… {description}: {_count(done, total, unit)}{_time_left(now - started, done, total)}", file=self.stream, flush=True)


#: The API's default: nothing is printed.
QUIET = Progress(None, enabled=False)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _count(done: int, total: int | None, unit: str) -> str:
    units = unit if (done if total is None else total) == 1 else unit + "s"
    return f"{done} {units}" if total is None else f"{done}/{total} {units} ({done / max(total, 1):.0%})"


def _time_left(elapsed: float, done: int, total: int | None) -> str:
    if total is None or done >= total:
        return f", {elapsed:.0f} s"
    left = elapsed / done * (total - done)
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"
