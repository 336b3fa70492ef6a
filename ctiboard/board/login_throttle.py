"""Login throttling with django-axes: the backend that counts, the page that says "locked".

Failures count per user name and per client address (settings: AXES_*); at the limit the
login page (the admin's too) refuses every password, the right one too, until the cool-off
has passed since the last failure or an admin deletes the attempt (admin: Axes → Access
attempts). A successful login clears the user's and the address's count.
"""

import math
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


class LoginThrottle(AxesStandaloneBackend):
    """Axes' backend, for logins that come with an HTTP request.

    Without one (the test client's ``login()``, a shell) there is no address to count against
    and nobody at a login form: Axes would refuse with an error, this lets the next backend
    decide. Every login form of ctiboard passes its request.
    """

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)
        return None

    async def aauthenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Django's aauthenticate() asks every backend for this; Axes' own has none.
        await sync_to_async(self.authenticate)(request, username, password, **kwargs)


def _locked_until(request: HttpRequest, credentials: dict[str, Any] | None) -> datetime:
    """The last failure of this user name or address, plus the cool-off: the lock ends then
    (failures during the lock do not prolong it, AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT)."""
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None)
    last = AccessAttempt.objects.filter(Q(username=username) | Q(ip_address=address)).aggregate(
        last=Max("attempt_time")
    )["last"]
    return (last or timezone.now()) + (get_cool_off(request) or timedelta(0))


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None,
    credentials: dict[str, Any] | None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page's own look, saying until when (429)."""
    until = _locked_until(request, credentials)
    seconds = max(0, math.ceil((until - timezone.now()).total_seconds()))
    # The admin signs in on the same login page (ctiboard.accounts.login.admin_login).
    response = render(
        request,
        "registration/locked_out.html",
        {"until": until, "minutes": max(1, math.ceil(seconds / 60))},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
