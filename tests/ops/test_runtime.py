import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ctiboard.ops import runtime
from ctiboard.ops.runtime import tune_gc


@pytest.fixture
def gc_threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_tune_gc_sets_the_young_generation_only(gc_threshold: None) -> None:
    gc.set_threshold(700, 11, 12)
    tune_gc(40_000)
    assert gc.get_threshold() == (40_000, 11, 12)


def test_tune_gc_zero_keeps_pythons_threshold(gc_threshold: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)


def _threshold_in_a_process(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CTIBOARD_GC_THRESHOLD"}
    if value is not None:
        env["CTIBOARD_GC_THRESHOLD"] = value
    env["DJANGO_SETTINGS_MODULE"] = "ctiboard.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django, gc; django.setup(); print(gc.get_threshold()[0])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_process_starts_with_the_configured_threshold() -> None:
    assert _threshold_in_a_process(None).stdout.strip() == "50000"
    assert _threshold_in_a_process("2000").stdout.strip() == "2000"
    assert _threshold_in_a_process("0").stdout.strip() == "700"


def test_a_malformed_threshold_stops_the_process() -> None:
    done = _threshold_in_a_process("lots")
    assert done.returncode != 0 and "CTIBOARD_GC_THRESHOLD='lots' is not an integer" in done.stderr


class _Clock:
    """``time.perf_counter`` for the runtime module: ``step`` seconds pass between two reads,
    so each collection (one read as it starts, one as it stops) takes ``step``."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def collections_reported() -> Iterator[None]:
    yield
    runtime.report_slow_collections(0)


@pytest.mark.parametrize(("took", "reported"), [(0.25, True), (0.05, False)])
def test_a_slow_collection_is_logged(
    collections_reported: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    took: float,
    reported: bool,
) -> None:
    monkeypatch.setattr(runtime, "time", _Clock(took))
    runtime.report_slow_collections(100)
    with caplog.at_level("WARNING", logger="ctiboard.ops.runtime"):
        gc.collect()
    messages = [r.getMessage() for r in caplog.records if r.name == "ctiboard.ops.runtime"]
    if reported:
        assert messages and all("garbage collection of generation 2 took" in m for m in messages)
        assert f"took {took * 1000:.0f} ms" in messages[0]
    else:
        assert messages == []


def test_reporting_off_removes_the_hook(collections_reported: None) -> None:
    runtime.report_slow_collections(100)
    runtime.report_slow_collections(100)
    assert gc.callbacks.count(runtime._time_collection) == 1
    runtime.report_slow_collections(0)
    assert runtime._time_collection not in gc.callbacks
