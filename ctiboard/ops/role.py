"""Which role this process plays (web, worker, webhooks, ...): PostgreSQL shows it as the
connections' ``application_name``, and every JSON log line carries it."""

import os
import re
from collections.abc import Mapping, Sequence

# manage.py commands that are a role of their own; any other command is named after itself.
COMMAND_ROLES = {
    "ingest": "worker",
    "deliver_webhooks": "webhooks",
    "demo": "demo",
    "simulate": "simulator",
    "migrate": "migrate",
    "runserver": "web",
}
# Programs that serve the ASGI application.
WEB_SERVERS = ("daphne", "uvicorn", "gunicorn", "hypercorn")


def process_role(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """``CTIBOARD_ROLE`` if set, else what the command line says."""
    configured = environ.get("CTIBOARD_ROLE", "").strip()
    if configured:
        return _clean(configured)
    program = argv[0] if argv else ""
    parts = os.path.normpath(program).split(os.sep)
    # "python -m daphne" runs daphne/__main__.py: the package names the program then.
    name = parts[-2] if parts[-1] == "__main__.py" and len(parts) > 1 else parts[-1]
    if name.startswith(WEB_SERVERS):
        return "web"
    if name in ("manage.py", "django-admin") and len(argv) > 1:
        command = argv[1]
        return COMMAND_ROLES.get(command, _clean(command))
    if name.startswith("pytest") or name == "py.test":
        return "test"
    return "process"


def application_name(role: str) -> str:
    """PostgreSQL keeps 63 bytes of it."""
    return f"ctiboard-{role}"[:63]


def _clean(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-") or "process"
