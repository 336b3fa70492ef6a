"""Static files as the Docker image serves them: collectstatic with the manifest storage, then
WhiteNoise serving hashed names from STATIC_ROOT (no finders), cacheable for ever."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.production

PROBE = """
import json, re
import django
django.setup()
from django.test import Client
client = Client()
page = client.get("/login/").content.decode()
href = re.search(r'href="(/static/[^"]+\\.css)"', page)[1]
asset = client.get(href)
body = b"".join(asset.streaming_content) if asset.streaming else asset.content
print(json.dumps({
    "href": href,
    "status": asset.status_code,
    "cache": asset.headers.get("Cache-Control", ""),
    "size": len(body),
    "missing": client.get("/static/board/no-such-file.css").status_code,
}))
"""


def test_collected_static_files_are_served_with_hashed_names(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
        "CTIBOARD_DATA_DIR": str(tmp_path / "data"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "CTIBOARD_STATIC_MANIFEST": "1",
        "WHITENOISE_USE_FINDERS": "0",
        "SECRET_KEY": "static-test",
        "HTTPS": "0",  # the probe's test client speaks plain HTTP
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DEBUG"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
    )
    assert (tmp_path / "static" / "staticfiles.json").exists()
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # board.css became board.<hash>.css, served from STATIC_ROOT, immutable.
    assert result["href"].startswith("/static/board/board.")
    assert result["href"] != "/static/board/board.css"
    assert result["status"] == 200 and result["size"] > 0
    assert "immutable" in result["cache"]
    assert result["missing"] == 404
