"""Container health check: ``python -m ctiboard.ops.probe [URL]``; exit 0 on HTTP 200.

One image runs every role, so the URL comes from ``HEALTHCHECK_URL`` (the web process's
``/healthz`` by default; compose.yaml points workers at their metrics port and the simulator at
its control API). Standard library only: it runs every few seconds and must start fast.
"""

import os
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("HEALTHCHECK_URL", DEFAULT_URL)
    if not url.startswith(("http://", "https://")):
        print(f"not an http(s) URL: {url}", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - checked above
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
