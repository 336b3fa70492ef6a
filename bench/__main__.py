"""``python -m bench`` (``make bench``): run the benchmark suite, print a table, write results.

    python -m bench              # full run, ~15 minutes
    python -m bench --quick      # a smaller run, ~3 minutes
    python -m bench --only ingest,render --redis off

Every process it starts listens on 127.0.0.1 and is stopped when its measure ends; every load
loop is bounded in count and time. See bench/README.md.
"""

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import e2e, ingest, profile, render, report, sendfloor
from .procs import COMMANDS, REPO

MEASURES = ("ingest", "render", "e2e", "floor")


@dataclass
class Context:
    workdir: Path
    quick: bool
    redis_mode: str = "auto"
    profile: bool = False
    # ingest
    ingest_extensions: int = 5000
    ingest_events: int = 25_000
    ingest_sqlite: bool = True
    # render
    render_iterations: dict[int, int] = field(default_factory=dict)
    page_loads: int = 5
    resync_tiles: int = 1000
    resyncs: int = 10
    # e2e
    sockets: list[int] = field(default_factory=list)
    event_rate: float = 200.0
    e2e_extensions: int = 500
    window: float = 10.0
    warmup: float = 3.0
    give_up_ms: float = 5000.0
    probe_rate: float = 0.0  # also measure N=0 at this lower rate (full runs: 50 events/s)
    profile_at: int = 1000
    topologies: tuple[str, ...] = ("bare", "memory", "redis")
    topology_budget: float = 200.0
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f}s] {message}", flush=True)


def configure(args: argparse.Namespace, workdir: Path) -> Context:
    ctx = Context(workdir=workdir, quick=args.quick, redis_mode=args.redis)
    if args.quick:
        ctx.ingest_events = 10_000
        ctx.ingest_sqlite = False  # the PostgreSQL + Redis worker only, when it is there
        ctx.render_iterations = {100: 20, 1000: 5, 5000: 2}
        ctx.page_loads = 1
        ctx.resyncs = 2
        ctx.sockets = [0, 100]
        ctx.window = 4.0
        ctx.warmup = 1.5
        ctx.topology_budget = 60.0
    else:
        ctx.render_iterations = {100: 200, 1000: 40, 5000: 10}
        ctx.sockets = [0, 100, 250, 500, 1000, 2000, 5000]
        ctx.profile = profile.available()
        ctx.probe_rate = 50.0
        # Room to reach 5,000 sockets at ~60 ms per connect of a 500-tile board.
        ctx.topology_budget = 420.0
    if args.ramp_budget:
        ctx.topology_budget = args.ramp_budget
    if args.sockets:
        ctx.sockets = sorted({0, *(int(n) for n in args.sockets.split(","))})
    if args.profile is not None:
        ctx.profile = args.profile and profile.available()
    if args.e2e_extensions:
        ctx.e2e_extensions = args.e2e_extensions
    if args.events:
        ctx.ingest_events = args.events
    if args.ingest_extensions:
        ctx.ingest_extensions = args.ingest_extensions
    if args.window:
        ctx.window = args.window
    if args.profile_at is not None:
        ctx.profile_at = args.profile_at
    if args.topologies:
        ctx.topologies = tuple(t.strip() for t in args.topologies.split(",") if t.strip())
    return ctx


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smaller run (~3 minutes): fewer events, iterations and steps; e2e without Redis",
    )
    parser.add_argument("--only", default=",".join(MEASURES), help="ingest,render,e2e,floor")
    parser.add_argument(
        "--redis",
        choices=("auto", "off"),
        default="auto",
        help="auto: measure the Redis/PostgreSQL topology when Redis answers on 127.0.0.1",
    )
    parser.add_argument("--sockets", help="e2e steps, e.g. 100,1000 (0 is always measured)")
    parser.add_argument("--e2e-extensions", type=int, help="tiles on the e2e board (500)")
    parser.add_argument("--events", type=int, help="recorded state changes for ingest")
    parser.add_argument(
        "--ingest-extensions", type=int, help="extensions of the recorded tenant (5000)"
    )
    parser.add_argument("--window", type=float, help="seconds measured per e2e step")
    parser.add_argument(
        "--ramp-budget",
        type=float,
        help="seconds per e2e topology for its socket steps (full 420, quick 60)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy profiles of the worker and web process (default: full runs)",
    )
    parser.add_argument(
        "--topologies", help="e2e topologies, e.g. redis or memory,redis (all: bare,memory,redis)"
    )
    parser.add_argument(
        "--profile-at", type=int, help="the e2e step (sockets) profiled besides 0 (1000)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and databases")
    args = parser.parse_args(argv)
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(only) - set(MEASURES)
    if unknown:
        parser.error(f"unknown measures: {', '.join(sorted(unknown))}")
    topologies = {t.strip() for t in (args.topologies or "").split(",") if t.strip()}
    if topologies - set(e2e.TOPOLOGIES):
        parser.error(f"unknown topologies: {', '.join(sorted(topologies - set(e2e.TOPOLOGIES)))}")

    started_wall = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-"))
    ctx = configure(args, workdir)
    ctx.log(f"work directory {workdir} ({'quick' if args.quick else 'full'} run)")
    results: dict[str, Any] = {}
    runners = {
        "ingest": ingest.run,
        "render": render.run,
        "e2e": e2e.run,
        "floor": sendfloor.run,
    }
    machine = report.machine()
    for name in only:
        ctx.log(f"--- {name}")
        try:
            results[name] = runners[name](ctx)
        except Exception as exc:  # one broken measure must not lose the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
            ctx.log(f"{name} failed: {exc}")
        # Raw measurements as they come, whatever happens to the summary later.
        (workdir / "raw.json").write_text(json.dumps(results, indent=1, default=str))
    results["meta"] = {
        "mode": "quick" if args.quick else "full",
        "started": started_wall,
        "duration_s": time.monotonic() - ctx.started,
        "command": "python -m bench " + shlex.join(argv),
        "commands": list(COMMANDS),
        "machine": {**machine, "load_average_end": list(__import__("os").getloadavg())},
        "config": {
            k: v
            for k, v in vars(ctx).items()
            if k not in ("workdir", "started") and not callable(v)
        },
    }
    stem = "bench-quick" if args.quick else "bench"
    table = report.write(results, args.out, stem)
    print()
    print(table)
    print()
    print(f"results: {args.out / (stem + '.md')}, {stem}.json, {stem}.png")
    if not args.keep_workdir:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs and databases kept in {workdir}")
    failed = [name for name in only if "error" in results.get(name, {})]
    if failed:
        print(json.dumps({name: results[name]["error"][:300] for name in failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
