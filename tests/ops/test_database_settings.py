"""DATABASE_POOL_SIZE and DATABASE_CONN_MAX_AGE as a process reads them (no connection made)."""

import json
import os
import subprocess
import sys

PRINT_DATABASE = (
    "import django, json; django.setup(); from django.conf import settings;"
    " db = settings.DATABASES['default'];"
    " print(json.dumps({'pool': db.get('OPTIONS', {}).get('pool'), 'age': db['CONN_MAX_AGE']}))"
)
POSTGRES = "postgres://someone@127.0.0.1:5432/nowhere"


def _database(**env: str) -> subprocess.CompletedProcess[str]:
    names = ("DATABASE_URL", "DATABASE_POOL_SIZE", "DATABASE_CONN_MAX_AGE")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(  # noqa: S603 - our own interpreter and settings
        [sys.executable, "-c", PRINT_DATABASE],
        env={**clean, "DJANGO_SETTINGS_MODULE": "ctiboard.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_postgresql_connections_are_pooled_by_default() -> None:
    done = _database(DATABASE_URL=POSTGRES)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "pool": {"min_size": 1, "max_size": 4, "timeout": 10},
        "age": 0,
    }


def test_the_pool_size_is_configurable_and_zero_turns_it_off() -> None:
    assert (
        json.loads(_database(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="12").stdout)["pool"][
            "max_size"
        ]
        == 12
    )
    unpooled = _database(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="0", DATABASE_CONN_MAX_AGE="60")
    assert json.loads(unpooled.stdout) == {"pool": None, "age": 60}


def test_sqlite_has_no_pool() -> None:
    assert json.loads(_database().stdout)["pool"] is None


def test_a_pool_and_kept_connections_together_stop_the_process() -> None:
    done = _database(DATABASE_URL=POSTGRES, DATABASE_CONN_MAX_AGE="60")
    assert done.returncode != 0
    assert "set DATABASE_CONN_MAX_AGE=0 to use the pool, or DATABASE_POOL_SIZE=0" in done.stderr


def test_a_malformed_pool_size_stops_the_process() -> None:
    done = _database(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="-1")
    assert done.returncode != 0 and "DATABASE_POOL_SIZE=-1 must be at least 0" in done.stderr
