"""Board render (server time, HTML size), first paint and live in Chromium, and resync.

One SQLite database holds three tenants of 100, 1,000 and 5,000 extensions with mixed line
states, and a user who sees all of them.

- server: ``bench.render_server`` times ``GET /t/<account>/`` through Django's test client
  (middleware, view, queries, template; no HTTP parsing), many iterations per size.
- browser: a Daphne web process (in-memory layer) serves the same database; each size is
  loaded in a fresh Chromium page several times: first contentful paint, and "live" = the
  board's socket is open and the grid it sends on connect has been swapped in (both from
  navigation start).
- resync: the 1,000-tile board is loaded through a small TCP proxy; the proxy cuts every
  connection (as a network drop or a proxy restart would), the htmx ws extension reconnects,
  and the time from the new socket's ``open`` to the grid swapped in is the resync time.
"""

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from . import browser
from .procs import Stack, base_env, login
from .stats import summary

USER, PASSWORD = "alice", "bench-alice-pw"


class Proxy:
    """A TCP proxy on 127.0.0.1 in a thread of its own that can cut every connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        # Cut connections end their pump tasks with errors nobody needs to read.
        self.loop.set_exception_handler(lambda loop, context: None)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self.writers |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self.writers -= {writer, upstream_writer}

    async def _shutdown(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        await asyncio.sleep(0.2)  # the pumps see their connections gone and end
        self.loop.stop()

    def drop_all(self) -> None:
        def drop() -> None:
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()

        self.loop.call_soon_threadsafe(drop)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self._thread.join(5)


def _seed(stack: Stack, workdir: Path, sizes: list[int]) -> dict[str, int]:
    spec = {
        "users": [{"username": USER, "password": PASSWORD}],
        "tenants": [
            {
                "account": f"KB{size}",
                "enabled": True,
                "extensions": size,
                "states": True,
                "members": [{"user": USER, "all": True}],
            }
            for size in sizes
        ],
    }
    (workdir / "seed.json").write_text(json.dumps(spec))
    stack.run("-m", "bench.seed", str(workdir / "seed.json"))
    return {f"KB{size}": size for size in sizes}


def server_side(stack: Stack, workdir: Path, iterations: dict[int, int]) -> list[dict[str, Any]]:
    spec = {
        "user": USER,
        "boards": {f"KB{size}": count for size, count in iterations.items()},
        "profile": f"KB{max(iterations)}",
    }
    (workdir / "render.json").write_text(json.dumps(spec))
    output = stack.run("-m", "bench.render_server", str(workdir / "render.json"), timeout=600)
    return list(json.loads(output.strip().splitlines()[-1]))


PAINT = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = (name) => {
    const e = performance.getEntriesByName(name)[0];
    return e ? e.startTime : null;
  };
  const b = window.__bench;
  return {
    ttfb: nav ? nav.responseStart : null,
    response_end: nav ? nav.responseEnd : null,
    dom_content_loaded: nav ? nav.domContentLoadedEventEnd : null,
    first_paint: paint('first-paint'),
    first_contentful_paint: paint('first-contentful-paint'),
    socket_open: b.opens.length ? b.opens[0] - performance.timeOrigin : null,
    live: b.grids.length ? b.grids[0] - performance.timeOrigin : null,
    tiles: document.querySelectorAll('[id^="ext-"]').length,
  };
}"""


def page_loads(chromium: Any, url: str, cookie: str, sizes: list[int], loads: int) -> dict:
    results: dict[str, Any] = {}
    for size in sizes:
        samples: list[dict[str, Any]] = []
        error = ""
        for _ in range(loads):
            if error:
                break  # it failed once: the next loads would fail the same way, slowly
            context, page = browser.new_page(chromium, url, {"sessionid": cookie})
            try:
                page.goto(f"{url}/t/KB{size}/", wait_until="load", timeout=120_000)
                browser.wait_live(page, timeout=20)
                samples.append(page.evaluate(PAINT))
            except Exception as exc:  # e.g. the grid never arrives: say so, go on
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                closes = page.evaluate("() => window.__bench ? window.__bench.closes : []")
                if closes:
                    error += f" (socket closed: {closes[:3]})"
            finally:
                context.close()
        entry: dict[str, Any] = {"loads": len(samples)}
        for key in ("ttfb", "first_contentful_paint", "dom_content_loaded", "live"):
            values = [s[key] for s in samples if s.get(key) is not None]
            entry[key + "_ms"] = summary(values)
        if samples:
            entry["tiles"] = samples[-1]["tiles"]
        if error:
            entry["error"] = error
        results[str(size)] = entry
    return results


def resync(chromium: Any, url: str, cookie: str, size: int, times: int) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    proxy = Proxy(port)
    proxied = f"http://127.0.0.1:{proxy.port}"
    context, page = browser.new_page(chromium, proxied, {"sessionid": cookie})
    durations: list[float] = []
    gaps: list[float] = []
    error = ""
    try:
        page.goto(f"{proxied}/t/KB{size}/", wait_until="load", timeout=120_000)
        browser.wait_live(page, timeout=60)
        for attempt in range(times):
            opens = page.evaluate("() => window.__bench.opens.length")
            grids = page.evaluate("() => window.__bench.grids.length")
            dropped = time.time() * 1000
            proxy.drop_all()
            browser.wait_live(page, grids=grids + 1, opens=opens + 1, timeout=60)
            opened, swapped = page.evaluate(
                "() => [window.__bench.opens.at(-1), window.__bench.grids.at(-1)]"
            )
            durations.append(swapped - opened)
            gaps.append(opened - dropped)
            time.sleep(0.5 if attempt < times - 1 else 0)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        context.close()
        proxy.close()
    result: dict[str, Any] = {
        "tiles": size,
        "resync_ms": summary(durations),
        "reconnect_gap_ms": summary(gaps),
    }
    if error:
        result["error"] = error
    return result


def run(ctx: Any) -> dict[str, Any]:
    workdir = ctx.workdir / "render"
    sizes = sorted(ctx.render_iterations)
    out: dict[str, Any] = {}
    with Stack(base_env(workdir), workdir) as stack:
        _seed(stack, workdir, sizes)
        out["server"] = server_side(stack, workdir, ctx.render_iterations)
        for entry in out["server"]:
            ctx.log(
                f"render {entry['account']}: p50 {entry['ms']['p50']:.1f} ms, "
                f"{entry['html_bytes'] / 1024:.0f} KB"
            )
        why = browser.available()
        if why:
            out["browser"] = {"skipped": why}
            return out
        url, _web = stack.daphne("web")
        cookie = login(url, USER, PASSWORD)
        with browser.chromium() as chromium:
            out["browser"] = page_loads(chromium, url, cookie, sizes, ctx.page_loads)
            for size, entry in out["browser"].items():
                ctx.log(
                    f"browser {size} tiles: FCP p50 {entry['first_contentful_paint_ms'].get('p50')}"
                    f" ms, live p50 {entry['live_ms'].get('p50')} ms {entry.get('error', '')}"
                )
            out["resync"] = resync(chromium, url, cookie, ctx.resync_tiles, ctx.resyncs)
            ctx.log(f"resync {ctx.resync_tiles} tiles: {out['resync']}")
    return out
