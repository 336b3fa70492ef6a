"""Staff who signed in with a password show a TOTP code before the admin lets them in.

Staff who signed in through the company's provider are not asked: its sign-in (and its own
multi-factor policy) vouches for them. The demo turns the rule off (CTIBOARD_STAFF_2FA).
"""

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import sync_and_async_middleware

COMPANY_SIGN_IN = "ctiboard.accounts.backend.CompanySignIn"


def needs_second_factor(request: HttpRequest) -> bool:
    """Whether this staff session must still show a code (needs django-otp's middleware)."""
    user = request.user
    if not settings.CTIBOARD_STAFF_2FA or not user.is_authenticated or not user.is_staff:
        return False
    if request.session.get(BACKEND_SESSION_KEY) == COMPANY_SIGN_IN:
        return False
    return not user.is_verified()  # type: ignore[union-attr,attr-defined]


def _detour(request: HttpRequest) -> HttpResponse | None:
    if not request.path.startswith(reverse("admin:index")):
        return None
    # Logging out needs no code: a staff member without his phone must still get out.
    if request.path == reverse("admin:logout") or not needs_second_factor(request):
        return None
    query = urlencode({"next": request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('two_factor')}?{query}")


@sync_and_async_middleware
def StaffSecondFactorMiddleware(  # named like the middleware classes it sits among
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
) -> Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]:
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            # Board pages and fragments are async: only admin paths touch the database here.
            if request.path.startswith(reverse("admin:index")):
                detour = await sync_to_async(_detour)(request)
                if detour is not None:
                    return detour
            return await get_response(request)  # type: ignore[misc]

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _detour(request) or get_response(request)  # type: ignore[return-value]

    return middleware
