import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

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
