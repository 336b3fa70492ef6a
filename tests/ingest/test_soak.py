"""Soak: generated traffic with every oddity, random faults and tokens living three seconds.

At the end the faults stop, the traffic pauses and the calls run out: the stored state must equal
the simulator's truth, no call may dangle, and nothing may have logged a traceback.

In the suite it runs CTIBOARD_SOAK_SECONDS (default 15). For a long run, as a script:

    CTIBOARD_SOAK_SECONDS=900 .venv/bin/python -m tests.ingest.test_soak
"""

import asyncio
import os
import random
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Max

from ctiboard.calls.models import CallRecord, EndedBy
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import control, quiesced, running, status

SOAK_SECONDS = float(os.environ.get("CTIBOARD_SOAK_SECONDS", "15"))
SEED = int(os.environ.get("CTIBOARD_SOAK_SEED", str(random.randrange(1_000_000))))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.soak,
    pytest.mark.timeout(SOAK_SECONDS + 120),
]

ENDPOINTS = [
    "*",
    "GET /extensions/phone/states",
    "GET /extensions/phone/calls",
    "/extensions/phone/data",
    "PUT /login",
    "POST /login",
]


def random_fault(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(
        ["drop", "truncate", "unauthorized", "stall", "malformed", "http_error", "delay"]
    )
    fault: dict[str, Any] = {"kind": kind}
    if kind in ("drop", "truncate", "stall", "malformed"):
        fault["stream"] = rng.choice(["all", "states", "calls"])
    if kind == "malformed":
        fault["variant"] = rng.choice(["broken_json", "unknown_fields", "missing_fields"])
    elif kind == "http_error":
        fault.update(
            status=rng.choice([500, 502, 503]),
            endpoint=rng.choice(ENDPOINTS),
            count=rng.randint(1, 3),
        )
    elif kind == "delay":
        fault.update(seconds=rng.uniform(0.1, 1.2), endpoint=rng.choice(ENDPOINTS), count=2)
    return fault


async def test_soak(pbx: Pbx, pbx_company: Company, tracebacks: list[object]) -> None:
    rng = random.Random(SEED)
    print(f"soak: {SOAK_SECONDS:.0f}s, seed {SEED} (CTIBOARD_SOAK_SEED repeats it)")
    await control(pbx.control.update_tenant, pbx.account, token_ttl=3.0, keepalive=0.1)
    await control(
        pbx.control.set_oddities,
        pbx.account,
        line_busy=True,
        bridge=True,
        late_dial=True,
        hunt_group=True,
    )
    injected: list[str] = []
    async with running(pbx_company, read_timeout=0.8, call_grace=2.0) as ingest:
        await control(pbx.control.set_traffic, pbx.account, rate=10.0)
        loop = asyncio.get_running_loop()
        end = loop.time() + SOAK_SECONDS
        while loop.time() < end:
            fault = random_fault(rng)
            injected.append(fault["kind"])
            await control(pbx.control.inject_fault, pbx.account, **fault)
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            if fault["kind"] == "stall" or rng.random() < 0.3:
                await control(pbx.control.clear_faults, pbx.account)
        await control(pbx.control.clear_faults, pbx.account)
        await control(pbx.control.pause_traffic, pbx.account)
        await quiesced(pbx, pbx_company, timeout=30)
        assert await sync_to_async(status)(pbx_company) == ConnectionStatus.CONNECTED
        assert ingest.state is not None

    def check() -> None:
        tenant = Tenant.objects.get(pk=pbx_company.tenant.pk)
        top = Extension.objects.filter(tenant=tenant).aggregate(top=Max("seq"))["top"]
        assert tenant.event_seq == top
        records = CallRecord.objects.filter(tenant=tenant)
        assert records.exists()
        print(
            f"soak: {len(injected)} faults, {records.count()} call legs recorded, "
            f"{records.filter(ended_by=EndedBy.LINE_IDLE).count()} ended by an idle line"
        )

    await sync_to_async(check)()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-m", "soak", "-s", "-q", "-p", "no:cacheprovider"]))
