"""Ingest: state events per second that one worker process parses and applies, CPU per event.

1. A state stream of ``extensions`` extensions is recorded from the simulator (bootstrap of
   every extension, then ``events`` changes of generated traffic, then a sentinel state).
2. parse-only: ``CTIClient.stream_states`` reads the replayed stream, no database.
3. worker: ``manage.py ingest`` (the production worker, leases and all) on a database seeded
   with the tenant and its extensions, against the replay server. The clock runs from the
   first byte of the stream to the moment the sentinel is visible in the database; the CPU is
   the worker process's own (user + system) over the same window.
"""

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from . import profile
from .procs import (
    Stack,
    base_env,
    cpu_seconds,
    postgres_admin,
    postgres_database,
    production_env,
    redis_reachable,
    rss_bytes,
    wait_for,
)


def _listening(process: Any, timeout: float = 30) -> str:
    def check() -> str | None:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.output()}")
        for line in process.output(100_000).splitlines():
            if line.startswith("listening on "):
                return line.split()[-1]
        return None

    return str(wait_for(check, timeout, f"{process.name} listens"))


def record(stack: Stack, extensions: int, events: int, out: Path) -> dict[str, Any]:
    output = stack.run(
        "-m",
        "bench.replay",
        "record",
        "--extensions",
        str(extensions),
        "--events",
        str(events),
        "--out",
        str(out),
    )
    return dict(json.loads(output.strip().splitlines()[-1]))


def parse_only(workdir: Path, replay_dir: Path) -> dict[str, Any]:
    with Stack(base_env(workdir), workdir) as stack:
        server = stack.spawn(
            "replay-parse", "-m", "bench.replay", "serve", "--dir", str(replay_dir)
        )
        url = _listening(server)
        result = json.loads(
            stack.run("-m", "bench.parseonly", url, str(replay_dir)).strip().splitlines()[-1]
        )
    result["events_per_s"] = result["events"] / result["wall_s"]
    result["cpu_us_per_event"] = 1e6 * result["cpu_s"] / result["events"]
    return dict(result)


class _Sentinel:
    """Whether the sentinel state has reached the database (read-only polling)."""

    QUERY = (
        "SELECT 1 FROM pbx_extension e JOIN pbx_tenant t ON e.tenant_id = t.id "
        "WHERE t.account = {p} AND e.number = {p} AND e.line = {p}"
    )

    def __init__(self, meta: dict[str, Any], sqlite_path: Path | None, database_url: str | None):
        self.params = (meta["account"], meta["sentinel_extension"], meta["sentinel_line"])
        self.sqlite_path = sqlite_path
        self.database_url = database_url
        self._conn: Any = None

    def seen(self) -> bool:
        if self._conn is None:
            if self.database_url:
                import psycopg

                self._conn = psycopg.connect(self.database_url, autocommit=True)
            else:
                uri = f"file:{self.sqlite_path}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=20)
        placeholder = "%s" if self.database_url else "?"
        row = self._conn.execute(self.QUERY.format(p=placeholder), self.params).fetchone()
        return row is not None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def worker_run(
    workdir: Path,
    replay_dir: Path,
    meta: dict[str, Any],
    *,
    production: bool,
    database_url: str | None,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = production_env(workdir, database_url) if production else base_env(workdir)
    with Stack(env, workdir) as stack:
        server = stack.spawn(
            "replay", "-m", "bench.replay", "serve", "--dir", str(replay_dir), "--wait-go"
        )
        url = _listening(server)
        spec = {
            "tenants": [
                {
                    "account": meta["account"],
                    "base_url": url,
                    "api_username": meta["username"],
                    "api_password": meta["password"],
                    "extensions": [
                        [row["extension_number"], row["name"], row["uuid"]]
                        for row in json.loads((replay_dir / "directory.json").read_text())
                    ],
                }
            ]
        }
        spec_file = workdir / "seed.json"
        spec_file.write_text(json.dumps(spec))
        stack.run("-m", "bench.seed", str(spec_file))
        # The production lease round interval: the tenant exists already, so the worker's
        # first round (at start) takes it; faster rounds would add their CPU to every event.
        worker = stack.spawn("ingest", "manage.py", "ingest", LOG_LEVEL="INFO")

        def requested() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.output()}")
            stats = httpx.get(f"{url}/_bench/stats", timeout=5).json()
            return stats["requested_at"] is not None

        wait_for(requested, 90, "the worker opens the state stream", interval=0.05)
        time.sleep(0.5)  # let the extension sync and status write settle
        sentinel = _Sentinel(
            meta,
            None if database_url else workdir / "data" / "ctiboard.sqlite3",
            database_url,
        )
        cpu_before = cpu_seconds(worker.pid)
        httpx.post(f"{url}/_bench/go", timeout=5)
        profiler = None
        if profile_to is not None:
            import threading

            holder: dict[str, Any] = {}

            def sample() -> None:
                holder["raw"] = profile.record(worker.pid, 6, profile_to)

            profiler = threading.Thread(target=sample, daemon=True)
            profiler.start()
        try:
            # Bounded: at 200 events/s the slowest worker worth measuring is done by then.
            limit = max(120.0, meta["frames"] / 200)
            wait_for(sentinel.seen, limit, "the sentinel state is stored", interval=0.02)
        except TimeoutError as exc:
            stats = httpx.get(f"{url}/_bench/stats", timeout=5).json()
            return {
                "error": f"{exc} (the stream was opened {stats['streams']} times)",
                "streams_opened": stats["streams"],
                "log_warnings": _warnings(worker.output(200_000)),
            }
        finally:
            sentinel.close()
        done = time.time()
        cpu_after = cpu_seconds(worker.pid)
        rss = rss_bytes(worker.pid)
        stats = httpx.get(f"{url}/_bench/stats", timeout=5).json()
        if profiler is not None:
            profiler.join(40)
    wall = done - stats["started_at"]
    result: dict[str, Any] = {
        "events": meta["frames"],
        "wall_s": wall,
        "cpu_s": cpu_after - cpu_before,
        "events_per_s": meta["frames"] / wall,
        "cpu_us_per_event": 1e6 * (cpu_after - cpu_before) / meta["frames"],
        "events_per_cpu_s": meta["frames"] / max(1e-9, cpu_after - cpu_before),
        "worker_rss_mb": rss / 2**20,
        "streams_opened": stats["streams"],
        "log_warnings": _warnings(worker.output(200_000)),
    }
    if profile_to is not None:
        raw = holder.get("raw")
        result["profile"] = profile.summarize(raw) if raw else {"samples": 0}
    return result


def _rate(run: dict[str, Any]) -> str:
    if "events_per_s" in run:
        return f"{run['events_per_s']:.0f} events/s, {run['cpu_us_per_event']:.0f} µs CPU/event"
    return f"failed: {run.get('error', '?')}"


def _warnings(log: str) -> list[str]:
    """Lines of the worker's log that make a run suspect (lease lost, events dropped)."""
    keep = ("WARNING", "ERROR", "CRITICAL")
    lines = [line for line in log.splitlines() if any(k in line for k in keep)]
    return [line[:240] for line in lines[:20]]


def run(ctx: Any) -> dict[str, Any]:
    extensions = ctx.ingest_extensions
    events = ctx.ingest_events
    workdir = ctx.workdir / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    replay_dir = workdir / "replay"
    with Stack(base_env(workdir), workdir) as stack:
        meta = record(stack, extensions, events, replay_dir)
    ctx.log(f"ingest: recorded {meta['frames']} frames ({meta['bytes'] / 2**20:.1f} MB)")
    out: dict[str, Any] = {"recorded": meta}
    out["parse_only"] = parse_only(workdir / "parse", replay_dir)
    ctx.log(f"ingest: parse-only {out['parse_only']['events_per_s']:.0f} events/s")
    if ctx.ingest_sqlite or ctx.redis_mode == "off":
        try:
            out["worker_sqlite"] = worker_run(
                workdir / "sqlite", replay_dir, meta, production=False, database_url=None
            )
            ctx.log(f"ingest: worker (SQLite) {_rate(out['worker_sqlite'])}")
        except Exception as exc:  # reported, and the other runs still happen
            out["worker_sqlite"] = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
            ctx.log(f"ingest: worker (SQLite) failed: {exc}")
    if ctx.redis_mode != "off":
        why = redis_reachable()
        admin, pg_why = postgres_admin()
        if why or admin is None:
            out["worker_production"] = {"skipped": f"Redis: {why or 'ok'}; PostgreSQL: {pg_why}"}
        else:
            try:
                with postgres_database(admin) as database_url:
                    out["worker_production"] = worker_run(
                        workdir / "production",
                        replay_dir,
                        meta,
                        production=True,
                        database_url=database_url,
                    )
                ctx.log(f"ingest: worker (PostgreSQL + Redis) {_rate(out['worker_production'])}")
            except Exception as exc:
                out["worker_production"] = {"error": f"{type(exc).__name__}: {exc}"[:1500]}
                ctx.log(f"ingest: worker (PostgreSQL + Redis) failed: {exc}")
    if ctx.profile and profile.available():
        # A run of its own, on a shorter recording: sampling costs CPU. On PostgreSQL when it
        # is there (the SQLite run may lose its lease, see the report), else on SQLite.
        profile_dir = workdir / "replay-profile"
        with Stack(base_env(workdir), workdir) as stack:
            small = record(stack, extensions, min(events, 8000), profile_dir)
        admin, _ = postgres_admin()
        production = "events_per_s" in out.get("worker_production", {})
        with (
            postgres_database(admin)
            if production and admin is not None
            else contextlib.nullcontext(None)
        ) as database_url:
            profiled = worker_run(
                workdir / "profile",
                profile_dir,
                small,
                production=database_url is not None,
                database_url=database_url,
                profile_to=workdir / "worker-profile",
            )
        out["worker_profile"] = profiled.get("profile", {"samples": 0})
        out["worker_profile"]["database"] = "PostgreSQL + Redis" if database_url else "SQLite"
    return out
