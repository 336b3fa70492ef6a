"""Call history, its CSV export and call analytics of one tenant, as one user may see them."""

import csv
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from ctiboard.calls.models import CallRecord
from ctiboard.tenancy.models import membership_for

from . import queries
from .forms import AnalyticsFilter, HistoryFilter, start_of

PAGE_SIZE = 50
CSV_CHUNK = 1000
ANALYTICS_DAYS = 7


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _scope(request: HttpRequest, account: str) -> queries.Scope:
    # login_required let only authenticated users through.
    user = cast(User, request.user)
    membership = membership_for(user, account)
    if membership is None:
        raise Http404
    return queries.Scope(user, membership)


def _fragment(request: HtmxHttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _query_without(data: QueryDict, *names: str) -> str:
    query = data.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@login_required
@require_GET
def history(request: HtmxHttpRequest, account: str) -> HttpResponse:
    scope = _scope(request, account)
    form = HistoryFilter(request.GET, extensions=scope.extensions())
    page = Paginator(queries.filtered(scope, form), PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "account": account,
        "tenant": scope.tenant,
        "form": form,
        "page": page,
        "rows": queries.rows(scope, page.object_list),
        "query": _query_without(request.GET, "page"),
    }
    if _fragment(request):
        return render(request, "history/history.html#results", context)
    context["missed"] = queries.missed_calls(scope)
    context["membership"] = scope.membership
    return render(request, "history/history.html", context)


# --- CSV --------------------------------------------------------------------------------

CSV_COLUMNS = [
    "time",
    "direction",
    "extension",
    "extension_name",
    "partner",
    "contact",
    "outcome",
    "ring_seconds",
    "talk_seconds",
    "ended_at",
    "uuid",
]


class _Line:
    """A file for csv.writer that hands back what was written."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Spreadsheet programs run cells starting with = + - @ as formulas: not these."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(row: queries.Row) -> list[Any]:
    record = row.record
    return [
        _cell(value)
        for value in (
            timezone.localtime(row.time).isoformat(),
            record.direction,
            record.extension.number,
            record.extension.name,
            # Machine-readable, never formatted as the page shows it: E.164 digits (without
            # the +, which spreadsheets would take for a formula) or the extension number.
            record.partner,
            row.contact.name if row.contact else "",
            record.outcome,
            "" if record.ring_seconds is None else f"{record.ring_seconds:.3f}",
            "" if record.talk_seconds is None else f"{record.talk_seconds:.3f}",
            timezone.localtime(record.ended_at).isoformat(),
            record.uuid,
        )
    ]


async def _csv_lines(scope: queries.Scope, records: Any) -> AsyncIterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(CSV_COLUMNS)
    chunk: list[CallRecord] = []
    async for record in records.aiterator(chunk_size=CSV_CHUNK):
        chunk.append(record)
        if len(chunk) >= CSV_CHUNK:
            for row in await sync_to_async(queries.rows)(scope, chunk):
                yield writer.writerow(_csv_row(row))
            chunk = []
    for row in await sync_to_async(queries.rows)(scope, chunk):
        yield writer.writerow(_csv_row(row))


def _filter_errors(form: HistoryFilter) -> str:
    lines = [
        f"{form.fields[name].label if name in form.fields else name}: {error}"
        for name, errors in form.errors.items()
        for error in errors
    ]
    return "\n".join(lines) + "\n"


@login_required
@require_GET
def history_csv(request: HttpRequest, account: str) -> HttpResponse | StreamingHttpResponse:
    """The filtered history as CSV, streamed: any number of records in constant memory."""
    scope = _scope(request, account)
    form = HistoryFilter(request.GET, extensions=scope.extensions())
    if not form.is_valid():
        # The page leaves a bad filter out and says so beside the field; a file cannot say
        # so, and must not hold more calls than were asked for.
        return HttpResponse(_filter_errors(form), status=400, content_type="text/plain")
    records = queries.filtered(scope, form)
    filename = f"calls-{scope.tenant.account}-{timezone.localdate():%Y%m%d}.csv"
    response = StreamingHttpResponse(
        _csv_lines(scope, records), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- analytics --------------------------------------------------------------------------


@login_required
@require_GET
def analytics(request: HtmxHttpRequest, account: str) -> HttpResponse:
    scope = _scope(request, account)
    data = request.GET.copy()
    if not data.get("date_from") and not data.get("date_to"):
        today = timezone.localdate()
        data["date_from"] = (today - timedelta(days=ANALYTICS_DAYS - 1)).isoformat()
        data["date_to"] = today.isoformat()
    groups = scope.groups()
    form = AnalyticsFilter(data, groups=groups)
    start, end = form.period()
    today = timezone.localdate()
    start = start or start_of(today - timedelta(days=ANALYTICS_DAYS - 1))
    end = end or start_of(today + timedelta(days=1))
    group = form.value("group")
    records = queries.period_records(scope, start, end, group)
    extensions = scope.extensions()
    if group is not None:
        extensions = extensions.filter(pk__in=group.extensions.values("pk"))
    context = {
        "account": account,
        "tenant": scope.tenant,
        "form": form,
        "total": queries.total_stats(records),
        "by_extension": queries.extension_stats(records, extensions),
        "by_group": [] if group is not None else queries.group_stats(records, groups),
        "heat": queries.heatmap(records),
        "period": (start, end - timedelta(days=1)),
        "heading": group.name if group is not None else _("All my extensions"),
    }
    if _fragment(request):
        return render(request, "history/analytics.html#results", context)
    return render(request, "history/analytics.html", context)
