"""Machine facts, targets, the printed table, and results/{bench.json, bench.md, bench.png}."""

import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .procs import REPO

PACKAGES = (
    "Django",
    "channels",
    "channels_redis",
    "daphne",
    "Twisted",
    "autobahn",
    "httpx",
    "httpx-sse",
    "websockets",
    "redis",
    "psycopg",
    "playwright",
    "matplotlib",
    "py-spy",
)


def _run(*command: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed, read-only commands
            command, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory_kb = int(info.readline().split()[1])
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    redis_version = ""
    for line in _run("redis-cli", "-h", "127.0.0.1", "INFO", "server").splitlines():
        if line.startswith("redis_version:"):
            redis_version = line.split(":", 1)[1].strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "chromium": _run("/usr/bin/chromium", "--version"),
        "redis": redis_version,
        "postgresql": _run("psql", "--version"),
        "git_commit": _run("git", "-C", str(REPO), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_run("git", "-C", str(REPO), "status", "--porcelain", "--", "ctiboard")),
        "load_average_start": list(os.getloadavg()),
    }


# --- targets ------------------------------------------------------------------------------


def _step(e2e: dict[str, Any], topology: str, sockets: int) -> dict[str, Any] | None:
    for step in e2e.get("topologies", {}).get(topology, {}).get("steps", []):
        if step["sockets"] == sockets:
            return dict(step)
    return None


def _measured(e2e: dict[str, Any], name: str) -> set[int]:
    """The socket counts of a topology with latency samples (not memory-only steps)."""
    steps = e2e.get("topologies", {}).get(name, {}).get("steps", [])
    return {s["sockets"] for s in steps if s["latency_ms"].get("n")}


def _largest_common(e2e: dict[str, Any], a: str, b: str) -> int | None:
    common = _measured(e2e, a) & _measured(e2e, b)
    return max(common) if common else None


def sockets_before_degrading(topology: dict[str, Any]) -> tuple[int | None, str]:
    """Largest N whose p99 stayed within 2x the p99 at N=0, and how the sweep ended."""
    steps = [s for s in topology.get("steps", []) if s["latency_ms"].get("n")]
    if not steps or steps[0]["sockets"] != 0:
        return None, "no idle step"
    idle = steps[0]["latency_ms"]["p99"]
    best = 0
    for step in steps[1:]:
        if step["latency_ms"]["p99"] > 2 * idle:
            return best, f"p99 {step['latency_ms']['p99']} ms > 2 x {idle} ms at {step['sockets']}"
        best = step["sockets"]
    stopped = topology.get("stopped_at") or topology.get("ramp_stopped_at")
    if stopped:
        return best, f"sweep stopped at {stopped['sockets']}: {stopped['why']}"
    return best, "never degraded within the sweep"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ingest = results.get("ingest", {})
    worker = ingest.get("worker_production") or {}
    label = "PostgreSQL + Redis"
    if "events_per_cpu_s" not in worker:
        worker, label = ingest.get("worker_sqlite") or {}, "SQLite"
    if "events_per_cpu_s" in worker:
        per_core = worker["events_per_cpu_s"]
        rows.append(
            {
                "target": "ingest >= 20,000 events/s per core",
                "value": f"{per_core:,.0f} events per CPU-second ({label}; "
                f"{worker['events_per_s']:,.0f}/s wall, {worker['cpu_us_per_event']:.0f} µs/event)",
                "met": per_core >= 20_000,
            }
        )
    e2e = results.get("e2e", {})
    for topology, limit in (("memory", 100), ("redis", 150)):
        step = _step(e2e, topology, 1000)
        tops = e2e.get("topologies", {}).get(topology, {})
        if step and step["latency_ms"].get("n"):
            p99 = step["latency_ms"]["p99"]
            rows.append(
                {
                    "target": f"e2e p99 <= {limit} ms with 1,000 sockets ({topology})",
                    "value": f"{p99:,.0f} ms",
                    "met": p99 <= limit,
                }
            )
        elif tops and "skipped" not in tops:
            why = (
                tops.get("stopped_at", {}).get("why")
                or tops.get("error")
                or "no 1,000-socket step in this run"
            )
            rows.append(
                {
                    "target": f"e2e p99 <= {limit} ms with 1,000 sockets ({topology})",
                    "value": f"not reached: {why}"[:200],
                    "met": False,
                }
            )
    for topology in ("memory", "redis"):
        n = _largest_common(e2e, topology, "bare")
        if n is not None and n > 1000 and 1000 in _measured(e2e, topology) & _measured(e2e, "bare"):
            n = 1000
        if n is None:
            continue
        mine, bare = _step(e2e, topology, n), _step(e2e, "bare", n)
        assert mine and bare
        ratio = mine["latency_ms"]["p50"] / max(0.1, bare["latency_ms"]["p50"])
        rows.append(
            {
                "target": f"e2e p50 <= 2x bare relay ({topology}, {n} sockets)",
                "value": f"{ratio:.1f}x ({mine['latency_ms']['p50']:,.0f} vs "
                f"{bare['latency_ms']['p50']:,.0f} ms)",
                "met": ratio <= 2,
            }
        )
    for entry in results.get("render", {}).get("server", []):
        if entry["tiles"] >= 5000 or entry["account"] == "KB5000":
            rows.append(
                {
                    "target": "5,000-extension board rendered <= 150 ms",
                    "value": f"p50 {entry['ms']['p50']:.0f} ms, p95 {entry['ms']['p95']:.0f} ms "
                    f"({entry['html_bytes'] / 2**20:.1f} MB HTML)",
                    "met": entry["ms"]["p50"] <= 150,
                }
            )
    memory_topology = e2e.get("topologies", {}).get("memory", {})
    if memory_topology.get("steps"):
        best, how = sockets_before_degrading(memory_topology)
        # Prefer the cost of sockets opened with no traffic in between (backlog and garbage
        # of a saturated step inflate the plain delta).
        marginal = [
            s["kb_per_socket_marginal"]
            for s in memory_topology["steps"]
            if s.get("kb_per_socket_marginal")
        ]
        per_socket = [
            s["kb_per_socket"] for s in memory_topology["steps"] if s.get("kb_per_socket")
        ]
        kb = marginal[-1] if marginal else per_socket[-1] if per_socket else math.nan
        rows.append(
            {
                "target": ">= 5,000 sockets per web process at <= 50 KB each",
                "value": f"{best} sockets before p99 > 2x idle ({how}); {kb} KB/socket",
                "met": bool(best is not None and best >= 5000 and kb <= 50),
            }
        )
    resync = results.get("render", {}).get("resync", {})
    if resync.get("resync_ms", {}).get("n"):
        value = resync["resync_ms"]
        rows.append(
            {
                "target": "1,000-tile resync <= 1 s",
                "value": f"p50 {value['p50']:,.0f} ms, max {value['max']:,.0f} ms "
                f"({value['n']} reconnects)",
                "met": value["p50"] <= 1000,
            }
        )
    elif resync:
        rows.append(
            {
                "target": "1,000-tile resync <= 1 s",
                "value": resync.get("error", "no sample"),
                "met": False,
            }
        )
    return rows


# --- tables -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def e2e_table(e2e: dict[str, Any]) -> list[list[str]]:
    tops = e2e.get("topologies", {})
    sockets = sorted({s["sockets"] for t in tops.values() for s in t.get("steps", [])})
    header = ["sockets"]
    for name in ("bare", "memory", "redis"):
        if name in tops:
            header += [f"{name} p50/p95/p99 ms"]
            if name != "bare":
                header += [f"{name}/bare p50, p99"]
    header += [f"KB/socket {name} (marginal)" for name in ("bare", "memory", "redis")]
    rows = [header]
    for n in sockets:
        row = [str(n)]
        bare = _step(e2e, "bare", n)
        for name in ("bare", "memory", "redis"):
            if name not in tops:
                continue
            step = _step(e2e, name, n)
            lat = step["latency_ms"] if step else {}
            row.append(
                f"{_cell(lat.get('p50'))} / {_cell(lat.get('p95'))} / {_cell(lat.get('p99'))}"
                if lat.get("n")
                else "-"
            )
            if name != "bare":
                if lat.get("n") and bare and bare["latency_ms"].get("n"):
                    b = bare["latency_ms"]
                    row.append(
                        f"{lat['p50'] / max(0.1, b['p50']):.1f}x, "
                        f"{lat['p99'] / max(0.1, b['p99']):.1f}x"
                    )
                else:
                    row.append("-")
        for name in ("bare", "memory", "redis"):
            step = _step(e2e, name, n)
            text = _cell(step.get("kb_per_socket")) if step else "-"
            if step and step.get("kb_per_socket_marginal"):
                text += f" ({_cell(step['kb_per_socket_marginal'])})"
            row.append(text)
        rows.append(row)
    probes = {
        name: t["low_rate"] for name, t in tops.items() if t.get("low_rate", {}).get("latency_ms")
    }
    if probes:
        rate = next(iter(probes.values()))["event_rate"]
        row = [f"0 @ {rate:g}/s"]
        bare = probes.get("bare", {}).get("latency_ms", {})
        for name in ("bare", "memory", "redis"):
            if name not in tops:
                continue
            lat = probes.get(name, {}).get("latency_ms", {})
            row.append(
                f"{_cell(lat.get('p50'))} / {_cell(lat.get('p95'))} / {_cell(lat.get('p99'))}"
                if lat.get("n")
                else "-"
            )
            if name != "bare":
                row.append(
                    f"{lat['p50'] / max(0.1, bare['p50']):.1f}x, "
                    f"{lat['p99'] / max(0.1, bare['p99']):.1f}x"
                    if lat.get("n") and bare.get("n")
                    else "-"
                )
        row += ["-", "-", "-"]
        rows.insert(1, row)
    return rows


def fanout_table(results: dict[str, Any]) -> list[list[str]]:
    """The web process's CPU per message it delivered, against the fan-out floor's ``send``.

    Past a few hundred sockets nearly all a web process does is per socket and round, so its
    CPU over the messages the load clients received is what one delivery costs it.
    """
    floor = {step["sockets"]: step["send_us"] for step in results.get("floor", {}).get("steps", [])}
    # memory: the one demo process, whose cores include its worker and simulator threads.
    header = ["topology", "sockets", "messages/socket/s", "web cores", "web µs/message", "floor"]
    rows = [header]
    for name, topology in results.get("e2e", {}).get("topologies", {}).items():
        for step in topology.get("steps", []):
            count, per_socket = step["sockets"], step.get("msgs_per_socket_s")
            cores = step.get("cpu_cores", {})
            web = cores.get("web", cores.get("demo", cores.get("relay")))
            if count < 1000 or not per_socket or not web:
                continue
            cost = web * 1e6 / (per_socket * count)
            # The floor of the nearest socket count measured.
            near = min(floor, key=lambda n: abs(n - count)) if floor else None
            versus = f"{cost / floor[near]:.1f}x of {floor[near]:.1f} µs" if near else "-"
            rows.append(
                [name, f"{count:,}", f"{per_socket:g}", f"{web:.2f}", f"{cost:.1f}", versus]
            )
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = [["measure", "result"]]
    ingest = results.get("ingest", {})
    parse = ingest.get("parse_only")
    if parse:
        rows.append(
            [
                "ingest: parse only (CTIClient, no DB)",
                f"{parse['events_per_s']:,.0f} events/s, {parse['cpu_us_per_event']:.1f} µs "
                f"CPU/event (parse_state {parse['parse_state_us']:.1f} µs, json.loads "
                f"{parse['json_loads_us']:.1f} µs)",
            ]
        )
    for key, label in (("worker_sqlite", "SQLite"), ("worker_production", "PostgreSQL + Redis")):
        run = ingest.get(key)
        if not run:
            continue
        if "events_per_s" in run:
            extra = ""
            if run.get("streams_opened", 1) > 1:
                extra = f"; stream reopened {run['streams_opened'] - 1}x (lease lost)"
            rows.append(
                [
                    f"ingest: worker process, {label}",
                    f"{run['events_per_s']:,.0f} events/s, {run['cpu_us_per_event']:,.0f} µs "
                    f"CPU/event, RSS {run['worker_rss_mb']:.0f} MB{extra}",
                ]
            )
        else:
            text = run.get("skipped") or run["error"]
            warnings = run.get("log_warnings") or []
            if warnings:
                text += f"; worker log: {len(warnings)} warnings, first: {warnings[0][24:200]}"
            rows.append([f"ingest: worker process, {label}", text])
    render = results.get("render", {})
    for entry in render.get("server", []):
        rows.append(
            [
                f"board render, server ({entry['tiles']} tiles)",
                f"p50 {entry['ms']['p50']:.1f} / p95 {entry['ms']['p95']:.1f} / p99 "
                f"{entry['ms']['p99']:.1f} ms, {entry['html_bytes'] / 1024:,.0f} KB "
                f"({entry['iterations']} requests)",
            ]
        )
    for size, entry in render.get("browser", {}).items():
        if not isinstance(entry, dict) or "loads" not in entry:
            continue
        fcp, live = entry["first_contentful_paint_ms"], entry["live_ms"]
        text = (
            f"first contentful paint p50 {_cell(fcp.get('p50'))} ms, live p50 "
            f"{_cell(live.get('p50'))} ms ({entry['loads']} loads)"
        )
        if entry.get("error"):
            text += f"; FAILED: {entry['error'][:160]}"
        rows.append([f"board in Chromium ({size} tiles)", text])
    resync = render.get("resync")
    if resync:
        value = resync.get("resync_ms", {})
        text = (
            f"p50 {_cell(value.get('p50'))} / max {_cell(value.get('max'))} ms "
            f"({value.get('n', 0)} reconnects)"
        )
        if resync.get("error"):
            text += f"; FAILED: {resync['error'][:160]}"
        rows.append([f"resync after reconnect ({resync['tiles']} tiles)", text])
    for step in results.get("floor", {}).get("steps", []):
        at = step["cores_at"]["every 20 ms (CTIBOARD_PUSH_INTERVAL)"]
        rows.append(
            [
                f"fan-out floor, {step['sockets']:,} sockets (bare send loop, no server code)",
                f"send {step['send_us']:.1f} µs, receive {step['receive_us']:.1f} µs (load"
                f" clients) per socket and round of {step['frame_bytes']:,} bytes; rounds every"
                f" 20 ms would take {at['sender']:.2f} cores to send, {at['receivers']:.2f} to"
                " receive",
            ]
        )
    return rows


def plot(results: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no plot"
    tops = results.get("e2e", {}).get("topologies", {})
    figure, axis = plt.subplots(figsize=(8, 5), dpi=100)
    colours = {"bare": "tab:gray", "memory": "tab:blue", "redis": "tab:red"}
    drawn = False
    for name, topology in tops.items():
        steps = [s for s in topology.get("steps", []) if s["latency_ms"].get("n")]
        if not steps:
            continue
        xs = [max(s["sockets"], 1) for s in steps]
        for key, style in (("p50", "-"), ("p95", ":"), ("p99", "--")):
            axis.plot(
                xs,
                [s["latency_ms"][key] for s in steps],
                style,
                marker="o",
                color=colours.get(name, "black"),
                label=f"{name} {key}",
            )
        drawn = True
        low = topology.get("low_rate", {})
        if low.get("latency_ms", {}).get("n"):
            for key, marker in (("p50", "^"), ("p99", "v")):
                axis.plot(
                    [1],
                    [low["latency_ms"][key]],
                    marker,
                    color=colours.get(name, "black"),
                    label=f"{name} {key} at {low['event_rate']:g} events/s",
                )
    if not drawn:
        plt.close(figure)
        return "no e2e samples: no plot"
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("other WebSockets connected (0 plotted at 1)")
    axis.set_ylabel("emission → DOM swap latency (ms)")
    e2e = results.get("e2e", {})
    axis.set_title(
        f"ctiboard end to end, ~{e2e.get('event_rate', 0):g} events/s, "
        f"{e2e.get('extensions')} tiles in Chromium"
    )
    axis.axhline(100, color="green", linewidth=0.8, label="target p99 100 ms (memory)")
    axis.axhline(150, color="olive", linewidth=0.8, label="target p99 150 ms (redis)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return ""


def write(results: dict[str, Any], out: Path, stem: str = "bench") -> str:
    """Write JSON, Markdown and PNG; return the text table printed to the terminal."""
    out.mkdir(parents=True, exist_ok=True)
    # The measurements first: a bug in the summary below must never lose them.
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    results["targets"] = targets(results)
    problem = plot(results, out / f"{stem}.png")
    if problem:
        results["plot"] = problem
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    target_rows = [["target", "result", "met"]] + [
        [row["target"], row["value"], "yes" if row["met"] else "NO"] for row in results["targets"]
    ]
    e2e_rows = e2e_table(results.get("e2e", {}))
    fanout_rows = fanout_table(results)
    meta = results["meta"]
    load = ", ".join(f"{x:.2f}" for x in meta["machine"]["load_average_start"])
    md = [
        f"# ctiboard benchmark results ({meta['mode']} run, {meta['started']})",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
        f"{meta['machine']['memory_gib']} GiB; Python {meta['machine']['python']}; "
        f"load average at start {load}. "
        f"Code: {meta['machine']['git_commit']}"
        + (" + uncommitted changes" if meta["machine"]["git_dirty"] else "")
        + f". Duration {meta['duration_s']:.0f} s.",
        "",
        "## Targets",
        "",
        markdown_table(target_rows),
        "",
        "## Measures",
        "",
        markdown_table(summary_rows(results)),
        "",
        f"## End to end (~{results.get('e2e', {}).get('event_rate', 0):g} state events/s, "
        f"{results.get('e2e', {}).get('extensions')} tiles in Chromium, "
        f"{results.get('e2e', {}).get('window_s')} s window per step)",
        "",
        markdown_table(e2e_rows) if len(e2e_rows) > 1 else "(not measured)",
        "",
        f"![latency percentiles against connected sockets]({stem}.png)",
        "",
        "## Fan-out cost (web process CPU per message delivered, against the bare send loop)",
        "",
        "memory: the demo process's cores include its worker and simulator.",
        "",
        markdown_table(fanout_rows) if len(fanout_rows) > 1 else "(not measured)",
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in meta["machine"]["packages"].items() if v)
        + f"; {meta['machine']['chromium']}; Redis {meta['machine']['redis']}; "
        f"{meta['machine']['postgresql']}",
        "",
        "## Commands",
        "",
        "```",
        meta["command"],
        *meta["commands"],
        "```",
        "",
    ]
    (out / f"{stem}.md").write_text("\n".join(md))
    text = [
        text_table(target_rows),
        "",
        text_table(summary_rows(results)),
    ]
    if len(e2e_rows) > 1:
        text += ["", text_table(e2e_rows)]
    if len(fanout_rows) > 1:
        text += ["", text_table(fanout_rows)]
    return "\n".join(text)
