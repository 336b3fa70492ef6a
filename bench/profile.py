"""Sampling profiles of running bench processes with py-spy (optional: ``pip install py-spy``).

The profile is taken in a window of its own, never during a timed window: sampling costs CPU
on a two-core machine.
"""

import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any


def available() -> bool:
    return shutil.which("py-spy") is not None or Path(_venv_py_spy()).exists()


def _venv_py_spy() -> str:
    import sys

    return str(Path(sys.executable).parent / "py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 100) -> Path | None:
    """Sample ``pid`` for ``seconds``; returns the collapsed-stack file, or None."""
    exe = shutil.which("py-spy") or _venv_py_spy()
    if not Path(exe).exists():
        return None
    raw = out.with_suffix(".txt")
    process = subprocess.Popen(  # noqa: S603 - py-spy from this venv
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(raw),
            "--duration",
            str(max(1, round(seconds))),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(seconds + 20)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    time.sleep(0.2)
    return raw if raw.exists() and raw.stat().st_size else None


def _where(frame: str) -> str:
    # py-spy frames look like "function (package/module.py:123)"
    return frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]


def _short(frame: str) -> str:
    return f"{frame.partition(' (')[0]} ({_where(frame)})"


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self time per function, inclusive time per function, and time per package."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        leaf = _short(frames[-1])
        if leaf.startswith(("select (", "poll (", "wait (")) or "selectors.py" in leaf:
            idle += count
        own[leaf] += count
        for name in {_short(f) for f in frames}:
            inclusive[name] += count
        packages[_package(frames[-1])] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    ours = Counter({k: v for k, v in inclusive.items() if "(ctiboard/" in k})
    return {
        "samples": total,
        "idle_pct": round(100 * idle / total, 1),
        "self": share(own),
        "inclusive": share(inclusive),
        "ctiboard_inclusive": [
            [name, round(100 * n / total, 1)] for name, n in ours.most_common(20)
        ],
        "by_package": share(packages),
    }


def _package(frame: str) -> str:
    """The top-level package of a frame; ctiboard's by sub-package; stdlib as one."""
    import sys

    parts = _where(frame).split("/")
    top = parts[0].removesuffix(".py")
    if top == "ctiboard" and len(parts) > 2:
        return f"ctiboard.{parts[1]}"
    if top in sys.stdlib_module_names:
        return "stdlib"
    return top or "other"
