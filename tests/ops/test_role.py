"""Each process's role, from CTIBOARD_ROLE or its command line (PostgreSQL's application_name;
pg_stat_activity itself is checked in tests/production/test_database_faults.py)."""

import pytest

from ctiboard.ops.role import application_name, process_role


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/app/.venv/bin/daphne", "-b", "::", "ctiboard.asgi:application"], "web"),
        (["/usr/lib/python3/site-packages/daphne/__main__.py", "-p", "8000"], "web"),
        (["manage.py", "ingest", "--poll-interval", "0.5"], "worker"),
        (["/app/manage.py", "deliver_webhooks"], "webhooks"),
        (["manage.py", "demo", "--host", "::"], "demo"),
        (["manage.py", "migrate", "--noinput"], "migrate"),
        (["manage.py", "prune_history"], "prune_history"),
        (["-c"], "process"),
    ],
)
def test_the_command_line_names_the_role(argv: list[str], role: str) -> None:
    assert process_role(argv, {}) == role


def test_ctiboard_role_wins_and_is_made_safe() -> None:
    assert process_role(["manage.py", "ingest"], {"CTIBOARD_ROLE": "Worker EU/1"}) == "worker-eu-1"


def test_application_name_fits_postgresql() -> None:
    assert application_name("worker") == "ctiboard-worker"
    assert len(application_name("x" * 100)) == 63
