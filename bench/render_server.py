"""Server time and size of the board page, in-process through Django's test client.

    python -m bench.render_server SPEC.json

SPEC: ``{"user": "alice", "boards": {"KB100": 200, ...} (account: iterations),
"profile": "KB5000" | null}``. Prints one JSON line per board: percentiles of the time from
request to complete response (middleware, view, queries, template), the HTML size, and for
the ``profile`` board the top functions of one cProfile'd request.
"""

import cProfile
import io
import json
import pstats
import sys
import time
from typing import Any


def percentiles(values: list[float]) -> dict[str, float]:
    from bench.stats import summary

    return summary(values, digits=2)


def main(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=spec["user"]))
    results = []
    for account, iterations in spec["boards"].items():
        url = f"/t/{account}/"
        response = client.get(url)  # warm-up: templates compiled, caches filled
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
        times = []
        size = 0
        for _ in range(iterations):
            started = time.perf_counter()
            response = client.get(url)
            times.append(1000 * (time.perf_counter() - started))
            size = len(response.content)
        tiles = response.content.count(b'class="tile ')
        entry: dict[str, Any] = {
            "account": account,
            "iterations": iterations,
            "tiles": tiles,
            "html_bytes": size,
            "ms": percentiles(times),
        }
        if account == spec.get("profile"):
            profiler = cProfile.Profile()
            profiler.enable()
            client.get(url)
            profiler.disable()
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(12)
            entry["profile_tottime"] = _table(text.getvalue())
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("cumulative").print_stats(25)
            entry["profile_cumulative"] = _table(text.getvalue())
        results.append(entry)
    return results


def _table(text: str) -> list[str]:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("ncalls"):
            return [row.strip()[:200] for row in lines[index : index + 26] if row.strip()]
    return []


if __name__ == "__main__":
    with open(sys.argv[1]) as source:
        print(json.dumps(main(json.load(source))))
