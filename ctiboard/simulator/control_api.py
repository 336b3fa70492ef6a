"""The control API (``/_sim/``): create and inspect tenants, script calls, steer traffic,
inject faults. For tests, demos and benchmarks on localhost: it has no auth."""

from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctiboard.simulator.faults import STREAM_FAULTS
from ctiboard.simulator.model import MAX_CLOCK_SKEW, PROFILES, PhoneBehaviour, PhoneMode, SimError
from ctiboard.simulator.simulator import SimTenant, Simulator
from ctiboard.simulator.web import is_number, json_body

# --- control API ------------------------------------------------------------------------------


class _Fields:
    """Typed access to a control request's JSON object, answering 400 on a wrong type."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise SimError("the body must be a JSON object")
        self.body = body

    def __contains__(self, key: str) -> bool:
        return key in self.body

    def string(self, key: str, default: str | None = None) -> str:
        value = self.body.get(key, default)
        if not isinstance(value, str):
            raise SimError(f"{key} must be a string")
        return value

    def optional_string(self, key: str) -> str | None:
        return None if self.body.get(key) is None else self.string(key)

    def number(self, key: str, default: float | None = None, *, minimum: float = 0.0) -> float:
        value = self.body.get(key, default)
        if not is_number(value) or value < minimum:
            raise SimError(f"{key} must be a number >= {minimum}")
        return float(value)

    def positive(self, key: str, default: float | None = None) -> float:
        value = self.number(key, default)
        if value <= 0:
            raise SimError(f"{key} must be positive")
        return value

    def optional_positive(self, key: str) -> float | None:
        return None if self.body.get(key) is None else self.positive(key)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.body.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise SimError(f"{key} must be an integer >= {minimum}")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        value = self.body.get(key, default)
        if not isinstance(value, bool):
            raise SimError(f"{key} must be true or false")
        return value


def _behaviour(fields: _Fields) -> PhoneBehaviour:
    mode = fields.string("mode", "answer")  # PhoneBehaviour checks it is a known mode
    hangup_after = (
        None
        if "hangup_after" in fields and fields.body["hangup_after"] is None
        else fields.number("hangup_after", 60.0)
    )
    return PhoneBehaviour(cast(PhoneMode, mode), fields.number("answer_after", 2.0), hangup_after)


def _oddities(fields: _Fields) -> dict[str, bool]:
    """`oddities`: a profile name (spec, realistic) or an object of booleans."""
    value = fields.body.get("oddities", {})
    if isinstance(value, str):
        if value not in PROFILES:
            raise SimError(f"oddities must be one of {', '.join(PROFILES)} or an object")
        return PROFILES[value]
    nested = _Fields(value)
    return {key: nested.boolean(key) for key in nested.body}


def _directory(value: Any) -> int | list[tuple[str, str]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, list):
        raise SimError("extensions must be a count or a list of {number, name}")
    directory = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            raise SimError("each extension needs a string number")
        name = entry.get("name", f"Extension {entry['number']}")
        if not isinstance(name, str):
            raise SimError("extension names must be strings")
        directory.append((entry["number"], name))
    return directory


class Control:
    """``/_sim/``: create and inspect tenants, script calls, steer traffic, inject faults."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator

    def routes(self) -> list[Route]:
        tenant = "/tenants/{account}"
        return [
            Route("/tenants", self.tenants, methods=["GET", "POST"]),
            Route(tenant, self.tenant, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{tenant}/states", self.states, methods=["GET"]),
            Route(f"{tenant}/extensions/{{number}}/state", self.set_state, methods=["PUT"]),
            Route(f"{tenant}/extensions/{{number}}/behaviour", self.behaviour, methods=["PUT"]),
            Route(f"{tenant}/numbers/{{number}}/behaviour", self.remote_behaviour, methods=["PUT"]),
            Route(f"{tenant}/calls", self.calls, methods=["GET", "POST"]),
            Route(f"{tenant}/calls/{{uuid}}/{{action}}", self.call_action, methods=["POST"]),
            Route(f"{tenant}/traffic", self.traffic, methods=["GET", "PUT"]),
            Route(f"{tenant}/counters", self.counters, methods=["GET"]),
            Route(f"{tenant}/faults", self.faults, methods=["GET", "POST", "DELETE"]),
            Route(f"{tenant}/oddities", self.oddities, methods=["GET", "PUT"]),
        ]

    def _tenant(self, request: Request) -> SimTenant:
        return self.sim.tenant(request.path_params["account"])

    async def tenants(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse([tenant.describe() for tenant in self.sim.tenants.values()])
        fields = _Fields(await json_body(request))
        seed = fields.body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise SimError("seed must be an integer")
        tenant = self.sim.add_tenant(
            account=fields.string("account"),
            username=fields.string("username"),
            password=fields.string("password"),
            extensions=_directory(fields.body.get("extensions", 10)),
            seed=seed,
            traffic_rate=fields.number("traffic_rate", 0.0),
            time_scale=fields.positive("time_scale", 1.0),
            token_ttl=fields.positive("token_ttl", 300.0),
            refresh_ttl=fields.positive("refresh_ttl", 3600.0),
            keepalive=fields.optional_positive("keepalive"),
            extended_presence=fields.boolean("extended_presence", True),
            oddities=_oddities(fields),
        )
        return JSONResponse(tenant.describe(), status_code=201)

    async def tenant(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "DELETE":
            self.sim.remove_tenant(tenant.account)
            return Response(status_code=204)
        if request.method == "PATCH":
            fields = _Fields(await json_body(request))
            tenant.update_settings(
                **{
                    # A clock may be off either way; every other setting is a positive amount.
                    key: fields.number(key, minimum=-MAX_CLOCK_SKEW)
                    if key == "clock_skew"
                    else fields.positive(key)
                    for key in fields.body
                }
            )
        return JSONResponse(tenant.describe())

    async def states(self, request: Request) -> Response:
        return JSONResponse(self._tenant(request).state.states())

    async def set_state(self, request: Request) -> Response:
        tenant = self._tenant(request)
        fields = _Fields(await json_body(request))
        line, presence = fields.optional_string("line"), fields.optional_string("presence")
        if line is None and presence is None:
            raise SimError("give line and/or presence")
        number = request.path_params["number"]
        tenant.state.set_state(number, line=line, presence=presence)
        return JSONResponse(tenant.state.states([number])[0])

    async def behaviour(self, request: Request) -> Response:
        tenant = self._tenant(request)
        behaviour = _behaviour(_Fields(await json_body(request)))
        tenant.state.set_behaviour(request.path_params["number"], behaviour)
        return JSONResponse(_describe_behaviour(behaviour))

    async def remote_behaviour(self, request: Request) -> Response:
        tenant = self._tenant(request)
        behaviour = _behaviour(_Fields(await json_body(request)))
        tenant.state.set_remote_behaviour(request.path_params["number"], behaviour)
        return JSONResponse(_describe_behaviour(behaviour))

    async def calls(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "GET":
            return JSONResponse([call.describe() for call in tenant.state.active_calls()])
        fields = _Fields(await json_body(request))
        targets = fields.body.get("to")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise SimError("to must be an extension number or a list of them")
        call = tenant.state.ring(fields.string("from"), targets)
        return JSONResponse(call.describe(), status_code=201)

    async def call_action(self, request: Request) -> Response:
        tenant = self._tenant(request)
        call_uuid, action = request.path_params["uuid"], request.path_params["action"]
        if action == "answer":
            fields = _Fields(await json_body(request, optional=True))
            call = tenant.state.answer(call_uuid, fields.optional_string("extension"))
            return JSONResponse(call.describe())
        if action == "reject":
            tenant.reject(call_uuid)
        elif action == "hangup":
            tenant.hangup(call_uuid)
        else:
            raise HTTPException(404, f"unknown call action {action}; use answer, reject or hangup")
        return Response(status_code=204)

    async def traffic(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "PUT":
            fields = _Fields(await json_body(request))
            if "rate" in fields:
                tenant.set_traffic_rate(fields.number("rate"))
            if "paused" in fields:
                if fields.boolean("paused"):
                    tenant.traffic.pause()
                else:
                    tenant.traffic.resume()
        return JSONResponse(tenant.traffic.describe())

    async def counters(self, request: Request) -> Response:
        return JSONResponse(self._tenant(request).counters_snapshot())

    async def faults(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "DELETE":
            tenant.clear_faults()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse(tenant.faults.describe())
        fields = _Fields(await json_body(request))
        kind = fields.string("kind")
        result: dict[str, Any] = {"kind": kind}
        if kind in STREAM_FAULTS:
            result["streams"] = tenant.faults.inject_stream_fault(
                kind, fields.string("stream", "all"), fields.string("variant", "")
            )
        elif kind == "http_error":
            status = fields.integer("status", 500, minimum=400)
            if status > 599:
                raise SimError("status must be between 400 and 599")
            tenant.faults.add_http_fault(
                status, fields.string("endpoint", "*"), fields.integer("count", 1, minimum=1)
            )
        elif kind == "delay":
            seconds = fields.positive("seconds")
            count = None if fields.body.get("count") is None else fields.integer("count", minimum=1)
            tenant.faults.set_delay(seconds, fields.string("endpoint", "*"), count)
        else:
            kinds = ", ".join((*STREAM_FAULTS, "http_error", "delay"))
            raise SimError(f"kind must be one of {kinds}")
        result["faults"] = tenant.faults.describe()
        return JSONResponse(result)

    async def oddities(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "PUT":
            fields = _Fields(await json_body(request))
            tenant.state.set_oddities(**{key: fields.boolean(key) for key in fields.body})
        return JSONResponse(tenant.describe()["oddities"])


def _describe_behaviour(behaviour: PhoneBehaviour) -> dict[str, Any]:
    return {
        "mode": behaviour.mode,
        "answer_after": behaviour.answer_after,
        "hangup_after": behaviour.hangup_after,
    }
