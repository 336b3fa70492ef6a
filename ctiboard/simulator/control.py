"""A synchronous client for the simulator's control API (``/_sim/``), for tests, benchmarks and
the demo. Every method mirrors one control endpoint and raises ``SimulatorControlError`` on an
error answer."""

from types import TracebackType
from typing import Any

import httpx


class SimulatorControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class SimulatorControl:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        """``base_url`` is where the simulator's API lives, e.g. ``http://127.0.0.1:8001`` or
        ``http://127.0.0.1:8000/pbx-simulator`` when mounted."""
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=f"{self.base_url}/_sim", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "SimulatorControl":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._client.request(method, path, json=body)
        if response.is_error:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise SimulatorControlError(response.status_code, message)
        return response.json() if response.content else None

    # -- tenants ------------------------------------------------------------------------------

    def create_tenant(
        self,
        account: str,
        username: str,
        password: str,
        *,
        extensions: int | list[dict[str, str]] = 10,
        seed: int | None = None,
        traffic_rate: float = 0.0,
        time_scale: float = 1.0,
        token_ttl: float = 300.0,
        refresh_ttl: float = 3600.0,
        keepalive: float | None = None,
        extended_presence: bool = True,
        oddities: str | dict[str, bool] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account": account,
            "username": username,
            "password": password,
            "extensions": extensions,
            "seed": seed,
            "traffic_rate": traffic_rate,
            "time_scale": time_scale,
            "token_ttl": token_ttl,
            "refresh_ttl": refresh_ttl,
            "keepalive": keepalive,
            "extended_presence": extended_presence,
        }
        if oddities is not None:
            body["oddities"] = oddities
        return self._request("POST", "/tenants", body)

    def tenants(self) -> list[dict[str, Any]]:
        return self._request("GET", "/tenants")

    def tenant(self, account: str) -> dict[str, Any]:
        return self._request("GET", f"/tenants/{account}")

    def update_tenant(self, account: str, **settings: float) -> dict[str, Any]:
        """Change time_scale, token_ttl, refresh_ttl, keepalive or clock_skew (seconds the
        PBX's clock is off, either way) of a running tenant."""
        return self._request("PATCH", f"/tenants/{account}", settings)

    def delete_tenant(self, account: str) -> None:
        self._request("DELETE", f"/tenants/{account}")

    # -- extensions ---------------------------------------------------------------------------

    def states(self, account: str) -> list[dict[str, Any]]:
        """The truth: every extension's state as the simulator holds it."""
        return self._request("GET", f"/tenants/{account}/states")

    def set_state(
        self, account: str, extension: str, *, line: str | None = None, presence: str | None = None
    ) -> dict[str, Any]:
        body = {"line": line, "presence": presence}
        path = f"/tenants/{account}/extensions/{extension}/state"
        return self._request("PUT", path, body)

    def set_behaviour(
        self,
        account: str,
        extension: str,
        mode: str = "answer",
        *,
        answer_after: float = 2.0,
        hangup_after: float | None = 60.0,
    ) -> dict[str, Any]:
        """How an extension's phone treats calls: answer, never, reject, busy or offline."""
        body = {"mode": mode, "answer_after": answer_after, "hangup_after": hangup_after}
        path = f"/tenants/{account}/extensions/{extension}/behaviour"
        return self._request("PUT", path, body)

    def set_remote_behaviour(
        self,
        account: str,
        number: str,
        mode: str = "answer",
        *,
        answer_after: float = 3.0,
        hangup_after: float | None = 60.0,
    ) -> dict[str, Any]:
        """How an external number behaves when click-to-dial calls it."""
        body = {"mode": mode, "answer_after": answer_after, "hangup_after": hangup_after}
        path = f"/tenants/{account}/numbers/{number}/behaviour"
        return self._request("PUT", path, body)

    # -- scripted calls -----------------------------------------------------------------------

    def calls(self, account: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/tenants/{account}/calls")

    def ring(self, account: str, caller: str, to: str | list[str]) -> dict[str, Any]:
        """Ring one extension (or several: a hunt group under one uuid) from ``caller``."""
        body = {"from": caller, "to": to}
        return self._request("POST", f"/tenants/{account}/calls", body)

    def answer(self, account: str, call_uuid: str, extension: str | None = None) -> dict[str, Any]:
        path = f"/tenants/{account}/calls/{call_uuid}/answer"
        return self._request("POST", path, {"extension": extension})

    def reject(self, account: str, call_uuid: str) -> None:
        self._request("POST", f"/tenants/{account}/calls/{call_uuid}/reject")

    def hangup(self, account: str, call_uuid: str) -> None:
        self._request("POST", f"/tenants/{account}/calls/{call_uuid}/hangup")

    # -- traffic and counters -----------------------------------------------------------------

    def traffic(self, account: str) -> dict[str, Any]:
        return self._request("GET", f"/tenants/{account}/traffic")

    def set_traffic(
        self, account: str, *, rate: float | None = None, paused: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if rate is not None:
            body["rate"] = rate
        if paused is not None:
            body["paused"] = paused
        return self._request("PUT", f"/tenants/{account}/traffic", body)

    def pause_traffic(self, account: str) -> dict[str, Any]:
        return self.set_traffic(account, paused=True)

    def resume_traffic(self, account: str) -> dict[str, Any]:
        return self.set_traffic(account, paused=False)

    def counters(self, account: str) -> dict[str, Any]:
        return self._request("GET", f"/tenants/{account}/counters")

    # -- faults and oddities ------------------------------------------------------------------

    def faults(self, account: str) -> dict[str, Any]:
        return self._request("GET", f"/tenants/{account}/faults")

    def inject_fault(self, account: str, kind: str, **params: Any) -> dict[str, Any]:
        """Stream faults (drop, truncate, unauthorized, stall, malformed) answer how many open
        streams they reached; http_error and delay arm the next requests."""
        body = {"kind": kind, **params}
        return self._request("POST", f"/tenants/{account}/faults", body)

    def clear_faults(self, account: str) -> None:
        self._request("DELETE", f"/tenants/{account}/faults")

    def oddities(self, account: str) -> dict[str, bool]:
        return self._request("GET", f"/tenants/{account}/oddities")

    def set_oddities(self, account: str, **flags: bool) -> dict[str, bool]:
        return self._request("PUT", f"/tenants/{account}/oddities", flags)
