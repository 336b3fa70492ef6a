"""One command, one process: board, PBX simulator and ingest worker on 127.0.0.1:8000."""

import secrets
import sys

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ctiboard.cti.client import CTIClient
from ctiboard.cti.events import ExtensionData
from ctiboard.demo import company
from ctiboard.demo.embedded import embedded_simulator, with_simulator
from ctiboard.demo.scene import opening_scene
from ctiboard.ingest import writer
from ctiboard.ingest.supervisor import Supervisor
from ctiboard.lib.env import env_bool
from ctiboard.lib.serve import serve
from ctiboard.live import publish
from ctiboard.ops.application import build_application
from ctiboard.simulator.app import API_PREFIX
from ctiboard.simulator.profiles import add_profile_arguments, tenant_options
from ctiboard.tenancy.models import Membership, Tenant
from ctiboard.webhooks.dispatch import Dispatcher

DEMO_ACCOUNT = "K1000"
# Bob watches the first extensions only (his team); a strict subset of what Alice sees.
BOB_SEES = 12


class Command(BaseCommand):
    help = "Run the demo: board, built-in PBX simulator and worker in one process."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        # The demo shows what real NFON sends, oddities included: the board must handle it.
        add_profile_arguments(parser, default="realistic")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        host, port = options["host"], options["port"]
        # Before anything is written: the demo seeds users whose password is "demo".
        if not settings.CTIBOARD_ALLOW_SIMULATOR:
            raise CommandError(f"{settings.SIMULATOR_REFUSED} (make demo sets it)")
        settings.CTIBOARD_EMBEDDED_SIMULATOR = True
        # The demo serves plain HTTP on this machine: secure-only cookies would never come back.
        settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
        settings.SECURE_HSTS_SECONDS = 0
        settings.SECURE_SSL_REDIRECT = False
        # Its admin (password "demo") must get in without an authenticator app; set
        # CTIBOARD_STAFF_2FA=1 to try two-factor in the demo.
        settings.CTIBOARD_STAFF_2FA = env_bool("CTIBOARD_STAFF_2FA", False)
        # Like the demo's delivery worker: the admin's webhook test may reach this machine.
        settings.CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
        if host not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS.append(host)

        call_command("migrate", interactive=False, verbosity=0)
        # Like a real tenant's: the simulator's API lives under /v1 of its mount, as NFON's does.
        tenant = seed(
            api_base_url=f"http://127.0.0.1:{port}{settings.CTIBOARD_SIMULATOR_PREFIX}{API_PREFIX}"
        )

        application = build_application(with_simulator(get_asgi_application()))
        simulator = embedded_simulator()
        simulated = simulator.add_tenant(
            account=tenant.account,
            username=tenant.api_username,
            password=tenant.api_password,
            extensions=settings.CTIBOARD_DEMO_EXTENSIONS,
            traffic_rate=settings.CTIBOARD_DEMO_TRAFFIC_RATE,
            **tenant_options(options),
        )

        async def worker() -> None:
            await link_demo_users(tenant)
            await Supervisor(poll_interval=2.0).run()

        async def scene() -> None:
            # A traffic rate of 0 asks for a still PBX (the browser tests): no scene either.
            if settings.CTIBOARD_DEMO_TRAFFIC_RATE > 0:
                await opening_scene(simulated.state)

        def announce(bound_host: str, bound_port: int) -> None:
            shown = "127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host  # noqa: S104
            custom = settings.CTIBOARD_DEMO_PASSWORD != "demo"  # noqa: S105
            password = "$CTIBOARD_DEMO_PASSWORD" if custom else "demo"
            self.stdout.write(
                f"ctiboard demo on http://{shown}:{bound_port}/  "
                "(admin: /admin/, health: /healthz)\n"
                f"log in as alice, bob or admin; password: {password}\n"
                "stop with Ctrl+C"
            )
            sys.stdout.flush()

        serve(
            application,
            host=host,
            port=port,
            # Webhooks go out from a task of their own: the ingest only writes the outbox.
            background=[
                simulator.run,
                worker,
                scene,
                Dispatcher(allow_private_networks=True).run,
            ],
            on_listening=announce,
        )


def seed(api_base_url: str) -> Tenant:
    """Create or refresh the demo tenant and users; safe to run on every start."""
    password = settings.CTIBOARD_DEMO_PASSWORD
    with transaction.atomic():
        tenant = Tenant.objects.filter(account=DEMO_ACCOUNT).first()
        if tenant is None:
            tenant = Tenant(
                name="Demo GmbH",
                account=DEMO_ACCOUNT,
                api_username=f"{DEMO_ACCOUNT}/ctiboard",
                api_password=secrets.token_urlsafe(24),
            )
        if not tenant.api_password:  # undecryptable after a key change: start over
            tenant.api_password = secrets.token_urlsafe(24)
        tenant.api_base_url = api_base_url
        tenant.enabled = True
        tenant.save()
        for username, staff in (("admin", True), ("alice", False), ("bob", False)):
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = staff
            user.first_name = username.capitalize()
            # A new hash would end every open session (the session keeps a hash of the
            # password hash): a restarted demo must find its browsers still logged in.
            if not user.check_password(password):
                user.set_password(password)
            user.save()
        Membership.objects.get_or_create(
            user=User.objects.get(username="alice"),
            tenant=tenant,
            defaults={"sees_all_extensions": True},
        )
        Membership.objects.get_or_create(user=User.objects.get(username="bob"), tenant=tenant)
        company.company_settings(tenant)
    return tenant


async def link_demo_users(tenant: Tenant) -> None:
    """Give Alice and Bob their own extensions and Bob his team, once the PBX is listed."""
    async with CTIClient(
        tenant.api_base_url, tenant.api_username, tenant.api_password, tenant.account
    ) as client:
        listed = await client.extensions()
    await sync_to_async(_link)(tenant, listed)


def _link(tenant: Tenant, listed: list[ExtensionData]) -> None:
    state = writer.load_state(tenant.pk)
    writer.sync_extensions(state, listed)
    numbers = sorted(state.extensions, key=lambda n: (len(n), n))
    if len(numbers) < 2:
        return
    with transaction.atomic():
        alice = Membership.objects.get(user__username="alice", tenant=tenant)
        if alice.own_extension_id is None:
            alice.own_extension = state.extensions[numbers[0]]
            alice.save(update_fields=["own_extension"])
        bob = Membership.objects.get(user__username="bob", tenant=tenant)
        if bob.own_extension_id is None:
            bob.own_extension = state.extensions[numbers[1]]
            bob.save(update_fields=["own_extension"])
        if not bob.extensions.exists():
            bob.extensions.set(
                [state.extensions[n] for n in numbers[: min(BOB_SEES, len(numbers) - 1)]]
            )
        company.departments(tenant, [state.extensions[n] for n in numbers])
        publish.visibility_changed(alice.user_id)
        publish.visibility_changed(bob.user_id)
