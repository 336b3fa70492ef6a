import asyncio
import logging
import signal

from django.core.management.base import BaseCommand

from ctiboard.webhooks.dispatch import Dispatcher

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Send the Action-URL webhook requests the ingest worker queued (any number may run)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--concurrency", type=int, default=8, help="Requests in flight at most."
        )
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="Seconds a request may take in all."
        )
        parser.add_argument(
            "--max-attempts", type=int, default=8, help="Tries before a delivery has failed."
        )
        parser.add_argument(
            "--retry-base",
            type=float,
            default=10.0,
            help="Seconds before the first retry; doubled for each further one (max 1 h).",
        )
        parser.add_argument(
            "--poll-interval", type=float, default=1.0, help="Seconds between looks for work."
        )
        parser.add_argument(
            "--allow-private-networks",
            action="store_true",
            help="Also call loopback, private and link-local addresses (receivers on the LAN). "
            "Lets tenant administrators reach internal services: only where they are trusted.",
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        dispatcher = Dispatcher(
            concurrency=options["concurrency"],
            timeout=options["timeout"],
            max_attempts=options["max_attempts"],
            retry_base=options["retry_base"],
            poll_interval=options["poll_interval"],
            allow_private_networks=options["allow_private_networks"],
        )
        asyncio.run(self._run(dispatcher))
        self.stdout.write("webhook delivery stopped")

    async def _run(self, dispatcher: Dispatcher) -> None:
        task = asyncio.create_task(dispatcher.run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task in done:
            task.result()  # it only ends by crashing: let the process say so
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
