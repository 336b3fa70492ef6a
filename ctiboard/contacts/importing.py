"""CSV import into a tenant's phonebook, as exported by Outlook, Excel or a CRM.

The first row names the columns; ``name`` and ``number`` are required, ``vip`` is optional
(1/0, yes/no, ja/nein, x). German column names (Name, Nummer/Telefon, VIP) work too.
Comma, semicolon and tab separated files are recognised; UTF-8 (with or without BOM) and
Windows-1252 are read. A number that is already in the book updates that contact.
"""

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from ctiboard.lib import phonenumbers
from ctiboard.tenancy import audit
from ctiboard.tenancy.models import AuditAction, Tenant

from .models import Contact, key_for

MAX_BYTES = 5 * 1024 * 1024
COLUMNS = {
    "name": ("name", "kontakt", "contact", "display name", "anzeigename"),
    "number": ("number", "nummer", "phone", "telefon", "telephone", "rufnummer", "tel"),
    "vip": ("vip",),
}
TRUE = {"1", "yes", "y", "true", "x", "ja", "j", "wahr"}
FALSE = {"", "0", "no", "n", "false", "nein", "falsch"}


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ValueError(_("The file is larger than 5 MB."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def import_csv(tenant: Tenant, text: str, *, actor: Any = None) -> ImportResult:
    """Add or update contacts; rows with errors are skipped and reported by line number.
    Each added or changed contact goes into the audit log as the ``actor``'s change."""
    result = ImportResult()
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if header is None:
        result.errors.append(_("The file is empty."))
        return result
    columns = _columns(header)
    missing = [name for name in ("name", "number") if name not in columns]
    if missing:
        result.errors.append(
            _("The first row must name the columns; missing: %(columns)s.")
            % {"columns": ", ".join(missing)}
        )
        return result
    existing = {c.number_key: c for c in Contact.objects.filter(tenant=tenant)}
    with transaction.atomic():
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue

            def cell(column: str, row: list[str] = row) -> str:
                index = columns.get(column)
                return row[index].strip() if index is not None and index < len(row) else ""

            name, number, vip_text = cell("name"), cell("number"), cell("vip").lower()
            if not name:
                result.errors.append(_("Line %(line)d: no name.") % {"line": line})
                continue
            try:
                phonenumbers.parse(number, tenant.country_code)
            except phonenumbers.InvalidNumber as exc:
                result.errors.append(
                    _("Line %(line)d: %(number)s: %(error)s")
                    % {"line": line, "number": number or "—", "error": exc}
                )
                continue
            if vip_text not in TRUE | FALSE:
                result.errors.append(
                    _("Line %(line)d: VIP must be yes or no, not %(value)s.")
                    % {"line": line, "value": vip_text}
                )
                continue
            vip = vip_text in TRUE
            contact = existing.get(key_for(number, tenant))
            if contact is None:
                contact = Contact(tenant=tenant, name=name, number=number, vip=vip)
                contact.save()
                audit.record(actor, contact, AuditAction.ADDED, None, audit.snapshot(contact))
                existing[contact.number_key] = contact
                result.created += 1
            elif (contact.name, contact.number, contact.vip) != (name, number, vip):
                before = audit.snapshot(contact)
                contact.name, contact.number, contact.vip = name, number, vip
                contact.save()
                audit.record(actor, contact, AuditAction.CHANGED, before, audit.snapshot(contact))
                result.updated += 1
    return result


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        normalised = title.strip().lower()
        for column, aliases in COLUMNS.items():
            if column not in found and normalised in aliases:
                found[column] = index
    return found
