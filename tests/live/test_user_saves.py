"""Which saves of a user make his open boards recompute what they show: a change of his rights
does, a login or a new name, e-mail or password does not (every board would re-send its grid).
A new password or a deactivation ends his sessions (their sockets close)."""

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client

from ctiboard.live.groups import user_group
from ctiboard.tenancy.models import Membership
from tests.conftest import PASSWORD, Company

pytestmark = pytest.mark.django_db


@pytest.fixture
def pushes_to(django_capture_on_commit_callbacks: Any) -> Callable[..., list[str]]:
    """Runs an action as its own committed transaction; returns the types of the messages the
    user's sockets received for it."""

    def run(user: User, action: Callable[[], object]) -> list[str]:
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(user_group(user.pk), channel)
        with django_capture_on_commit_callbacks(execute=True):
            action()
        # Sent after the action's pushes: everything before it is theirs.
        async_to_sync(layer.send)(channel, {"type": "test.sentinel"})
        received = []
        while (message := async_to_sync(layer.receive)(channel))["type"] != "test.sentinel":
            received.append(message["type"])
        async_to_sync(layer.group_discard)(user_group(user.pk), channel)
        return received

    return run


def test_logging_in_leaves_the_boards_alone(
    owner: User, pushes_to: Callable[..., list[str]]
) -> None:
    assert owner.last_login is None
    assert pushes_to(owner, lambda: Client().login(username="owner", password=PASSWORD)) == []
    owner.refresh_from_db()
    assert owner.last_login is not None  # the login did save the user


def test_name_and_email_changes_leave_the_boards_alone(
    owner: User, pushes_to: Callable[..., list[str]]
) -> None:
    def edit() -> None:
        owner.first_name, owner.email = "Olga", "olga@example.com"
        owner.save()

    assert pushes_to(owner, edit) == []


def test_a_new_password_ends_the_sessions_but_recomputes_nothing(
    owner: User, pushes_to: Callable[..., list[str]]
) -> None:
    def edit() -> None:
        owner.set_password("another long passphrase")
        owner.save()

    assert pushes_to(owner, edit) == ["sessions.ended"]


@pytest.mark.parametrize(
    ("right", "pushes"),
    [
        ("is_active", ["sessions.ended", "visibility.changed"]),
        ("is_staff", ["visibility.changed"]),
        ("is_superuser", ["visibility.changed"]),
    ],
)
def test_a_change_of_rights_recomputes_the_boards(
    owner: User, pushes_to: Callable[..., list[str]], right: str, pushes: list[str]
) -> None:
    def flip() -> None:
        user = User.objects.get(pk=owner.pk)  # as the admin loads it
        setattr(user, right, not getattr(user, right))
        user.save()

    assert pushes_to(owner, flip) == pushes


def test_a_membership_change_still_recomputes_the_boards(
    member: User, company: Company, pushes_to: Callable[..., list[str]]
) -> None:
    def widen() -> None:
        membership = Membership.objects.get(user=member)
        membership.sees_all_extensions = True
        membership.save()

    assert pushes_to(member, widen) == ["visibility.changed"]
