"""The login page: the password form unless it is turned off, and the company sign-in button."""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET


class LoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.CTIBOARD_PASSWORD_LOGIN:
            # No form is checked: the page again, with only the company sign-in.
            return self.render_to_response(self.get_context_data(), status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["password_login"] = settings.CTIBOARD_PASSWORD_LOGIN
        context["company_sign_in"] = settings.CTIBOARD_OIDC
        context["provider_name"] = settings.CTIBOARD_OIDC_PROVIDER_NAME
        return context


@require_GET
def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin signs in on the one login page: its rules (password off, two-factor) hold."""
    target = request.GET.get("next") or reverse("admin:index")
    return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': target})}")
