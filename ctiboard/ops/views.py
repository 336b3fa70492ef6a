"""``/readyz`` and ``/metrics``. Liveness (``/healthz``) is in ctiboard.board.views.

``/readyz`` answers 200 when this web process can serve the board with live data: the database
answers, a message makes the round trip through the channel layer, and every enabled tenant is
held by an ingest worker whose heartbeat is live (stale 3 s after a worker dies) or was released
for a planned hand-over moments ago. Otherwise 503, and the tenants nobody streams are marked
``unserved`` for the boards. The operator (lib/operator.py: the metrics token, or loopback
without one) gets a JSON body saying which check failed, why, and which K-Accounts; anyone
else the status alone. ``/metrics`` answers the operator only (401 for others). Keep both away
from the internet at the proxy too (deploy/Caddyfile does).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ctiboard.ingest.coverage import coverage, mark_unserved
from ctiboard.ingest.health import layer_round_trip
from ctiboard.lib.operator import CHALLENGE, is_operator
from ctiboard.tenancy.models import Tenant

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0

Check = dict[str, Any]


def _database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


async def _channel_layer() -> Check:
    return await layer_round_trip("readyz.")


def _workers() -> Check:
    tenants = dict(Tenant.objects.filter(enabled=True).values_list("pk", "account"))
    covered = coverage(tenants.keys())
    result: Check = {
        "ok": not covered.unserved,
        "tenants": len(tenants),
        "workers": sorted(set(covered.holders.values())),
    }
    if covered.handing_over:
        # Released by a planned stop or rebalance a moment ago: a peer takes them next round.
        result["handing_over"] = sorted(tenants[pk] for pk in covered.handing_over)
    if covered.unserved:
        result["error"] = "no live ingest worker holds these tenants"
        result["unserved"] = sorted(tenants[pk] for pk in covered.unserved)
        # Boards must not keep showing "connected", even when no worker is left to say so.
        mark_unserved(covered.unserved)
    return result


async def _run(check: Callable[[], Awaitable[Check]]) -> Check:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g}s"}
    except Exception as exc:
        logger.warning("readiness check failed: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _operator(request: HttpRequest) -> bool:
    return is_operator(
        request.headers.get("Authorization", ""),
        request.META.get("REMOTE_ADDR", ""),
        settings.CTIBOARD_METRICS_TOKEN,
    )


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> HttpResponse:
    checks = {
        "database": await _run(sync_to_async(_database)),
        "channel_layer": await _run(_channel_layer),
        "workers": await _run(sync_to_async(_workers)),
    }
    ready = all(check["ok"] for check in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable"}
    # K-Accounts, worker ids and error texts are the operator's business only: a staff user
    # may be one tenant's administrator and must not learn the others' K-Accounts.
    if _operator(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """This process's metrics (each web process and worker has its own; scrape them all)."""
    if not _operator(request):
        response = HttpResponse("401 Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = CHALLENGE
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
