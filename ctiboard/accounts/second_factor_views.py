"""The staff's TOTP page: set up an authenticator app once, then show its code per sign-in."""

import base64

import segno
from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from .second_factor import needs_second_factor


class CodeForm(forms.Form):
    token = forms.CharField(
        label=gettext_lazy("Code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    target = _next(request)
    if not needs_second_factor(request):
        return HttpResponseRedirect(target)
    confirmed = TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()
    # Until an app is confirmed, one pending device keeps its secret across reloads.
    pending = None if confirmed else _pending_device(user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"].strip()
        if pending is not None:
            device = pending if pending.verify_token(token) else None
            if device is not None:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
        else:
            device = match_token(user, token)
        if device is not None:
            otp_login(request, device)
            return HttpResponseRedirect(target)
        form.add_error("token", _("That code is not valid. Wait for the next one and try again."))
    context = {"form": form, "next": target, "setup": pending is not None}
    if pending is not None:
        context["qr_code"] = segno.make(pending.config_url, error="m").svg_data_uri(scale=5)
        context["secret"] = base64.b32encode(pending.bin_key).decode()
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/two_factor.html", context, status=status)


def _pending_device(user: User) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")
