"""An NFON CTI API client written from NFON's spec alone (plain httpx, not ctiboard's CTIClient):
the same client drives the simulator (tests/simulator/test_nfon_client.py) and ctiboard's
gateway (tests/gateway/), configured with nothing but a base URL and credentials."""

import json
from types import TracebackType
from typing import Any, Self

import httpx

SSE = "text/event-stream"


class SpecClient:
    def __init__(self, base_url: str, account: str) -> None:
        # NFON asks for <product>/<version> (<K-Account>).
        agent = f"spec-client/2.1 ({account})"
        self.http = httpx.AsyncClient(base_url=base_url, headers={"User-Agent": agent}, timeout=10)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def bearer(self, token: str) -> None:
        self.http.headers["Authorization"] = f"Bearer {token}"

    async def login(self, username: str, password: str) -> dict[str, str]:
        response = await self.http.post("/login", json={"username": username, "password": password})
        response.raise_for_status()
        tokens: dict[str, str] = response.json()
        self.bearer(tokens["access-token"])
        return tokens

    async def refresh(self, refresh_token: str) -> dict[str, str]:
        response = await self.http.put(
            "/login", headers={"Authorization": f"Bearer {refresh_token}"}
        )
        response.raise_for_status()
        tokens: dict[str, str] = response.json()
        self.bearer(tokens["access-token"])
        return tokens

    async def data(self) -> list[dict[str, str]]:
        response = await self.http.get("/extensions/phone/data")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def snapshot(self, numbers: list[str] | None = None) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/extensions/phone/states",
            params={"extension": numbers or []},
            headers={"Accept": "application/json"},
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def states(self) -> "SseStream":
        return SseStream(self.http, "GET", "/extensions/phone/states")

    def calls(self) -> "SseStream":
        return SseStream(self.http, "GET", "/extensions/phone/calls")

    async def originate(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            "/extensions/phone/calls", json=body, headers={"Accept": "application/json"}
        )

    def originate_stream(self, body: dict[str, Any]) -> "SseStream":
        return SseStream(self.http, "POST", "/extensions/phone/calls", body)

    async def cancel(self, call_uuid: str) -> httpx.Response:
        return await self.http.delete(f"/extensions/phone/calls/{call_uuid}")


class SseStream:
    """One SSE response; its ``data:`` frames as JSON objects, in order."""

    def __init__(self, http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> None:
        self._request = http.stream(
            method, path, json=body, headers={"Accept": SSE}, timeout=httpx.Timeout(10, read=None)
        )
        self.raw: list[str] = []  # every line received, comments included

    async def __aenter__(self) -> Self:
        self.response = await self._request.__aenter__()
        assert self.response.status_code == 200, self.response.status_code
        assert self.response.headers["content-type"].startswith(SSE)
        self._lines = self.response.aiter_lines()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._request.__aexit__(kind, exc, tb)

    async def next(self) -> dict[str, Any]:
        """The next frame; StopAsyncIteration when the stream ends."""
        async for line in self._lines:
            self.raw.append(line)
            if line.startswith("data:"):
                return json.loads(line.removeprefix("data:").strip())  # type: ignore[no-any-return]
        raise StopAsyncIteration

    async def take(self, count: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(count)]

    async def until(self, state: str) -> list[dict[str, Any]]:
        seen = [await self.next()]
        while seen[-1]["state"] != state:
            seen.append(await self.next())
        return seen

    async def end(self) -> list[dict[str, Any]]:
        """The frames until the server ends the stream."""
        frames = []
        try:
            while True:
                frames.append(await self.next())
        except StopAsyncIteration:
            return frames
