"""The worker's tile messages: per tenant, the JSON list of Extension.to_payload() (and the
call partner's phonebook entry) that web processes decode once for all their sockets."""

import json
from typing import Any
from unittest import mock

import pytest

from ctiboard.contacts.models import Contact
from ctiboard.live import publish
from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import Extension


@pytest.mark.parametrize("tenants", [[1], [1, 2, 1]])
def test_a_batch_is_the_json_list_of_its_tiles_per_tenant(tenants: list[int]) -> None:
    extensions = [
        Extension(pk=i, tenant_id=tenant, number=str(100 + i), line="idle", seq=i)
        for i, tenant in enumerate(tenants)
    ]
    extensions[0].call_partner = "+4930123"
    contacts = {"+4930123": Contact(name="Customer", vip=False)}
    sent: list[tuple[str, dict[str, Any]]] = []
    with mock.patch.object(publish, "_send_after_commit", lambda *a: sent.append(a)):
        publish.extensions_changed(extensions, contacts)
    expected = {}
    for tenant in dict.fromkeys(tenants):
        payloads = []
        for extension in extensions:
            if extension.tenant_id == tenant:
                payload = extension.to_payload()
                contact = contacts.get(extension.call_partner)
                if contact is not None:
                    payload["contact"] = [contact.name, contact.vip]
                payloads.append(payload)
        expected[tenant_group(tenant)] = json.dumps(payloads, separators=(",", ":"))
    assert {group: message["tiles"] for group, message in sent} == expected
