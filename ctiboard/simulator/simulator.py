"""The simulator: any number of tenants on one clock with one token signing key. Each tenant
is its PBX state, its click-to-dial calls, its injected faults and its generated traffic."""

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ctiboard.simulator.clock import Scheduler
from ctiboard.simulator.faults import TenantFaults
from ctiboard.simulator.model import (
    ACCOUNT,
    EXTENSION_NUMBER,
    Conflict,
    NotFound,
    Originate,
    SimError,
    check_setting,
)
from ctiboard.simulator.names import generate_directory
from ctiboard.simulator.originate import ClickToDial
from ctiboard.simulator.streams import CLOSE, STREAM_KINDS
from ctiboard.simulator.tenant import TenantState
from ctiboard.simulator.tokens import TokenIssuer
from ctiboard.simulator.traffic import TrafficGenerator


class TenantExists(Conflict):
    pass


class SimTenant:
    """One K-Account: ``state`` (its PBX), ``dial`` (click-to-dial), ``faults``, ``traffic``."""

    SETTINGS = ("time_scale", "token_ttl", "refresh_ttl", "keepalive", "clock_skew")

    def __init__(self, state: TenantState, traffic_rate: float) -> None:
        self.state = state
        self.dial = ClickToDial(state)
        self.faults = TenantFaults(state)
        self.traffic = TrafficGenerator(state, random.Random(f"{state.seed}/traffic"), traffic_rate)

    @property
    def account(self) -> str:
        return self.state.account

    @property
    def username(self) -> str:
        return self.state.username

    def reject(self, call_uuid: str) -> None:
        call = self.state.call(call_uuid)
        if isinstance(call, Originate):
            if call.answered:
                raise Conflict(f"call {call_uuid} is already answered")
            self.dial.cancel(call.uuid)
        else:
            self.state.reject(call)

    def hangup(self, call_uuid: str) -> None:
        call = self.state.call(call_uuid)
        if isinstance(call, Originate):
            self.dial.cancel(call.uuid)  # the uuid may be the callee leg's
        else:
            self.state.hangup(call)

    def update_settings(self, **settings: float) -> None:
        for name, value in settings.items():
            if name not in self.SETTINGS:
                raise SimError(f"unknown setting {name}")
            check_setting(name, value)
            setattr(self.state, name, value)

    def set_traffic_rate(self, rate: float) -> None:
        check_setting("traffic_rate", rate)
        self.traffic.set_rate(rate)

    def clear_faults(self) -> None:
        self.faults.clear()

    def close(self) -> None:
        state = self.state
        state.closed = True
        self.traffic.pause()
        for call in state.active_calls():
            for timer in call.timers:
                timer.cancel()
        state.calls.clear()
        for kind in STREAM_KINDS:
            for subscription in state.subscribers[kind]:
                subscription.released.set()  # a stalled stream must still see the close
                subscription.push(CLOSE)

    def describe(self) -> dict[str, Any]:
        state = self.state
        return {
            "account": state.account,
            "username": state.username,
            "extensions": len(state.extension_list),
            "seed": state.seed,
            "time_scale": state.time_scale,
            "token_ttl": state.token_ttl,
            "refresh_ttl": state.refresh_ttl,
            "keepalive": state.keepalive,
            "clock_skew": state.clock_skew,
            "extended_presence": state.extended_presence,
            "traffic": self.traffic.describe(),
            "oddities": asdict(state.oddities),
            "active_calls": len(state.active_calls()),
        }

    def counters_snapshot(self) -> dict[str, Any]:
        return {
            **asdict(self.state.counters),
            "open_streams": self.state.open_streams(),
            "traffic_actions": self.traffic.actions,
        }


class Simulator:
    """Any number of simulated NFON tenants on one clock, with one token signing key."""

    def __init__(self, *, seed: int = 0, keepalive: float = 15.0) -> None:
        self.seed = seed
        self.keepalive = keepalive
        self.scheduler = Scheduler()
        self.tokens = TokenIssuer()
        self.tenants: dict[str, SimTenant] = {}
        self._by_username: dict[str, SimTenant] = {}
        # Non-conforming User-Agents on requests that name no tenant (bad login, JWKS).
        self.unattributed_non_conforming = 0

    def add_tenant(
        self,
        *,
        account: str,
        username: str,
        password: str,
        extensions: int | Sequence[tuple[str, str]] = 10,
        seed: int | None = None,
        traffic_rate: float = 0.0,
        time_scale: float = 1.0,
        token_ttl: float = 300.0,
        refresh_ttl: float = 3600.0,
        keepalive: float | None = None,
        extended_presence: bool = True,
        oddities: Mapping[str, bool] | None = None,
    ) -> SimTenant:
        if not ACCOUNT.match(account):
            raise SimError("account must look like K1234")
        if not username or not password:
            raise SimError("username and password must not be empty")
        if account in self.tenants:
            raise TenantExists(f"tenant {account} exists")
        if username in self._by_username:
            raise TenantExists(f"username {username} is taken")
        check_setting("time_scale", time_scale)
        check_setting("token_ttl", token_ttl)
        check_setting("refresh_ttl", refresh_ttl)
        check_setting("traffic_rate", traffic_rate)
        if keepalive is not None:
            check_setting("keepalive", keepalive)
        tenant_seed: int | str = seed if seed is not None else f"{self.seed}/{account}"
        directory = self._directory(extensions, tenant_seed)
        state = TenantState(
            self.scheduler,
            account=account,
            username=username,
            password=password,
            directory=directory,
            seed=tenant_seed,
            time_scale=time_scale,
            token_ttl=token_ttl,
            refresh_ttl=refresh_ttl,
            keepalive=keepalive if keepalive is not None else self.keepalive,
            extended_presence=extended_presence,
        )
        state.set_oddities(**(oddities or {}))
        tenant = SimTenant(state, traffic_rate)
        self.tenants[account] = tenant
        self._by_username[username] = tenant
        tenant.traffic.start()
        return tenant

    @staticmethod
    def _directory(
        extensions: int | Iterable[tuple[str, str]], seed: int | str
    ) -> list[tuple[str, str]]:
        if isinstance(extensions, int):
            if not 1 <= extensions <= 100_000:
                raise SimError("extensions must be between 1 and 100000")
            return generate_directory(extensions, random.Random(f"{seed}/names"))
        directory = [(str(number), str(name)) for number, name in extensions]
        numbers = [number for number, _ in directory]
        if not directory:
            raise SimError("a tenant needs at least one extension")
        if any(not EXTENSION_NUMBER.match(number) for number in numbers):
            raise SimError("extension numbers must be 1 to 16 digits")
        if len(set(numbers)) != len(numbers):
            raise SimError("extension numbers must be unique")
        return directory

    def tenant(self, account: str) -> SimTenant:
        try:
            return self.tenants[account]
        except KeyError:
            raise NotFound(f"tenant {account} not found") from None

    def tenant_for_username(self, username: str) -> SimTenant | None:
        return self._by_username.get(username)

    def remove_tenant(self, account: str) -> None:
        tenant = self.tenant(account)
        tenant.close()
        del self.tenants[account]
        del self._by_username[tenant.username]

    async def run(self) -> None:
        """Run every tenant's traffic and timers in real time until cancelled."""
        await self.scheduler.run_realtime()

    def advance(self, seconds: float) -> None:
        """Run everything due within ``seconds`` of simulated time at once (tests, benchmarks)."""
        self.scheduler.advance(seconds)
