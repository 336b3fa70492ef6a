"""The audit log's entries: who changed which configuration, each field from what to what.

A ``snapshot`` of a row before and after a change gives its field-level ``diff``; secrets
(encrypted fields) are only ever reported as changed, their values never leave the model.
Entries keep field *names* and plain values, so the admin shows them in the reader's language.
"""

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ctiboard.lib.secrets import EncryptedTextField

from .models import AuditAction, AuditEntry, Tenant

Value = str | bool | int | list[str] | None
# What a snapshot holds of a secret: a digest, enough to tell that it changed.
SECRET_PREFIX = "secret:"  # noqa: S105 - a marker, no password
# Pseudo-fields recorded besides a model's own: name -> value of the row.
Extra = Mapping[str, Callable[[Any], Value]]
# Their labels (a field's own is its verbose name).
EXTRA_LABELS = {"members": _("seen by"), "admin_access": _("may use the admin")}


def _value(obj: models.Model, field: Any) -> Value:
    if isinstance(field, EncryptedTextField):
        plain = getattr(obj, field.attname) or ""
        return SECRET_PREFIX + hashlib.sha256(plain.encode()).hexdigest()
    if field.many_to_many:
        if obj.pk is None:
            return []
        items = getattr(obj, field.name).all()
        if hasattr(obj, "tenant_id") and hasattr(field.related_model, "tenant_id"):
            # A stray link (integrity.py) must not put another tenant's names into the log.
            items = items.filter(tenant=obj.tenant_id)
        return sorted(str(item) for item in items)
    if field.is_relation:
        related = getattr(obj, field.name)
        return None if related is None else str(related)
    raw = getattr(obj, field.attname)
    if field.choices and raw not in (None, ""):
        return str(dict(field.flatchoices).get(raw, raw))
    if raw is None or isinstance(raw, bool | int):
        return raw  # type: ignore[no-any-return]
    return str(raw)


def tracked_fields(model: type[models.Model]) -> list[Any]:
    """What an administrator edits: the editable fields and many-to-many links."""
    return [
        field
        for field in model._meta.get_fields()
        if field.concrete and not field.auto_created and getattr(field, "editable", False)
    ]


def snapshot(obj: models.Model, extra: Extra | None = None) -> dict[str, Value]:
    values = {field.name: _value(obj, field) for field in tracked_fields(type(obj))}
    for name, read in (extra or {}).items():
        values[name] = read(obj)
    return values


def diff(before: Mapping[str, Value], after: Mapping[str, Value]) -> list[dict[str, Any]]:
    """The changed fields: ``{"field", "from", "to"}``, or ``{"field", "secret": True}``."""
    changes: list[dict[str, Any]] = []
    for name in after.keys() | before.keys():
        old, new = before.get(name), after.get(name)
        if old == new or (old in (None, "", []) and new in (None, "", [])):
            continue
        if _is_secret(old) or _is_secret(new):
            changes.append({"field": name, "secret": True})
        else:
            changes.append({"field": name, "from": old, "to": new})
    order = list(after) + [name for name in before if name not in after]
    return sorted(changes, key=lambda change: order.index(change["field"]))


def _is_secret(value: Value) -> bool:
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


def tenant_of(obj: models.Model) -> Tenant:
    return obj if isinstance(obj, Tenant) else obj.tenant  # type: ignore[attr-defined]


def record(
    actor: Any,
    obj: models.Model,
    action: str,
    before: Mapping[str, Value] | None,
    after: Mapping[str, Value] | None,
    *,
    subject: str | None = None,
) -> AuditEntry | None:
    """Write the entry of one change (None: nothing changed). ``before`` None: added;
    ``after`` None: deleted."""
    changes = diff(before or {}, after or {})
    if action == AuditAction.CHANGED and not changes:
        return None
    return AuditEntry.objects.create(
        tenant=tenant_of(obj),
        actor_id=getattr(actor, "pk", None),
        action=action,
        kind=obj._meta.label_lower,
        subject=(subject or str(obj))[:200],
        changes=changes,
        detail=describe(changes),
    )


def describe(changes: list[dict[str, Any]]) -> str:
    """The changes as text, one per line (what the log's search looks through)."""
    return "\n".join(
        f"{change['field']}: changed"
        if change.get("secret")
        else f"{change['field']}: {show(change['from'])} → {show(change['to'])}"
        for change in changes
    )


def show(value: Value) -> str:
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


# --- reading ------------------------------------------------------------------------------


def model_of(kind: str) -> type[models.Model] | None:
    try:
        return apps.get_model(kind)
    except (LookupError, ValueError):
        return None


def label(kind: str, name: str) -> str:
    if name in EXTRA_LABELS:
        return str(EXTRA_LABELS[name])
    model = model_of(kind)
    try:
        field: Any = model._meta.get_field(name) if model else None
    except FieldDoesNotExist:
        field = None
    return str(field.verbose_name) if field is not None else name


def shown(value: Value) -> str:
    """A value in the reader's language."""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    return show(value)


def readable(entry: AuditEntry) -> list[dict[str, str]]:
    """The entry's changes for the admin: label, from, to (a secret: only "changed")."""
    return [
        {"label": label(entry.kind, change["field"]), "secret": "1"}
        if change.get("secret")
        else {
            "label": label(entry.kind, change["field"]),
            "from": shown(change.get("from")),
            "to": shown(change.get("to")),
        }
        for change in entry.changes
    ]
