"""compose.yaml, the Dockerfile and the Caddyfile, checked without Docker (none runs here):
every ctiboard service runs a real command with arguments its parser accepts, every variable
it sets is one the settings read, and the wiring between services is consistent."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from ctiboard.lib.serve import WEBSOCKET_MAX_MESSAGE_SIZE

from .conftest import REPO

pytestmark = pytest.mark.production

SERVICES = {
    "postgres",
    "redis",
    "migrate",
    "simulator",
    "web1",
    "web2",
    "worker1",
    "worker2",
    "webhooks",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def default_command() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    return json.loads(match[1])


def daphne_max_message_size(arguments: list[str]) -> int:
    """What Daphne's own parser makes of these arguments (in a process of its own: importing
    daphne installs Twisted's asyncio reactor)."""
    parse = (
        "import sys; from daphne.cli import CommandLineInterface as CLI; "
        "print(CLI().parser.parse_args(sys.argv[1:]).websocket_max_message_size)"
    )
    result = subprocess.run(  # noqa: S603 - our interpreter, our arguments
        [sys.executable, "-c", parse, *arguments], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def own_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("build") == "." or str(service.get("image", "")).startswith("ctiboard")
    }


def test_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert SERVICES | {"proxy"} <= services.keys()
    assert set(own_services(compose)) == SERVICES - {"postgres", "redis"}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        healthcheck = service.get("healthcheck", {})
        assert healthcheck.get("test") or healthcheck.get("disable"), f"{name}: no healthcheck"


def test_every_ctiboard_service_runs_a_real_command(compose: dict[str, Any]) -> None:
    commands = get_commands()
    seen = set()
    for name, service in own_services(compose).items():
        command = service.get("command") or default_command()
        if isinstance(command, str):
            command = shlex.split(command)
        if command[0] == "daphne":
            assert command[-1] == "ctiboard.asgi:application", name
            assert "--proxy-headers" in command, f"{name}: client addresses behind the proxy"
            # Daphne caps the messages it sends too: headroom above its 1 MiB default, in a
            # flag the installed daphne knows.
            assert daphne_max_message_size(command[1:]) == WEBSOCKET_MAX_MESSAGE_SIZE, name
            seen.add("web")
            continue
        assert command[:2] == ["python", "manage.py"], f"{name}: {command}"
        subcommand, args = command[2], command[3:]
        assert subcommand in commands, f"{name}: manage.py {subcommand} does not exist"
        parser = load_command_class(commands[subcommand], subcommand).create_parser(
            "manage.py", subcommand
        )
        # Interpolated variables stand for a value; the parser must accept the rest.
        parser.parse_args([re.sub(r"\$\{[^}]+\}", "x", arg) for arg in args])
        seen.add(subcommand)
    assert {"web", "ingest", "simulate", "migrate"} <= seen
    assert "demo" in commands, "the Dockerfile documents the demo role"


def test_every_variable_set_is_read_by_the_settings(compose: dict[str, Any]) -> None:
    # The worker's identity is read where it is derived (ctiboard/ingest/identity.py).
    read = (REPO / "ctiboard" / "settings.py").read_text() + (
        REPO / "ctiboard" / "ingest" / "identity.py"
    ).read_text()
    for name, service in own_services(compose).items():
        for variable in service.get("environment", {}):
            if variable in ("HEALTHCHECK_URL",):
                continue
            assert f'"{variable}"' in read, f"{name}: {variable} is not a setting"


def test_workers_expose_metrics_and_web_processes_sit_behind_the_proxy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for worker in ("worker1", "worker2"):
        port = services[worker]["environment"]["CTIBOARD_METRICS_PORT"]
        # /healthz on the metrics port checks the heartbeat and the channel layer.
        assert any(f":{port}/healthz" in part for part in services[worker]["healthcheck"]["test"])
    identities = [services[w]["environment"]["CTIBOARD_WORKER_ID"] for w in ("worker1", "worker2")]
    assert len(set(identities)) == 2, "each worker has an identity of its own"
    caddyfile_mount = next(v for v in services["proxy"]["volumes"] if "Caddyfile" in v)
    caddyfile = (REPO / caddyfile_mount.split(":")[0]).read_text()
    for web in ("web1", "web2"):
        assert f"{web}:8000" in caddyfile
    assert "health_uri /healthz" in caddyfile
    assert re.search(r"@internal path /readyz /metrics\s+respond @internal 404", caddyfile)


def test_dockerfile_builds_one_non_root_image_for_every_role() -> None:
    text = dockerfile()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2, "multi-stage"
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "collectstatic --noinput" in text
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
    assert "CTIBOARD_STATIC_MANIFEST=1" in text
    assert default_command()[0] == "daphne"
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for source in copied.split():
            assert (REPO / source).exists(), f"COPY {source}: no such file"
    assert Path(REPO / ".dockerignore").exists()
