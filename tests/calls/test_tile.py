"""The tile shows the extension's current call from the pushed payload alone (no query)."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from ctiboard.board.rendering import render_tile_oob
from ctiboard.board.viewer import Viewer
from ctiboard.tenancy.models import Extension, membership_for
from tests.conftest import Company

pytestmark = pytest.mark.django_db

SINCE = datetime(2025, 9, 23, 14, 0, 5, tzinfo=UTC)
TIMER = f'data-since="{timezone.localtime(SINCE).isoformat()}"'  # in the board's time zone


def pushed(extension: Extension, **call: object) -> Extension:
    for name, value in call.items():
        setattr(extension, name, value)
    extension.seq += 1
    return Extension.from_payload(extension.to_payload())


def test_a_call_shows_state_timer_and_for_the_right_viewers_its_partner(
    company: Company, owner: User, django_assert_num_queries: object
) -> None:
    membership = membership_for(owner, company.tenant.account)
    assert membership is not None
    viewer = Viewer.of(membership)
    extension = pushed(
        company.extensions[2],
        call_state="in-call",
        call_partner="4930123456",
        call_direction="inbound",
        call_since=SINCE,
    )
    with django_assert_num_queries(0):  # type: ignore[operator]
        html = render_tile_oob(extension, replace(viewer, details=True))
        hidden = render_tile_oob(extension, replace(viewer, details=False))
    assert "In a call" in html and TIMER in html
    assert "123456" in html and "from" in html
    assert TIMER in hidden and "123456" not in hidden

    idle = pushed(extension, call_state="", call_partner="", call_direction="", call_since=None)
    with django_assert_num_queries(0):  # type: ignore[operator]
        html = render_tile_oob(idle, replace(viewer, details=True))
    assert "call-state" not in html and "123456" not in html


def test_an_undocumented_call_state_is_said_to_be_unknown(company: Company, owner: User) -> None:
    membership = membership_for(owner, company.tenant.account)
    assert membership is not None
    extension = pushed(company.extensions[1], call_state="unknown", call_since=SINCE)
    html = render_tile_oob(extension, Viewer.of(membership))
    assert "Call state unknown" in html
