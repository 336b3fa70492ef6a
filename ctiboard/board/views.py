from datetime import timedelta
from typing import cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from ctiboard.cti.client import CallNotFound, CTIError
from ctiboard.pbx import calls
from ctiboard.pbx.models import CallAttempt, Extension, Membership

from .rendering import tile_context
from .viewer import Viewer, membership_for, visible_extensions


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@login_required
@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    memberships = list(Membership.objects.of(request.user).select_related("tenant"))
    if len(memberships) == 1:
        return redirect("board", account=memberships[0].tenant.account)
    return render(request, "board/choose_tenant.html", {"memberships": memberships})


@login_required
@require_GET
def board(request: HtmxHttpRequest, account: str) -> HttpResponse:
    user = cast(User, request.user)
    membership = membership_for(user, account)
    if membership is None:
        raise Http404
    viewer = Viewer.of(membership)
    extensions = visible_extensions(user, membership.tenant)
    context = {
        "viewer": viewer,
        "tenant": membership.tenant,
        "account": account,
        "membership": membership,
        "tiles": [tile_context(extension, viewer) for extension in extensions],
        "other_memberships": Membership.objects.of(user)
        .exclude(pk=membership.pk)
        .select_related("tenant"),
        "attempt": CallAttempt.objects.filter(user=user, tenant=membership.tenant)
        .order_by("-created")
        .first(),
    }
    if request.htmx:
        return render(request, "board/board.html#grid", context)
    return render(request, "board/board.html", context)


def _call_status(
    request: HttpRequest,
    attempt: CallAttempt | None,
    account: str,
    *,
    message: str = "",
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "board/board.html#call-status",
        {"attempt": attempt, "account": account, "message": message},
        status=status,
    )


def _after_post(request: HtmxHttpRequest, response: HttpResponse, account: str) -> HttpResponse:
    # Without htmx (no JavaScript) a form post lands back on the board, which shows the
    # latest call attempt.
    if request.htmx:
        return response
    return HttpResponseRedirect(reverse("board", args=[account]))


@login_required
@require_POST
async def start_call(request: HtmxHttpRequest, account: str) -> HttpResponse:
    # login_required let only authenticated users through.
    user = cast(User, await request.auser())
    membership = await sync_to_async(membership_for)(user, account)
    if membership is None:
        raise Http404
    try:
        target_id = int(request.POST.get("extension", ""))
    except ValueError:
        return _call_status(
            request, None, account, message=_("Choose an extension to call."), status=400
        )
    target = await (
        Extension.objects.visible_to(user).filter(tenant=membership.tenant, pk=target_id).afirst()
    )
    if target is None:
        raise Http404
    if not membership.may_call:
        reason = (
            _("You have no own extension on this PBX, so the board cannot call for you.")
            if membership.own_extension_id is None
            else _("You are not allowed to start calls.")
        )
        return _call_status(request, None, account, message=reason, status=403)
    own = membership.own_extension
    assert own is not None
    if await _over_call_limit(user):
        return _call_status(
            request,
            None,
            account,
            message=_("Too many calls in a short time. Please wait a minute."),
            status=429,
        )
    if own.pk == target.pk:
        return _call_status(
            request, None, account, message=_("That is your own extension."), status=400
        )
    attempt = await CallAttempt.objects.acreate(
        tenant=membership.tenant,
        user=user,
        caller=own.number,
        callee=target.number,
        callee_context=membership.tenant.account,
    )
    attempt = await calls.place(attempt, membership.tenant)
    return _after_post(request, _call_status(request, attempt, account), account)


async def _over_call_limit(user: User) -> bool:
    """Per-user limit across all web processes: counted from the call log itself."""
    since = timezone.now() - timedelta(seconds=settings.CTIBOARD_CALL_RATE_WINDOW)
    recent = await CallAttempt.objects.filter(user=user, created__gte=since).acount()
    return recent >= settings.CTIBOARD_CALL_RATE_LIMIT


@login_required
@require_POST
async def cancel_call(request: HtmxHttpRequest, account: str, attempt_id: int) -> HttpResponse:
    # login_required let only authenticated users through.
    user = cast(User, await request.auser())
    attempt = await (
        CallAttempt.objects.select_related("tenant")
        .filter(pk=attempt_id, user=user, tenant__account=account, tenant__memberships__user=user)
        .afirst()
    )
    if attempt is None:
        raise Http404
    message = ""
    if attempt.cancellable:
        try:
            await calls.cancel(attempt, attempt.tenant)
            message = _("Cancelling…")
        except CallNotFound:
            message = _("The call had already ended.")
        except CTIError as exc:
            message = _("The PBX refused to cancel the call: %(error)s") % {"error": exc}
    return _after_post(request, _call_status(request, attempt, account, message=message), account)
