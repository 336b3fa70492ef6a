"""What a webhook sends: the event's values, the admin's template filled with them, the signature.

Templates are filled with plain ``{placeholder}`` substitution, nothing else: no attribute access,
no indexing, no format specs, no code. ``{{`` and ``}}`` are literal braces.

- ``json`` (POST, ``application/json``): the template is a JSON document; each string in it is
  filled in, and a string that is exactly one placeholder (``"{ring_seconds}"``) becomes the
  value itself (a number, ``null``). The result is encoded by ``json``, so values are always
  escaped correctly.
- ``form`` (POST, ``application/x-www-form-urlencoded``) and ``query`` (GET, appended to the
  URL): the template is a query string such as ``caller={caller}&event={event}``; the values
  are percent-encoded.

Signature: ``X-Ctiboard-Signature: sha256=<hex>`` where hex is the HMAC-SHA256, keyed with the
webhook's secret, of ``<X-Ctiboard-Timestamp> "." <payload>``; the payload is the exact request
body, or for GET the exact query string (everything after ``?``). The timestamp is Unix seconds
at sending time; receivers reject old ones (``verify``), so a captured request cannot be
replayed later, and it cannot be altered because it is signed.

Corrections: a call record corrected after its ``ended`` was queued (the hangup that follows a
gap, a late answer, a hunt-group leg answered elsewhere) is sent again as ``ended`` with
``corrected`` true, the next ``revision`` (0 for the first) and a new delivery id: receivers keep
the highest revision of a leg (uuid + extension), whatever order retries arrive in.
"""

import hashlib
import hmac
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.utils.translation import gettext_lazy as _

SIGNATURE_HEADER = "X-Ctiboard-Signature"
TIMESTAMP_HEADER = "X-Ctiboard-Timestamp"
EVENT_HEADER = "X-Ctiboard-Event"
DELIVERY_HEADER = "X-Ctiboard-Delivery"

PLACEHOLDERS: dict[str, Any] = {
    "event": _("ringing, answered or ended"),
    "uuid": _("the call's uuid as the PBX reports it"),
    "account": _("the K-Account"),
    "extension": _("the extension's number"),
    "extension_name": _("the extension's name"),
    "direction": _("inbound or outbound, from the extension's point of view"),
    "caller": _("the calling number"),
    "callee": _("the called number"),
    "partner": _("the other party's number"),
    "outcome": _("ended only: answered, missed, busy, rejected, cancelled, …"),
    "timestamp": _("when the event happened (ISO 8601, UTC)"),
    "started_at": _("when it started ringing"),
    "answered_at": _("when it was answered"),
    "ended_at": _("when it ended"),
    "ring_seconds": _("seconds it rang"),
    "talk_seconds": _("seconds of talk"),
    "corrected": _("ended only: true if this corrects an ended sent before"),
    "revision": _("0, then 1, 2, … for each correction of the same ended leg"),
}

DEFAULT_JSON_TEMPLATE = json.dumps({name: "{" + name + "}" for name in PLACEHOLDERS}, indent=2)
DEFAULT_QUERY_TEMPLATE = "&".join(
    f"{name}={{{name}}}"
    for name in ("event", "uuid", "extension", "direction", "caller", "callee", "timestamp")
)

Value = str | int | float | None


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Rendered:
    method: str
    url: str
    content_type: str
    body: str


def _parts(text: str) -> list[tuple[str, str | None]]:
    """The template as (literal, placeholder or None) pairs; TemplateError if it is not one."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(_("Unbalanced braces: %(error)s") % {"error": exc}) from None
    parts = []
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            shown = "{" + field + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise TemplateError(_("Unknown placeholder %(field)s.") % {"field": shown})
        parts.append((literal, field))
    return parts


def _fill(text: str, values: Mapping[str, Value], encode: Callable[[Value], str]) -> str:
    return "".join(
        literal + (encode(values.get(field)) if field is not None else "")
        for literal, field in _parts(text)
    )


def _as_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON body
    return "" if value is None else str(value)


def _percent(value: Value) -> str:
    return quote(_as_text(value), safe="")


def _fill_json(node: Any, values: Mapping[str, Value]) -> Any:
    if isinstance(node, str):
        parts = _parts(node)
        if len(parts) == 1 and parts[0][0] == "" and parts[0][1] is not None:
            return values.get(parts[0][1])  # exactly one placeholder: the typed value
        return _fill(node, values, _as_text)
    if isinstance(node, list):
        return [_fill_json(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill_json(item, values) for key, item in node.items()}
    return node


def effective_template(body_format: str, template: str) -> str:
    if template.strip():
        return template
    return DEFAULT_JSON_TEMPLATE if body_format == "json" else DEFAULT_QUERY_TEMPLATE


def check(body_format: str, template: str) -> None:
    """Raise TemplateError unless the template renders (validation in the admin)."""
    render(body_format, template, "https://example.invalid/", dict.fromkeys(PLACEHOLDERS, "x"))


def render(body_format: str, template: str, url: str, values: Mapping[str, Value]) -> Rendered:
    template = effective_template(body_format, template)
    if body_format == "json":
        try:
            document = json.loads(template)
        except ValueError as exc:
            raise TemplateError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
        body = json.dumps(_fill_json(document, values), ensure_ascii=False, separators=(",", ":"))
        return Rendered("POST", url, "application/json", body)
    query = _fill(template.strip().lstrip("?"), values, _percent)
    if body_format == "form":
        return Rendered("POST", url, "application/x-www-form-urlencoded", query)
    if body_format == "query":
        joined = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        return Rendered("GET", joined, "", "")
    raise TemplateError(f"unknown body format {body_format!r}")


def values_of(
    event: str,
    *,
    account: str,
    uuid: str,
    extension: str,
    extension_name: str,
    direction: str,
    partner: str,
    outcome: str,
    timestamp: datetime | None,
    started_at: datetime | None,
    answered_at: datetime | None,
    ended_at: datetime | None,
    ring_seconds: float | None,
    talk_seconds: float | None,
    revision: int = 0,
) -> dict[str, Value]:
    if direction == "inbound":
        caller, callee = partner, extension
    elif direction == "outbound":
        caller, callee = extension, partner
    else:
        caller = callee = ""
    return {
        "event": event,
        "uuid": uuid,
        "account": account,
        "extension": extension,
        "extension_name": extension_name,
        "direction": direction,
        "caller": caller,
        "callee": callee,
        "partner": partner,
        "outcome": outcome,
        "timestamp": _iso(timestamp),
        "started_at": _iso(started_at),
        "answered_at": _iso(answered_at),
        "ended_at": _iso(ended_at),
        "ring_seconds": None if ring_seconds is None else round(ring_seconds, 3),
        "talk_seconds": None if talk_seconds is None else round(talk_seconds, 3),
        "corrected": revision > 0,
        "revision": revision,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


# --- signature ----------------------------------------------------------------------------


def sign(secret: str, timestamp: int, payload: bytes) -> str:
    """The value of the signature header for this timestamp and exact payload."""
    message = str(timestamp).encode() + b"." + payload
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, payload: bytes, signature: str, *, now: float, tolerance: float
) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature (constant-time)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, payload), signature)
