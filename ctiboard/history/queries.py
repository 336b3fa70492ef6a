"""The call records a user may see, filtered, and what analytics makes of them.

Visibility is ``Extension.objects.visible_to(user, details=True)``, nothing else: a record is
shown when its extension's call details are the user's to see.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.contrib.auth.models import User
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, ExtractHour, ExtractIsoWeekDay
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext as _

from ctiboard.calls.models import CallRecord, Outcome
from ctiboard.contacts.models import Contact
from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.lib import phonenumbers
from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership, Tenant

from .forms import HistoryFilter

# When a call happened, as the history shows it: its start (its end where the stream did not
# show the start). Sorting and periods go by it too; calls.CallRecord has an index on it.
STARTED = Coalesce("started_at", "ended_at")

# Missed calls of the own extension are offered for a call back this long.
MISSED_CALLS_DAYS = 7
MISSED_CALLS_SHOWN = 10


@dataclass(frozen=True)
class Scope:
    """One user on one tenant's history: the extensions whose call details he may see."""

    user: User
    membership: Membership

    @property
    def tenant(self) -> Tenant:
        return self.membership.tenant

    def extensions(self) -> QuerySet[Extension]:
        return (
            Extension.objects.visible_to(self.user, details=True)
            .filter(tenant=self.tenant)
            .order_by("number")
        )

    def records(self) -> QuerySet[CallRecord]:
        return CallRecord.objects.filter(
            tenant=self.tenant, extension__in=self.extensions().values("pk")
        ).select_related("extension")

    def groups(self) -> QuerySet[ExtensionGroup]:
        """The tenant's groups with at least one extension the user sees the details of."""
        return (
            ExtensionGroup.objects.filter(
                tenant=self.tenant, extensions__in=self.extensions().values("pk")
            )
            .distinct()
            .order_by("name")
        )


def started_in(start: datetime | None, end: datetime | None) -> Q:
    """Records that started in [start, end) (either end open when None)."""
    condition = Q()
    if start is not None:
        condition &= Q(GreaterThanOrEqual(STARTED, start))
    if end is not None:
        condition &= Q(LessThan(STARTED, end))
    return condition


def filtered(scope: Scope, form: HistoryFilter) -> QuerySet[CallRecord]:
    records = scope.records()
    if extension := form.value("extension"):
        records = records.filter(extension=extension)
    if outcome := form.value("outcome"):
        records = records.filter(outcome=outcome)
    if direction := form.value("direction"):
        records = records.filter(direction=direction)
    records = records.filter(started_in(*form.period()))
    if q := (form.value("q") or "").strip():
        records = records.filter(search(q, scope.tenant))
    return records.order_by(STARTED.desc(), "-pk")


_NUMBER_LIKE = re.compile(r"\+?[0-9 ()/.\-]+")


def search(text: str, tenant: Tenant) -> Q:
    """A partner number (as typed: +49 30…, 030…, a fragment) or a phonebook or extension name."""
    condition = Q(extension__name__icontains=text) | Q(
        partner__in=Contact.objects.filter(tenant=tenant, name__icontains=text).values("number_key")
    )
    digits = re.sub(r"[^0-9]", "", text)
    if digits and _NUMBER_LIKE.fullmatch(text):
        condition |= Q(partner__contains=digits)
        key = phonenumbers.normalise(text, tenant.country_code)
        if key and key != digits:
            condition |= Q(partner__contains=key)
    return condition


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """How the board calls a partner back: its ``call`` view (an extension) or ``dial``."""

    kind: Literal["extension", "number"]
    value: str


@dataclass(frozen=True)
class Row:
    record: CallRecord
    contact: Contact | None
    partner_display: str
    callback: Callback | None = None

    @property
    def time(self) -> datetime:
        return self.record.started_at or self.record.ended_at


def display_partner(partner: str, tenant: Tenant) -> str:
    """Numbers of the tenant's country nationally, others internationally, extensions as is."""
    return phonenumbers.display(
        partner, external=phonenumbers.looks_external(partner), country_code=tenant.country_code
    )


def rows(scope: Scope, records: Iterable[CallRecord]) -> list[Row]:
    """Records with their partners' names (one query each for all of them): a colleague's,
    as his tile names him, if the user sees that tile; else the phonebook's."""
    records = list(records)
    tenant = scope.tenant
    partners = {record.partner for record in records if record.partner}
    contacts = lookup_contacts(tenant, partners)
    colleagues = dict(
        Extension.objects.visible_to(scope.user)
        .filter(tenant=tenant, number__in=partners)
        .exclude(name="")
        .values_list("number", "name")
    )
    for number, name in colleagues.items():
        contact = contacts.get(number)
        contacts[number] = Contact(name=name, vip=bool(contact and contact.vip))
    return [
        Row(record, contacts.get(record.partner), display_partner(record.partner, tenant))
        for record in records
    ]


def missed_calls(scope: Scope) -> list[Row]:
    """Missed calls of the user's own extension not answered or returned since, with a call
    back where the user may make it."""
    membership = scope.membership
    own = membership.own_extension_id
    if own is None or not scope.extensions().filter(pk=own).exists():
        return []
    later_talk = CallRecord.objects.filter(
        tenant=scope.tenant,
        extension_id=own,
        partner=OuterRef("partner"),
        outcome=Outcome.ANSWERED,
        ended_at__gt=OuterRef("ended_at"),
    )
    since = timezone.now() - timedelta(days=MISSED_CALLS_DAYS)
    missed = (
        scope.records()
        .filter(started_in(since, None), extension_id=own, outcome=Outcome.MISSED)
        .exclude(partner="")
        .exclude(Exists(later_talk))
        .order_by(STARTED.desc(), "-pk")[:MISSED_CALLS_SHOWN]
    )
    found = rows(scope, missed)
    callable_extensions = {}
    if membership.may_call:
        callable_extensions = dict(
            Extension.objects.visible_to(scope.user)
            .filter(tenant=scope.tenant, number__in={row.record.partner for row in found})
            .exclude(pk=own)
            .values_list("number", "pk")
        )
    return [
        Row(
            row.record,
            row.contact,
            row.partner_display,
            callback_for(row.record.partner, membership, callable_extensions),
        )
        for row in found
    ]


def callback_for(
    partner: str, membership: Membership, callable_extensions: dict[str, int]
) -> Callback | None:
    if partner in callable_extensions:
        return Callback("extension", str(callable_extensions[partner]))
    if membership.may_call_external and phonenumbers.looks_external(partner):
        return Callback("number", f"+{partner}")
    return None


# --- analytics ----------------------------------------------------------------------------

INBOUND = Q(direction="inbound")
STATS: dict[str, Any] = {
    # Calls, not legs: a hunt group rings several extensions under one uuid. Legs answered
    # by somebody else do not count against an extension's answer rate.
    "inbound": Count(
        "uuid", distinct=True, filter=INBOUND & ~Q(outcome=Outcome.ANSWERED_ELSEWHERE)
    ),
    "answered": Count("uuid", distinct=True, filter=INBOUND & Q(outcome=Outcome.ANSWERED)),
    "outbound": Count("uuid", distinct=True, filter=Q(direction="outbound")),
    "avg_ring": Avg("ring_seconds", filter=INBOUND),
    "avg_talk": Avg("talk_seconds"),
}


@dataclass(frozen=True)
class Stats:
    label: str
    inbound: int = 0
    answered: int = 0
    outbound: int = 0
    avg_ring: float | None = None
    avg_talk: float | None = None

    @property
    def answer_rate(self) -> int | None:
        """Answered share of inbound calls, in percent (None without inbound calls)."""
        return round(100 * self.answered / self.inbound) if self.inbound else None

    @property
    def total(self) -> int:
        return self.inbound + self.outbound


def _stats(label: str, values: dict[str, Any] | None) -> Stats:
    if not values:
        return Stats(label)
    return Stats(label, **{name: values[name] for name in STATS})


def period_records(
    scope: Scope, start: datetime, end: datetime, group: ExtensionGroup | None
) -> QuerySet[CallRecord]:
    records = scope.records().filter(started_in(start, end))
    if group is not None:
        records = records.filter(extension__in=group.extensions.values("pk"))
    return records.order_by()


def extension_stats(records: QuerySet[CallRecord], extensions: Iterable[Extension]) -> list[Stats]:
    by_extension = {row["extension"]: row for row in records.values("extension").annotate(**STATS)}
    return [_stats(str(extension), by_extension.get(extension.pk)) for extension in extensions]


def group_stats(records: QuerySet[CallRecord], groups: Iterable[ExtensionGroup]) -> list[Stats]:
    by_group = {
        row["extension__groups"]: row
        for row in records.values("extension__groups").annotate(**STATS)
    }
    return [_stats(group.name, by_group.get(group.pk)) for group in groups]


def total_stats(records: QuerySet[CallRecord]) -> Stats:
    return _stats(_("All"), records.aggregate(**STATS))


# --- the heatmap: calls per weekday and hour, drawn by the template as SVG -------------------

CELL, GAP, LEFT, TOP = 24, 3, 36, 16


@dataclass(frozen=True)
class Cell:
    x: int
    hour: int
    count: int
    opacity: str  # a number as text: SVG attributes must not be localised


@dataclass(frozen=True)
class HeatRow:
    y: int
    text_y: int
    label: str
    cells: list[Cell]


@dataclass(frozen=True)
class HeatMap:
    rows: list[HeatRow]
    hours: list[tuple[int, int]]  # (x of the label, hour)
    width: int
    height: int
    peak: int
    busiest: list[tuple[str, int, int]]  # (weekday, hour, calls), the busiest first
    cell: int = CELL

    @property
    def empty(self) -> bool:
        return self.peak == 0


def heatmap(records: QuerySet[CallRecord]) -> HeatMap:
    """Calls per weekday and hour (local time of their start), busiest hours first."""
    counts = {
        (row["weekday"], row["hour"]): row["calls"]
        for row in records.annotate(weekday=ExtractIsoWeekDay(STARTED), hour=ExtractHour(STARTED))
        .values("weekday", "hour")
        .annotate(calls=Count("uuid", distinct=True))
        .order_by()
    }
    peak = max(counts.values(), default=0)
    heat_rows = []
    for weekday in range(1, 8):
        y = TOP + (weekday - 1) * (CELL + GAP)
        cells = []
        for hour in range(24):
            count = counts.get((weekday, hour), 0)
            level = 0.15 + 0.85 * count / peak if count else 1.0
            cells.append(Cell(LEFT + hour * (CELL + GAP), hour, count, f"{level:.2f}"))
        heat_rows.append(HeatRow(y, y + CELL - 8, str(WEEKDAYS_ABBR[weekday - 1]), cells))
    busiest = sorted(((n, -w, -h) for (w, h), n in counts.items() if n), reverse=True)[:3]
    return HeatMap(
        rows=heat_rows,
        hours=[(LEFT + hour * (CELL + GAP) + CELL // 2, hour) for hour in range(0, 24, 3)],
        width=LEFT + 24 * (CELL + GAP),
        height=TOP + 7 * (CELL + GAP),
        peak=peak,
        busiest=[(str(WEEKDAYS_ABBR[-w - 1]), -h, n) for n, w, h in busiest],
    )
