"""One tenant's writer waiting out a database outage: when to retry, what to log, and what the
open boards are told meanwhile (over the channel layer: the database cannot take a status)."""

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer

from ctiboard.lib.metrics import SENT_AT, stamp
from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import Tenant

logger = logging.getLogger(__name__)

# Retries wait 0 (a connection the server ended is simply replaced), then 0.5, 1, 2 ... 10 s.
FIRST_DELAY, MAX_DELAY = 0.5, 10.0
# While the outage lasts, one summary line this often instead of a line per attempt.
SUMMARY_INTERVAL = 30.0


class DatabaseOutage:
    """Tracks one writer's failed attempts; ``failed`` returns how long to wait."""

    def __init__(self, account: str, tenant_id: int) -> None:
        self.account, self.tenant_id = account, tenant_id
        self.started: float | None = None
        self._held_wall = 0.0
        self.attempts = 0
        self._summary_at = 0.0

    @property
    def ongoing(self) -> bool:
        return self.started is not None

    @property
    def held_since(self) -> float | None:
        """Wall-clock time since when a change waits to be stored, or None."""
        return self._held_wall if self.ongoing else None

    @property
    def noticed(self) -> bool:
        """More than the one connection the server ended: warned and announced."""
        return self.attempts >= 2

    def failed(self, error: BaseException, waiting: int) -> float:
        """An attempt failed with a database error; ``waiting``: events queued meanwhile."""
        now = time.monotonic()
        self.attempts += 1
        extra = {"tenant": self.account, "error": type(error).__name__}
        if self.attempts == 1:
            # Most likely a connection the server ended: replaced at once, nothing to report.
            self.started, self._held_wall = now, time.time()
            logger.info("%s: database connection lost (%s)", self.account, _first_line(error))
            return 0.0
        if self.attempts == 2:
            self._summary_at = now + SUMMARY_INTERVAL
            # One line, no traceback: the error says it all and repeats on every attempt.
            logger.warning(
                "%s: database unavailable (%s); keeping the changes and retrying",
                self.account,
                _first_line(error),
                extra=extra,
            )
        elif now >= self._summary_at:
            self._summary_at = now + SUMMARY_INTERVAL
            logger.warning(
                "%s: database still unavailable after %.0fs (%d attempts, %d events waiting): %s",
                self.account,
                now - (self.started or now),
                self.attempts,
                waiting,
                _first_line(error),
                extra=extra,
            )
        return min(MAX_DELAY, FIRST_DELAY * 2 ** (self.attempts - 2))

    def recovered(self) -> None:
        if self.noticed:
            logger.warning(
                "%s: database back after %.1fs and %d failed attempts; storing resumed",
                self.account,
                time.monotonic() - (self.started or time.monotonic()),
                self.attempts,
                extra={"tenant": self.account},
            )
        self.started, self.attempts = None, 0

    async def announce(self, status: dict[str, Any]) -> None:
        """Tell the tenant's open boards (``status``: ``Tenant.status_payload()`` shape)."""
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "tenant.status", "tenant_id": self.tenant_id, "status": status}
        try:
            await layer.group_send(tenant_group(self.tenant_id), {**message, SENT_AT: stamp()})
        except Exception as exc:  # the channel layer may be away as well; boards resync later
            logger.warning("%s: could not announce the database outage: %r", self.account, exc)

    def unavailable_status(self, connection_status: str) -> dict[str, Any]:
        """The status pill during the outage: the PBX's status as it was, and why nothing
        changes on the board."""
        since = datetime.now(UTC).strftime("%H:%M:%S UTC")
        return {
            "connection_status": connection_status,
            "status_detail": (
                f"Database unavailable since {since}: changes are held by the ingest worker"
                " and shown once it is back (not a PBX problem)"
            ),
            "status_since": None,
            "last_event_at": None,
        }


def stored_status(tenant_id: int) -> dict[str, Any]:
    """The tenant's status as stored, for the boards once the database is back."""
    return Tenant.objects.only(*Tenant.STATUS_FIELDS).get(pk=tenant_id).status_payload()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class DatabaseReach:
    """Whether the worker's lease rounds reach the database, shared by all its tenants.

    A failed round means nothing can be stored now, whichever tenant changes next: every
    tenant's pulse says so at once (a quiet one's included, which has nothing to retry), and
    the round that succeeds again wakes the writers waiting to retry, so that held changes are
    stored within a round of the database's return instead of after their backoff."""

    def __init__(self) -> None:
        self.lost_at: float | None = None  # wall-clock time of the first failed round
        self._changed = asyncio.Event()

    def failed(self) -> None:
        if self.lost_at is None:
            self.lost_at = time.time()
            self._wake()

    def reached(self) -> None:
        if self.lost_at is not None:
            self.lost_at = None
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Until the database is lost or reached again, or ``timeout`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
