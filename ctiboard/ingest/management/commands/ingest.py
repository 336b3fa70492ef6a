import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

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
            from prometheus_client import start_http_server

            # This process's own registry: events ingested, stream reconnects, leases held.
            start_http_server(settings.CTIBOARD_METRICS_PORT, addr=settings.CTIBOARD_METRICS_ADDR)
            logger.info(
                "metrics on http://%s:%d/metrics",
                settings.CTIBOARD_METRICS_ADDR,
                settings.CTIBOARD_METRICS_PORT,
            )
        asyncio.run(self._run(options["poll_interval"]))
        # Through logging like every other line (LOG_FORMAT=json), not the command's stdout.
        logger.info("ingest worker stopped")

    async def _run(self, poll_interval: float) -> None:
        supervisor = asyncio.create_task(Supervisor(poll_interval=poll_interval).run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        logger.info("ingest worker started")
        await stop.wait()
        logger.info("ingest worker stopping")
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
