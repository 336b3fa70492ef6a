"""The user's own API tokens: list, create (the secret is shown once), revoke."""

from datetime import timedelta
from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from ctiboard.tenancy.models import Membership, membership_for

from .forms import TokenForm
from .models import ApiToken


def _membership(request: HttpRequest, account: str) -> tuple[User, Membership]:
    user = cast(User, request.user)  # login_required let only authenticated users through
    membership = membership_for(user, account)
    if membership is None:
        raise Http404
    return user, membership


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest, account: str) -> HttpResponse:
    user, membership = _membership(request, account)
    secret = ""
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        _, secret = ApiToken.issue(
            user=user,
            tenant=membership.tenant,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        form = TokenForm()
    context = {
        "tenant": membership.tenant,
        "membership": membership,
        "tokens": ApiToken.objects.filter(user=user, tenant=membership.tenant),
        "form": form,
        "secret": secret,
        "base_url": request.build_absolute_uri(f"/cti/{account}/v1"),
    }
    # No caching anywhere of the page that shows a secret.
    response = render(request, "gateway/tokens.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke(request: HttpRequest, account: str, token_id: int) -> HttpResponse:
    user, membership = _membership(request, account)
    token = ApiToken.objects.filter(pk=token_id, user=user, tenant=membership.tenant).first()
    if token is None:
        raise Http404
    token.revoke()
    return HttpResponseRedirect(reverse("api_tokens", args=[account]))
