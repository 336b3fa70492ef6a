"""The shapes of NFON's CTI API (simulator/spec/nfon-cti-api.yaml), made from ctiboard's data."""

import json
from datetime import datetime
from typing import Any

from django.utils import timezone

from ctiboard.tenancy.models import Extension

SSE = "text/event-stream"
JSON = "application/json"
KEEPALIVE = b": keepalive\n\n"
# What a call event keeps without the call-details right: no partner, number or direction.
LINE_ONLY_CALL_FIELDS = ("uuid", "state", "updated", "extension", "customer")


def frame(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def stamp(moment: datetime | None = None) -> str:
    """RFC 3339 with the offset of Django's TIME_ZONE, as NFON writes ``updated``."""
    return timezone.localtime(moment or timezone.now()).isoformat()


def extension_data(extension: Extension, account: str) -> dict[str, str]:
    return {
        "uuid": extension.api_uuid or f"{extension.number}@{account}",
        "extension_number": extension.number,
        "name": extension.name,
    }


def state_event(extension: Extension, account: str) -> dict[str, Any]:
    changes = [t for t in (extension.line_since, extension.presence_since) if t is not None]
    return {
        "extension": extension.number,
        "customer": account,
        # An unknown presence is stored empty; the spec's word for none is "null".
        "presence": extension.presence or "null",
        "line": extension.line,
        "updated": stamp(max(changes) if changes else None),
    }


def call_event(event: dict[str, Any], account: str, *, details: bool) -> dict[str, Any]:
    shown = {**event, "customer": account}
    if details:
        return shown
    return {key: shown[key] for key in LINE_ONLY_CALL_FIELDS if key in shown}
