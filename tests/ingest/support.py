"""Helpers for tests that run the ingest worker against the simulator."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import ActiveCall
from ctiboard.cti.events import CallEvent
from ctiboard.ingest.stream import TenantConfig, TenantIngest
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from tests.conftest import Company, Pbx


def stored(company: Company) -> dict[str, tuple[str, str]]:
    return {
        e.number: (e.line, e.presence)
        for e in Extension.objects.filter(tenant=company.tenant, active=True)
    }


def status(company: Company) -> str:
    return Tenant.objects.get(pk=company.tenant.pk).connection_status


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``check`` (run in a thread: it may query the database) returns truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await sync_to_async(check)():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.03)


async def converged(pbx: Pbx, company: Company, timeout: float = 10.0) -> None:
    def same() -> bool:
        """the stored states equal the simulator's truth"""
        return stored(company) == pbx.truth()

    await eventually(same, timeout)


@contextlib.asynccontextmanager
async def running(company: Company, **options: float) -> AsyncIterator[TenantIngest]:
    """A TenantIngest for the company, connected (both streams accepted) when this yields;
    on exit it must still be running (no crash), then it is stopped."""
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    ingest = TenantIngest(TenantConfig.of(tenant), **options)
    task = asyncio.create_task(ingest.run())

    def connected() -> bool:
        """the tenant is connected"""
        if task.done():
            return True  # reported below
        return status(company) == ConnectionStatus.CONNECTED

    try:
        await eventually(connected)
        assert not task.done(), task
        yield ingest
        assert not task.done(), "the ingest task ended during the test"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def call_log(pbx: Pbx) -> AsyncIterator[list[CallEvent]]:
    """The simulator's call stream as a second client sees it: the reference for timings."""
    received: list[CallEvent] = []
    opened = asyncio.Event()

    async def follow() -> None:
        async with pbx.client() as client:
            async for event in client.stream_calls(on_open=lambda _: opened.set()):
                received.append(event)

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(opened.wait(), 5)
        yield received
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def active_legs(company: Company) -> set[tuple[str, str]]:
    return {
        (call.uuid, call.extension.number)
        for call in ActiveCall.objects.filter(tenant=company.tenant).select_related("extension")
    }


def truth_legs(pbx: Pbx) -> set[tuple[str, str]]:
    return {
        (leg["uuid"], leg["extension"])
        for call in pbx.control.calls(pbx.account)
        for leg in call["legs"]
    }


async def control(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A (blocking) simulator control call, off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Log records with a traceback; a test asserts it stays empty (it is checked again at
    the end). Expected warnings carry none."""
    caplog.set_level(logging.INFO)
    found: list[logging.LogRecord] = []
    yield found
    found.extend(r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage())
    assert not found, [r.getMessage() for r in found]


async def quiesced(pbx: Pbx, company: Company, timeout: float = 15.0) -> None:
    """Wait for the simulator's calls to end, then for the worker to agree with it."""

    def no_calls() -> bool:
        """the simulator has no call in progress"""
        return not pbx.control.calls(pbx.account)

    await eventually(no_calls, timeout)
    await converged(pbx, company)
    await eventually(lambda: active_legs(company) == truth_legs(pbx) == set())

    def tiles_clear() -> bool:
        """no tile shows a call"""
        return not Extension.objects.filter(tenant=company.tenant).exclude(call_state="").exists()

    await eventually(tiles_clear)
