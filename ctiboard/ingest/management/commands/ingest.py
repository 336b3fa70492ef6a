import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ctiboard.ingest import health
from ctiboard.ingest.identity import IdentityClash
from ctiboard.ingest.leases import IdentityLost
from ctiboard.ingest.supervisor import Supervisor

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Stream line states of every enabled tenant from the CTI API into the board."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=5.0,
            help="Seconds between checks for tenants added, changed or disabled in the admin.",
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        if settings.CTIBOARD_METRICS_PORT:
            # This process's own registry (events ingested, stream reconnects, leases held)
            # and /healthz: heartbeat and channel layer.
            health.serve(
                settings.CTIBOARD_METRICS_PORT,
                settings.CTIBOARD_METRICS_ADDR,
                settings.CTIBOARD_METRICS_TOKEN,
            )
            logger.info(
                "metrics and health on http://%s:%d/metrics, /healthz",
                settings.CTIBOARD_METRICS_ADDR,
                settings.CTIBOARD_METRICS_PORT,
            )
        try:
            asyncio.run(self._run(options["poll_interval"]))
        except (IdentityClash, IdentityLost) as exc:
            raise CommandError(str(exc)) from exc
        # Through logging like every other line (LOG_FORMAT=json), not the command's stdout.
        logger.info("ingest worker stopped")

    async def _run(self, poll_interval: float) -> None:
        supervisor = asyncio.create_task(Supervisor(poll_interval=poll_interval).run())
        probe = asyncio.create_task(health.probe_layer_forever())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        logger.info("ingest worker started")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({supervisor, stopping}, return_when=asyncio.FIRST_COMPLETED)
        probe.cancel()
        if supervisor.done():
            stopping.cancel()
            supervisor.result()  # refused to start (identity clash) or lost its identity
            return
        logger.info("ingest worker stopping")
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
