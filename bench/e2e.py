"""End to end: simulator emission → tile swapped in Chromium's DOM, while N other sockets listen.

Three topologies, measured one after the other with the same steps, rate and window:

- ``bare``: ``manage.py simulate`` → ``bench.relay`` (httpx-sse → websockets, no Django);
- ``memory``: ``manage.py demo`` (board, embedded simulator and worker in one process,
  in-memory channel layer, SQLite);
- ``redis``: ``manage.py simulate`` + Daphne web process + ``manage.py ingest`` worker,
  RedisPubSubChannelLayer, PostgreSQL (SQLite if PostgreSQL is not there).

Per step the N load sockets are opened (each waits for its first message, the grid), the
web process's RSS is read with traffic paused, then traffic runs at the target rate: a
warm-up, then a window in which the page records every tile swap. The latency of a swap is
its DOM time minus the ``updated`` time the simulator stamped on the event.
"""

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from . import browser, profile
from .procs import (
    REPO,
    CpuMeter,
    Stack,
    base_env,
    command_name,
    descendants,
    free_port,
    login,
    postgres_admin,
    postgres_database,
    production_env,
    redis_reachable,
    remember,
    rss_bytes,
    wait_for,
)
from .stats import summary

ACCOUNT = "K1000"
SIM_USER = "K1000/ctiboard-bench"
SIM_PASSWORD = "bench-sim-pw"  # noqa: S105 - the local simulator's credential
USER, PASSWORD = "alice", "bench-alice-pw"
TIME_SCALE = 0.1  # calls of 45 s last 4.5 s: lines keep changing without filling up


@dataclass
class Target:
    name: str
    page_url: str
    ws_url: str
    control: str  # the simulator's API base (its control API is under /_sim)
    web_pid: int
    pids: dict[str, int]
    cookies: dict[str, str] = field(default_factory=dict)
    ws_headers: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def actions_per_second(events_per_second: float, extensions: int) -> tuple[float, float]:
    """The traffic rate (actions/s) that makes ``events_per_second`` state events, found by
    running the same generator in simulated time; returns (rate, events per action)."""
    from ctiboard.simulator.simulator import Simulator

    rate = events_per_second / 3
    ratio = 3.0
    for _ in range(2):
        simulator = Simulator(seed=1)
        tenant = simulator.add_tenant(
            account=ACCOUNT,
            username=SIM_USER,
            password=SIM_PASSWORD,
            extensions=extensions,
            traffic_rate=rate,
            time_scale=TIME_SCALE,
        )
        subscription = tenant.state.subscribe("states")
        simulator.advance(10)
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        actions = tenant.traffic.actions
        events = 0
        for _ in range(60):
            simulator.advance(1)
            while not subscription.queue.empty():
                subscription.queue.get_nowait()
                events += 1
        ratio = events / max(1, tenant.traffic.actions - actions)
        rate = min(1000.0, events_per_second / ratio)
    return rate, ratio


# --- load clients -------------------------------------------------------------------------


class LoadClients:
    def __init__(self, workdir: Path) -> None:
        self.log = (workdir / "loadclients.log").open("wb")
        remember(("-m", "bench.loadclients", "1800"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadclients", "1800"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self, timeout: float = 600, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"load clients did not answer {command['cmd']} in {timeout}s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the load-client process died")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.process.poll() is None:
            with suppress(TimeoutError, RuntimeError, OSError, ValueError):
                self.command(timeout=30, cmd="close")
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- topologies ---------------------------------------------------------------------------


def _listening(process: Any, timeout: float = 60) -> str:
    def check() -> str | None:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.output()}")
        for line in process.output(100_000).splitlines():
            if line.startswith("listening on "):
                return line.split()[-1]
        return None

    return str(wait_for(check, timeout, f"{process.name} listens", interval=0.1))


def _sim_tenant(control: str, extensions: int) -> None:
    response = httpx.post(
        f"{control}/_sim/tenants",
        json={
            "account": ACCOUNT,
            "username": SIM_USER,
            "password": SIM_PASSWORD,
            "extensions": extensions,
            "seed": 1,
            "traffic_rate": 0,
            "time_scale": TIME_SCALE,
        },
        timeout=30,
    )
    response.raise_for_status()


def set_traffic(control: str, rate: float) -> None:
    httpx.put(
        f"{control}/_sim/tenants/{ACCOUNT}/traffic", json={"rate": rate}, timeout=30
    ).raise_for_status()


def _wait_board(url: str, cookie: str, extensions: int, timeout: float = 120) -> None:
    """Until the board shows every extension (the worker has synced and bootstrapped)."""

    def check() -> bool:
        try:
            page = httpx.get(f"{url}/t/{ACCOUNT}/", cookies={"sessionid": cookie}, timeout=30)
        except httpx.HTTPError:
            return False
        return page.status_code == 200 and page.text.count('id="ext-') >= extensions

    wait_for(check, timeout, f"the board shows {extensions} tiles", interval=0.5)
    time.sleep(2)  # let the bootstrap's last writes and pushes settle


@contextmanager
def bare(workdir: Path, extensions: int) -> Iterator[Target]:
    with Stack(base_env(workdir), workdir) as stack:
        sim_url, sim = stack.simulator("simulator", "--seed", "1")
        _sim_tenant(sim_url, extensions)
        relay = stack.spawn(
            "relay",
            "-m",
            "bench.relay",
            "--sim",
            f"{sim_url}/v1",
            "--account",
            ACCOUNT,
            "--username",
            SIM_USER,
            "--password",
            SIM_PASSWORD,
        )
        url = _listening(relay)
        yield Target(
            name="bare",
            page_url=f"{url}/",
            ws_url=url.replace("http://", "ws://") + "/ws",
            control=sim_url,
            web_pid=relay.pid,
            pids={"relay": relay.pid, "simulator": sim.pid},
        )


@contextmanager
def memory(workdir: Path, extensions: int) -> Iterator[Target]:
    env = base_env(
        workdir,
        CTIBOARD_DEMO_EXTENSIONS=str(extensions),
        CTIBOARD_DEMO_TRAFFIC_RATE="0",
        CTIBOARD_DEMO_PASSWORD=PASSWORD,
    )
    with Stack(env, workdir) as stack:
        port = free_port()
        demo = stack.spawn("demo", "manage.py", "demo", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        stack.healthy(demo, f"{url}/healthz", timeout=120)
        control = f"{url}/pbx-simulator"
        httpx.patch(
            f"{control}/_sim/tenants/{ACCOUNT}", json={"time_scale": TIME_SCALE}, timeout=30
        ).raise_for_status()
        cookie = login(url, USER, PASSWORD)
        _wait_board(url, cookie, extensions)
        yield Target(
            name="memory",
            page_url=f"{url}/t/{ACCOUNT}/",
            ws_url=f"ws://127.0.0.1:{port}/ws/board/{ACCOUNT}/",
            control=control,
            web_pid=demo.pid,
            pids={"demo": demo.pid},
            cookies={"sessionid": cookie},
            ws_headers={"Cookie": f"sessionid={cookie}", "Origin": url},
            notes=["one process: web + embedded simulator + worker, SQLite"],
        )


@contextmanager
def redis(workdir: Path, extensions: int) -> Iterator[Target]:
    admin, why = postgres_admin()
    with (
        postgres_database(admin) if admin else _nothing() as database_url,
        Stack(production_env(workdir, database_url), workdir) as stack,
    ):
        notes = [f"database: {'PostgreSQL' if database_url else 'SQLite (' + why + ')'}"]
        sim_url, sim = stack.simulator("simulator", "--seed", "1")
        _sim_tenant(sim_url, extensions)
        spec = {
            "users": [{"username": USER, "password": PASSWORD}],
            "tenants": [
                {
                    "account": ACCOUNT,
                    "base_url": f"{sim_url}/v1",
                    "api_username": SIM_USER,
                    "api_password": SIM_PASSWORD,
                    "members": [{"user": USER, "all": True}],
                }
            ],
        }
        (workdir / "seed.json").write_text(json.dumps(spec))
        stack.run("-m", "bench.seed", str(workdir / "seed.json"))
        url, web = stack.daphne("web")
        worker = stack.spawn("ingest", "manage.py", "ingest", "--poll-interval", "0.5")
        cookie = login(url, USER, PASSWORD)
        _wait_board(url, cookie, extensions)
        yield Target(
            name="redis",
            page_url=f"{url}/t/{ACCOUNT}/",
            ws_url=url.replace("http://", "ws://") + f"/ws/board/{ACCOUNT}/",
            control=sim_url,
            web_pid=web.pid,
            pids={"web": web.pid, "worker": worker.pid, "simulator": sim.pid},
            cookies={"sessionid": cookie},
            ws_headers={"Cookie": f"sessionid={cookie}", "Origin": url},
            notes=notes,
        )


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


TOPOLOGIES = {"bare": bare, "memory": memory, "redis": redis}


# --- the sweep ----------------------------------------------------------------------------


def _push_lag_buckets(target: Target) -> dict[str, float]:
    """The web process's push-latency histogram (worker's send → fan-out round), cumulative
    counts by upper bound; {} where there is none (the bare relay)."""
    if target.name == "bare":
        return {}
    parts = urlsplit(target.page_url)
    try:
        text = httpx.get(f"{parts.scheme}://{parts.netloc}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    return {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "ctiboard_push_latency_seconds"
        for sample in family.samples
        if sample.name == "ctiboard_push_latency_seconds_bucket"
    }


def _push_lag(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Batches of the step that reached the fan-out round late: a stall in the server (or
    between the worker and it) shows here, one in the browser does not."""
    if not after or "+Inf" not in after:
        return {}
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = delta["+Inf"]
    return {
        "batches": int(total),
        "over_250ms": int(total - delta.get("0.25", total)),
        "over_1s": int(total - delta.get("1.0", total)),
    }


def _drain(clients: LoadClients, sockets: int, rate: float, limit: float = 30) -> float:
    """After traffic stops: until the server has caught up with its backlog, i.e. the load
    sockets receive less than a tenth of the traffic rate (calls still in progress keep
    ending for a while, so "nothing at all" would take minutes)."""
    started = time.monotonic()
    if not sockets:
        time.sleep(1.0)
        return time.monotonic() - started
    last = clients.command(cmd="stats")["messages"]
    while time.monotonic() - started < limit:
        time.sleep(1.0)
        now = clients.command(cmd="stats")["messages"]
        if (now - last) / sockets < 0.1 * rate:
            break
        last = now
    return time.monotonic() - started


def _services() -> dict[str, list[int]]:
    """PostgreSQL's and Redis's server processes (shared with anyone else on the machine)."""
    found: dict[str, list[int]] = {"postgres": [], "redis": []}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            name = command_name(int(entry))
            if name.startswith("postgres"):
                found["postgres"].append(int(entry))
            elif name.startswith("redis-server"):
                found["redis"].append(int(entry))
    return {name: pids for name, pids in found.items() if pids}


def _chromium_pids() -> list[int]:
    return [pid for pid in descendants(os.getpid()) if "chrom" in command_name(pid)]


def sweep(ctx: Any, target: Target, chromium: Any, rate: float) -> dict[str, Any]:
    workdir = ctx.workdir / "e2e" / target.name
    clients = LoadClients(workdir)
    context, page = browser.new_page(chromium, target.page_url, target.cookies)
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"notes": target.notes, "steps": steps}
    try:
        page.goto(target.page_url, wait_until="domcontentloaded", timeout=120_000)
        browser.wait_live(page)
        recorder = browser.Recorder(page)
        time.sleep(1)
        rss_idle = rss_bytes(target.web_pid)
        result["web_rss_idle_mb"] = round(rss_idle / 2**20, 1)
        if ctx.probe_rate:
            # Below saturation: the same path at a quarter of the rate, no other sockets.
            set_traffic(target.control, rate * ctx.probe_rate / ctx.event_rate)
            time.sleep(ctx.warmup)
            since = time.time() * 1000
            meter = CpuMeter(target.pids, {"chromium": _chromium_pids(), **_services()})
            recorder.start()
            time.sleep(ctx.window)
            window = recorder.stop(since - ctx.warmup * 1000)
            set_traffic(target.control, 0)
            result["low_rate"] = {
                "event_rate": ctx.probe_rate,
                "latency_ms": summary(window["samples"]),
                "cpu_cores": meter.stop(),
            }
            ctx.log(
                f"e2e {target.name:6} N=    0 at {ctx.probe_rate:g} events/s: "
                f"p50 {result['low_rate']['latency_ms'].get('p50')} "
                f"p99 {result['low_rate']['latency_ms'].get('p99')} ms"
            )
            time.sleep(2)
        opened = 0
        connect_cost = 0.0  # seconds per socket connect, as measured so far
        deadline = time.monotonic() + ctx.topology_budget
        for count in ctx.sockets:
            step: dict[str, Any] = {"sockets": count}
            remaining = deadline - time.monotonic()
            needed = (count - opened) * connect_cost
            if count > opened and needed > remaining:
                result["ramp_stopped_at"] = {
                    "sockets": count,
                    "why": (
                        f"opening {count - opened} more sockets would take ~{needed:.0f} s at the"
                        f" measured {1000 * connect_cost:.0f} ms per connect; {remaining:.0f} s"
                        " of this topology's time budget were left"
                    ),
                }
                break
            # Traffic is paused (and drained) here: what the RSS grows by while the step's
            # sockets connect is what they cost, apart from caches that fill with traffic.
            rss_before, opened_before = rss_bytes(target.web_pid), opened
            if count > opened:
                answer = clients.command(
                    cmd="connect",
                    url=target.ws_url,
                    count=count - opened,
                    headers=target.ws_headers,
                    concurrency=8,
                    timeout=900,
                )
                step["connect_s"] = answer["seconds"]
                connect_cost = max(connect_cost, answer["seconds"] / (count - opened))
                step["connect_failed"] = answer["failed"]
                opened = answer["open"]
            step["open"] = clients.command(cmd="stats")["open"]
            time.sleep(1.5)
            rss = rss_bytes(target.web_pid)
            step["web_rss_mb"] = round(rss / 2**20, 1)
            if count:
                step["kb_per_socket"] = round((rss - rss_idle) / 1024 / count, 1)
            if opened > opened_before:
                step["kb_per_socket_marginal"] = round(
                    (rss - rss_before) / 1024 / (opened - opened_before), 1
                )
            if "stopped_at" in result:
                # Latency is past measuring; the sockets still tell what they cost.
                step["memory_only"] = True
                step["latency_ms"] = {"n": 0}
                steps.append(step)
                ctx.log(
                    f"e2e {target.name:6} N={count:5}: (memory only) "
                    f"{step.get('kb_per_socket', '-')} KB/socket, "
                    f"connect {step.get('connect_s', 0):.1f} s"
                )
                if step.get("connect_failed", 0) > max(10, count // 10):
                    result["ramp_stopped_at"] = {"sockets": count, "why": "connects failed"}
                    break
                continue
            lag_before = _push_lag_buckets(target)
            set_traffic(target.control, rate)
            time.sleep(ctx.warmup)
            since = time.time() * 1000
            before = clients.command(cmd="stats")
            meter = CpuMeter(
                {**target.pids, "loadclients": clients.pid},
                {"chromium": _chromium_pids(), **_services()},
            )
            recorder.start()
            time.sleep(ctx.window)
            window = recorder.stop(since - ctx.warmup * 1000)
            step["cpu_cores"] = meter.stop()
            # Warm-up and window: where a stall of the window's start would begin.
            step["push_lag"] = _push_lag(lag_before, _push_lag_buckets(target))
            after = clients.command(cmd="stats")
            if ctx.profile and count in (0, ctx.profile_at) and target.name != "bare":
                # Traffic still on, outside the timed window: where the web process spends it.
                raw = profile.record(target.web_pid, 6, workdir / f"web-profile-{count}")
                if raw:
                    step["profile"] = profile.summarize(raw)
                if "worker" in target.pids:
                    raw = profile.record(target.pids["worker"], 6, workdir / f"wk-profile-{count}")
                    if raw:
                        step["worker_profile"] = profile.summarize(raw)
            set_traffic(target.control, 0)
            step["latency_ms"] = summary(window["samples"])
            step["tile_swaps"] = window["swaps"]
            step["presence_only_swaps"] = window["presence_only"]
            step["stale"] = window["stale"]
            step["slowest"] = window["slowest"]
            if count:
                step["msgs_per_socket_s"] = round(
                    (after["messages"] - before["messages"]) / ctx.window / count, 1
                )
                step["kb_per_socket_s"] = round(
                    (after["bytes"] - before["bytes"]) / 1024 / ctx.window / count, 1
                )
            step["closed_sockets"] = after["closed"]
            step["drain_s"] = round(_drain(clients, count, ctx.event_rate), 1)
            steps.append(step)
            ctx.log(
                f"e2e {target.name:6} N={count:5}: p50 {step['latency_ms'].get('p50')} "
                f"p99 {step['latency_ms'].get('p99')} ms "
                f"(n={step['latency_ms'].get('n')}), "
                f"{step.get('kb_per_socket', '-')} KB/socket, cpu {step['cpu_cores']}"
            )
            p99 = step["latency_ms"].get("p99", float("inf"))
            if step.get("connect_failed", 0) > max(10, count // 10):
                result["stopped_at"] = result["ramp_stopped_at"] = {
                    "sockets": count,
                    "why": f"{step['connect_failed']} of {count} connects failed",
                }
                break
            if step["latency_ms"].get("n", 0) < 10 or p99 > ctx.give_up_ms:
                result["stopped_at"] = {
                    "sockets": count,
                    "why": (
                        f"p99 {p99} ms > {ctx.give_up_ms:g} ms"
                        if p99 > ctx.give_up_ms
                        else "no latency samples"
                    )
                    + ": latency no longer measured, sockets still opened for their memory",
                }
    finally:
        with suppress(httpx.HTTPError):
            set_traffic(target.control, 0)
        context.close()
        clients.close()
    return result


def run(ctx: Any) -> dict[str, Any]:
    why = browser.available()
    if why:
        return {"skipped": why}
    rate, ratio = actions_per_second(ctx.event_rate, ctx.e2e_extensions)
    out: dict[str, Any] = {
        "event_rate": ctx.event_rate,
        "traffic_actions_per_s": round(rate, 2),
        "events_per_action": round(ratio, 2),
        "extensions": ctx.e2e_extensions,
        "sockets": ctx.sockets,
        "window_s": ctx.window,
        "warmup_s": ctx.warmup,
        "topologies": {},
    }
    names = [name for name in ("bare", "memory") if name in ctx.topologies]
    if "redis" in ctx.topologies and ctx.redis_mode != "off" and not ctx.quick:
        problem = redis_reachable()
        if problem:
            out["topologies"]["redis"] = {"skipped": f"Redis at 127.0.0.1:6379: {problem}"}
        else:
            names.append("redis")
    with browser.chromium() as chromium:
        for name in names:
            workdir = ctx.workdir / "e2e" / name
            try:
                with TOPOLOGIES[name](workdir, ctx.e2e_extensions) as target:
                    out["topologies"][name] = sweep(ctx, target, chromium, rate)
            except Exception as exc:  # one broken topology must not lose the others
                out["topologies"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                ctx.log(f"e2e {name}: failed: {exc}")
    return out
