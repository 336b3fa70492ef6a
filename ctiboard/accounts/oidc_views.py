"""Company sign-in: to the provider (code flow with PKCE) and back."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .provider import ProviderUnavailable, provider


def _failed(request: HttpRequest) -> HttpResponse:
    messages.error(request, _("Sign-in with your company account failed. Please try again."))
    return HttpResponseRedirect(reverse("login"))


class SignInStart(OIDCAuthenticationRequestView):
    def __init__(self, **kwargs: Any) -> None:
        # The library reads the endpoint here; ours may need the discovery document first.
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.CTIBOARD_OIDC:
            raise Http404
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider().authorization_endpoint
        except ProviderUnavailable:
            return _failed(request)
        response: HttpResponse = super().get(request)
        return response


class SignInCallback(OIDCAuthenticationCallbackView):
    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.CTIBOARD_OIDC:
            raise Http404
        response: HttpResponse = super().get(request)
        return response

    def login_failure(self) -> HttpResponse:
        return _failed(self.request)
