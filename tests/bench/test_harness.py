"""The benchmark harness itself works: one small measure end to end, and its bookkeeping.

No timing is asserted (this machine is shared and noisy); only that the bench runs, stops its
processes and writes its results. The full suite is ``make bench`` (bench/README.md).
"""

import json
import subprocess
import sys
from pathlib import Path

from bench import report
from bench.browser import parse_time
from bench.stats import summary

REPO = Path(__file__).resolve().parents[2]


def test_ingest_measure_runs_and_writes_results(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "ingest",
            "--redis",
            "off",
            "--no-profile",
            "--ingest-extensions",
            "50",
            "--events",
            "200",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "bench-quick.json").read_text())
    ingest = results["ingest"]
    assert ingest["recorded"]["frames"] == 50 + 200 + 1
    assert ingest["parse_only"]["events"] == ingest["recorded"]["frames"]
    assert ingest["worker_sqlite"]["events"] == ingest["recorded"]["frames"]
    assert ingest["worker_sqlite"]["events_per_s"] > 0
    assert results["meta"]["machine"]["cores"]
    assert any("manage.py ingest" in command for command in results["meta"]["commands"])
    markdown = (tmp_path / "bench-quick.md").read_text()
    assert "ingest >= 20,000 events/s per core" in markdown
    assert "ingest: worker process, SQLite" in done.stdout


def test_latency_bookkeeping() -> None:
    # NFON/simulator stamps carry nanoseconds, Django's "c" format microseconds.
    assert parse_time("1970-01-01T00:00:01.500000000+00:00") == 1500.0
    assert parse_time("1970-01-01T01:00:01.25+01:00") == 1250.0
    assert parse_time("not a time") is None
    stats = summary([float(n) for n in range(1, 101)])
    assert (stats["n"], stats["p50"], stats["p99"], stats["max"]) == (100, 50.0, 99.0, 100.0)


def test_targets_and_tables_from_synthetic_results(tmp_path: Path) -> None:
    def step(sockets: int, p50: float, p99: float, kb: float | None = None) -> dict:
        entry = {"sockets": sockets, "latency_ms": summary([p50] * 98 + [p99] * 2)}
        if kb is not None:
            entry["kb_per_socket"] = kb
        return entry

    def memory_only(sockets: int, kb: float) -> dict:
        return {
            "sockets": sockets,
            "latency_ms": {"n": 0},
            "memory_only": True,
            "kb_per_socket": kb,
        }

    results = {
        "e2e": {
            "event_rate": 200,
            "extensions": 500,
            "window_s": 10,
            "topologies": {
                "bare": {"steps": [step(0, 5, 20), step(1000, 10, 40), memory_only(5000, 14)]},
                "memory": {
                    "steps": [step(0, 8, 30), step(1000, 30, 90, kb=40), memory_only(5000, 45)]
                },
            },
        },
        "render": {"resync": {"tiles": 1000, "resync_ms": summary([400, 500, 600])}},
        "meta": {
            "mode": "test",
            "started": "now",
            "duration_s": 1,
            "command": "python -m bench",
            "commands": [],
            "machine": report.machine(),
        },
    }
    text = report.write(results, tmp_path, "synthetic")
    met = {row["target"]: row["met"] for row in results["targets"]}
    assert met["e2e p99 <= 100 ms with 1,000 sockets (memory)"] is True
    assert met["e2e p50 <= 2x bare relay (memory, 1000 sockets)"] is False  # 3x
    assert met[">= 5,000 sockets per web process at <= 50 KB each"] is False  # only 1,000
    assert met["1,000-tile resync <= 1 s"] is True
    assert "memory/bare p50, p99" in text
    assert (tmp_path / "synthetic.md").exists()


def test_the_fan_out_floor_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    command = ["-m", "bench.sendfloor", "--sockets", "5,20", "--seconds", "1", "--out", str(out)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    floor = json.loads(out.read_text())
    assert [step["sockets"] for step in floor["steps"]] == [5, 20]
    for step in floor["steps"]:
        # Every frame sent arrived: the clients read all of it, none was refused.
        assert step["refused"] == 0 and step["sent"] == step["received"] > 0
        # (The clients' CPU is read in clock ticks: at this size it may round to nothing.)
        assert step["send_us"] > 0 and step["receive_us"] >= 0
    rows = report.summary_rows({"floor": floor})
    assert [row[0] for row in rows[1:]] == [
        "fan-out floor, 5 sockets (bare send loop, no server code)",
        "fan-out floor, 20 sockets (bare send loop, no server code)",
    ]


def test_fan_out_cost_is_web_cpu_per_message_against_the_floor() -> None:
    step = {"sockets": 2000, "msgs_per_socket_s": 25.0, "cpu_cores": {"web": 0.5}}
    results = {
        "e2e": {
            "topologies": {
                "redis": {"steps": [{"sockets": 100, "cpu_cores": {"web": 0.1}}, step]},
                "memory": {"steps": [{**step, "cpu_cores": {"demo": 1.0}}]},
            }
        },
        "floor": {"steps": [{"sockets": 1000, "send_us": 5.0}, {"sockets": 5000, "send_us": 4.0}]},
    }
    # 0.5 cores over 2,000 sockets x 25 messages a second: 10 µs per message; the floor
    # measured nearest to 2,000 sockets is the one at 1,000.
    assert report.fanout_table(results)[1:] == [
        ["redis", "2,000", "25", "0.50", "10.0", "2.0x of 5.0 µs"],
        ["memory", "2,000", "25", "1.00", "20.0", "4.0x of 5.0 µs"],
    ]
    assert report.fanout_table({"e2e": results["e2e"]})[1][-1] == "-"
