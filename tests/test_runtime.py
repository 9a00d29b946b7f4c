"""ligfit.runtime: versions, the stage timer, and JSON-ready values."""

from __future__ import annotations

import json
import math
import time
from importlib import metadata

import numpy as np
import pytest

from ligfit.runtime import RESULT_PACKAGES, StageTimer, json_ready, no_progress, versions


def test_versions_name_python_and_every_result_package():
    found = versions()
    assert list(found) == ["python", *RESULT_PACKAGES]
    assert {"numpy", "scipy", "gemmi", "rdkit", "torch", "openmm"} <= set(found)
    assert found["numpy"] == np.__version__
    assert found["python"].count(".") == 2
    assert all(isinstance(value, str) and value for value in found.values())


def test_versions_of_a_missing_package():
    found = versions(("numpy", "no-such-package-ligfit-test"))
    assert found["no-such-package-ligfit-test"] == "not installed"
    assert found["numpy"] == metadata.version("numpy")


def test_stage_timer_charges_each_lap_to_its_stage():
    timer = StageTimer()
    time.sleep(0.05)
    first = timer.lap("inputs")
    time.sleep(0.02)
    timer.lap("docking")
    time.sleep(0.03)
    timer.lap("inputs")  # a second lap on the same stage adds up
    assert 0.05 <= first < 5.0  # loose upper bounds: the machine may be busy
    assert list(timer.timings) == ["inputs", "docking"]
    assert 0.08 <= timer.timings["inputs"] < 10.0
    assert 0.02 <= timer.timings["docking"] < 5.0
    assert all(round(value, 3) == value for value in timer.timings.values())


def test_stage_timer_adds_to_a_given_dict():
    timings = {"inputs": 1.0}
    timer = StageTimer(timings)
    timer.lap("inputs")
    assert timer.timings is timings and timings["inputs"] >= 1.0
    assert StageTimer().timings == {}  # a fresh timer shares nothing with another


def test_no_progress_says_nothing(capsys):
    assert no_progress("docking", 1, 3) is None
    assert capsys.readouterr() == ("", "")


def test_json_ready_turns_nan_and_numpy_into_strict_json():
    value = {
        "grid": np.array([[1.0, np.nan], [np.inf, -np.inf]]),
        "nested": [{"scores": np.array([0.5, np.nan], dtype=np.float32), "count": np.int64(3)}, (np.float64("nan"), np.bool_(True))],
        "plain": math.nan,
        "ok": 1.25,
        "none": None,
        7: "integer key",
        "text": "kept",
    }
    ready = json_ready(value)
    text = json.dumps(ready, allow_nan=False)  # raises on any NaN/inf left
    assert json.loads(text) == {
        "grid": [[1.0, None], [None, None]],
        "nested": [{"scores": [0.5, None], "count": 3}, [None, True]],
        "plain": None,
        "ok": 1.25,
        "none": None,
        "7": "integer key",
        "text": "kept",
    }
    assert type(ready["nested"][0]["count"]) is int and type(ready["nested"][1][1]) is bool


def test_json_ready_leaves_the_input_alone():
    values = np.array([1.0, np.nan])
    json_ready({"values": values})
    assert np.isnan(values[1])


@pytest.mark.parametrize("scalar, expected", [(np.float32(2.5), 2.5), (np.int32(-4), -4), (np.float64(np.inf), None), (np.str_("a"), "a")])
def test_json_ready_scalars(scalar, expected):
    assert json_ready(scalar) == expected
    json.dumps(json_ready(scalar), allow_nan=False)


def test_a_ctrl_c_leaves_the_thread_pool_without_waiting_for_a_task_stuck_on_a_lock():
    """A Ctrl-C once landed while the main thread held a lock a docking task then waited for (numba's first compile):
    leaving the pool joined that task forever. It now leaves at once, the task still waiting, and the interrupt goes on;
    the CLI's exit then waits a grace period for such threads and ends without them. (The scenario runs in a daemon
    thread, so that the old behaviour fails this test instead of hanging the suite.)"""
    import threading

    from ligfit.cli import _threads_still_running
    from ligfit.runtime import torch_thread_pool

    held = threading.Lock()
    held.acquire()
    started = threading.Event()
    outcome: list[BaseException] = []

    def stuck() -> None:
        started.set()
        with held:
            pass

    def interrupted_inside_the_pool() -> None:
        try:
            with torch_thread_pool(1) as pool:
                pool.submit(stuck)
                started.wait(5)
                raise KeyboardInterrupt
        except BaseException as error:  # noqa: BLE001 - the interrupt is what this records
            outcome.append(error)

    scenario = threading.Thread(target=interrupted_inside_the_pool, daemon=True)
    scenario.start()
    scenario.join(10)
    left = not scenario.is_alive()
    waiting = threading.Thread(target=stuck)  # as the CLI's exit sees a task the interrupt left waiting
    waiting.start()
    assert _threads_still_running(grace=0.2)
    held.release()
    assert left and isinstance(outcome[0], KeyboardInterrupt)
    assert not _threads_still_running(grace=5)


def test_an_error_inside_the_thread_pool_cancels_the_tasks_not_yet_started():
    import threading

    from ligfit.runtime import torch_thread_pool

    gate = threading.Event()
    ran: list[int] = []

    def task(number: int) -> None:
        gate.wait(5)
        ran.append(number)

    with pytest.raises(ValueError):
        with torch_thread_pool(1) as pool:
            for number in range(5):
                pool.submit(task, number)
            threading.Timer(0.2, gate.set).start()
            raise ValueError("a blob failed")
    assert ran == [0]  # the running task finished (the pool waited for it); the four queued ones never started
