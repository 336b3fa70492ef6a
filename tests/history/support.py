import csv
import io
from datetime import datetime, timedelta

from django.utils import timezone

from ctiboard.calls.models import CallRecord, EndedBy, Outcome
from ctiboard.tenancy.models import Extension
from tests.conftest import Company

REMOTE = "4930123456"


def extension(company: Company, number: str) -> Extension:
    return next(e for e in company.extensions if e.number == number)


def make_record(
    company: Company,
    number: str,
    uuid: str,
    *,
    outcome: str = Outcome.ANSWERED,
    direction: str = "inbound",
    partner: str = REMOTE,
    ended_at: datetime | None = None,
    ring: float | None = 4.0,
    talk: float | None = None,
) -> CallRecord:
    """A finished leg as the tracking writes it: ring, then talk (if answered), then the end."""
    ended_at = ended_at or timezone.now() - timedelta(hours=1)
    if outcome == Outcome.ANSWERED and talk is None:
        talk = 60.0
    talked = timedelta(seconds=talk or 0)
    answered_at = ended_at - talked if talk is not None else None
    started_at = (answered_at or ended_at) - timedelta(seconds=ring) if ring is not None else None
    return CallRecord.objects.create(
        tenant=company.tenant,
        extension=extension(company, number),
        uuid=uuid,
        direction=direction,
        partner=partner,
        outcome=outcome,
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        ended_by=EndedBy.HANGUP,
        ring_seconds=ring,
        talk_seconds=talk,
    )


async def csv_of(response: object) -> list[list[str]]:
    """The rows of a streamed CSV response (as the ASGI server would send them)."""
    content = b"".join([chunk async for chunk in response.streaming_content])  # type: ignore[attr-defined]
    return list(csv.reader(io.StringIO(content.decode())))
