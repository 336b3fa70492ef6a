"""``python manage.py simulate``: serve the PBX simulator on its own, for any client."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ctiboard.lib.serve import serve
from ctiboard.simulator.app import API_PREFIX, build_app
from ctiboard.simulator.model import SimError
from ctiboard.simulator.profiles import add_profile_arguments, tenant_options
from ctiboard.simulator.simulator import Simulator


def _tenant_spec(value: str) -> tuple[str, str, str, int]:
    """K1000:username:password:COUNT; usernames may contain "/", passwords ":"."""
    account, _, rest = value.partition(":")
    username, _, rest = rest.partition(":")
    password, _, count = rest.rpartition(":")
    if not (account and username and password and count.isdigit()):
        raise ValueError(value)
    return account, username, password, int(count)


class Command(BaseCommand):
    help = "Serve the NFON CTI API simulator (control API under /_sim/)."
    # The simulator uses no models, URLs or templates: checks of the rest of the project must
    # neither slow its start nor stop it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--tenant",
            action="append",
            default=[],
            type=_tenant_spec,
            metavar="K1000:USER:PASSWORD:COUNT",
            help="create a tenant with COUNT extensions (repeatable)",
        )
        parser.add_argument(
            "--rate", type=float, default=1.0, help="traffic actions per second per --tenant"
        )
        parser.add_argument("--token-ttl", type=float, default=300.0, help="access token seconds")
        add_profile_arguments(parser, default="spec")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CTIBOARD_ALLOW_SIMULATOR:
            raise CommandError(settings.SIMULATOR_REFUSED)
        simulator = Simulator(seed=options["seed"])
        for account, username, password, count in options["tenant"]:
            try:
                simulator.add_tenant(
                    account=account,
                    username=username,
                    password=password,
                    extensions=count,
                    traffic_rate=options["rate"],
                    token_ttl=options["token_ttl"],
                    **tenant_options(options),
                )
            except SimError as exc:
                raise CommandError(f"--tenant {account}: {exc}") from None

        def on_listening(host: str, port: int) -> None:
            shown = f"[{host}]" if ":" in host else host
            # The readiness line comes last: whoever waits for it has the base URL already.
            self.stdout.write(f"NFON API base URL: http://{shown}:{port}{API_PREFIX}")
            self.stdout.write(f"listening on http://{shown}:{port}")
            self.stdout.flush()

        serve(
            build_app(simulator),
            host=options["host"],
            port=options["port"],
            background=[simulator.run],
            on_listening=on_listening,
        )
