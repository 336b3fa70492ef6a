"""Parse-only ingest: CTIClient.stream_states against the replay server, no database.

    python -m bench.parseonly URL DIR

Prints one JSON line: events read, wall and CPU seconds from the first event to the sentinel,
and, for locating the cost, the same frames through ``parse_state`` alone and through
``json.loads`` alone (no network, no SSE decoding).
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


async def stream(url: str, meta: dict[str, Any]) -> dict[str, Any]:
    from ctiboard.cti.client import CTIClient

    count = 0
    first_wall = first_cpu = 0.0
    async with CTIClient(
        url, meta["username"], meta["password"], meta["account"], stream_read_timeout=30
    ) as client:
        async for event in client.stream_states():
            if count == 0:
                first_wall, first_cpu = time.perf_counter(), time.process_time()
            count += 1
            if (
                event.extension == meta["sentinel_extension"]
                and event.line == meta["sentinel_line"]
            ):
                break
    wall = time.perf_counter() - first_wall
    cpu = time.process_time() - first_cpu
    return {"events": count, "wall_s": wall, "cpu_s": cpu}


def offline(directory: Path) -> dict[str, Any]:
    from ctiboard.cti.events import parse_state

    payloads = [
        line[6:]
        for line in (directory / "frames.sse").read_text().split("\n")
        if line.startswith("data: ")
    ]
    started = time.process_time()
    for payload in payloads:
        parse_state(payload)
    parse_cpu = time.process_time() - started
    started = time.process_time()
    for payload in payloads:
        json.loads(payload)
    json_cpu = time.process_time() - started
    return {
        "offline_events": len(payloads),
        "parse_state_us": 1e6 * parse_cpu / len(payloads),
        "json_loads_us": 1e6 * json_cpu / len(payloads),
    }


def main() -> None:
    import django

    django.setup()
    url, directory = sys.argv[1], Path(sys.argv[2])
    meta = json.loads((directory / "meta.json").read_text())
    result = asyncio.run(stream(url, meta))
    result.update(offline(directory))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
