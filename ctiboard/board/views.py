from typing import Any, cast

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from ctiboard.calls import originate
from ctiboard.calls.attempts import callee_name
from ctiboard.calls.models import CallAttempt
from ctiboard.calls.placing import CallRefused, gate, place
from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.cti.client import CallNotFound, CTIError
from ctiboard.lib import phonenumbers
from ctiboard.tenancy.admin_scope import administered_tenants
from ctiboard.tenancy.models import (
    Extension,
    Membership,
    Tenant,
    membership_for,
)

from . import forms
from .consumers import favourites_changed
from .grid import MODES, SORTS, BoardView, Grid, build_grid, line_choices, presence_choices
from .grid_html import grid_context, render_spliced
from .models import BoardPreference, Favourite
from .rendering import call_status_context, shows_result
from .ringing import ring_of


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    # Pages without <link rel="icon"> (the admin's, a JSON answer) make browsers ask here.
    return HttpResponseRedirect(static("favicon.ico"))


@login_required
@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    memberships = list(Membership.objects.of(request.user).select_related("tenant"))
    if len(memberships) == 1:
        return redirect("board", account=memberships[0].tenant.account)
    # An administrator without a board of his own (the demo's admin, a new installation's
    # superuser) is shown the way to one instead of a dead end.
    administered = administered_tenants(request.user) if not memberships else None
    return render(
        request,
        "board/choose_tenant.html",
        {"memberships": memberships, "administered": administered},
    )


def _membership(request: HttpRequest, account: str) -> tuple[User, Membership]:
    # login_required let only authenticated users through.
    user = cast(User, request.user)
    membership = membership_for(user, account)
    if membership is None:
        raise Http404
    return user, membership


def board_context(
    request: HttpRequest, user: User, membership: Membership, view: BoardView
) -> dict[str, Any]:
    """The whole page; the partials (grid, dial, preferences) take what they need from it."""
    grid = build_grid(user, membership, view)
    tenant = membership.tenant
    attempt = CallAttempt.objects.filter(user=user, tenant=tenant).order_by("-created").first()
    if not shows_result(attempt):
        attempt = None  # a result of long ago is no news
    own = next((tile for tile in grid.tiles() if tile.mine), None)
    return {
        **grid_context(grid),
        **call_status_context(attempt, tenant, _callee_name(grid, attempt)),
        "viewer": grid.viewer,
        "tenant": tenant,
        "membership": membership,
        "other_memberships": Membership.objects.of(user)
        .exclude(pk=membership.pk)
        .select_related("tenant"),
        "ring": ring_of(own.ext, grid.viewer, own.contact) if own is not None else None,
        "prefs": forms.PreferenceForm(instance=BoardPreference.of(user.pk)),
        "line_choices": line_choices(),
        "presence_choices": presence_choices(),
        "sort_choices": list(SORTS.items()),
        "mode_links": [(mode, label, view.with_mode(mode)) for mode, label in MODES.items()],
        "exit_wallboard": view.with_mode(""),
    }


def _callee_name(grid: Grid, attempt: CallAttempt | None) -> str:
    """As the call toast names the callee: a colleague by his tile (the grid holds every tile
    the user sees); a number by the phonebook, a call detail line-only viewers never get."""
    if attempt is None:
        return ""
    if attempt.callee_context != "global":
        return next((t.ext.name for t in grid.tiles() if t.ext.number == attempt.callee), "")
    if not grid.viewer.details:
        return ""
    contact = lookup_contacts(grid.viewer.tenant, [attempt.callee]).get(attempt.callee)
    return contact.name if contact else ""


@login_required
@require_GET
def board(request: HtmxHttpRequest, account: str) -> HttpResponse:
    user, membership = _membership(request, account)
    view = BoardView.from_query(request.GET)
    if request.htmx and not request.htmx.history_restore_request:
        grid = build_grid(user, membership, view)
        return render_spliced(request, "board/board.html#grid", grid_context(grid), grid)
    context = board_context(request, user, membership, view)
    return render_spliced(request, "board/board.html", context, context["grid"])


# --- click-to-call ----------------------------------------------------------------------


def _call_status(
    request: HttpRequest,
    attempt: CallAttempt | None,
    tenant: Tenant,
    *,
    message: str = "",
    status: int = 200,
    partner_name: str = "",
) -> HttpResponse:
    return render(
        request,
        "board/board.html#call-status",
        call_status_context(attempt, tenant, partner_name, message=message),
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
            request, None, membership.tenant, message=_("Choose an extension to call."), status=400
        )
    target = await (
        Extension.objects.visible_to(user).filter(tenant=membership.tenant, pk=target_id).afirst()
    )
    if target is None:
        raise Http404
    try:
        gate(membership, target)
        attempt = await place(user, membership, target.number, membership.tenant.account)
    except CallRefused as refused:
        return _call_status(
            request, None, membership.tenant, message=refused.message, status=refused.status
        )
    response = _call_status(request, attempt, membership.tenant, partner_name=target.name)
    return _after_post(request, response, account)


def _dial_form(
    request: HttpRequest,
    membership: Membership,
    *,
    value: str = "",
    error: str = "",
    status: int = 200,
    attempt: CallAttempt | None = None,
    partner_name: str = "",
) -> HttpResponse:
    context = {
        "account": membership.tenant.account,
        "membership": membership,
        "dial_value": value,
        "dial_error": error,
    }
    html = render_to_string("board/board.html#dial", context, request=request)
    if attempt is not None:
        # The call's progress goes where every call's progress goes.
        html += render_to_string(
            "board/board.html#call-status",
            call_status_context(attempt, membership.tenant, partner_name, oob=True),
            request=request,
        )
    return HttpResponse(html, status=status)


def _dial_target(user: User, membership: Membership, typed: str) -> tuple[str, str, str]:
    """(callee, callee context, phonebook name) for what the user typed; or CallRefused."""
    tenant: Tenant = membership.tenant
    try:
        number = phonenumbers.parse(typed, tenant.country_code)
    except phonenumbers.InvalidNumber as exc:
        raise CallRefused(str(exc), 400) from None
    if number.external:
        gate(membership, number.digits)
        contact = (
            lookup_contacts(tenant, [number.digits]).get(number.digits)
            if membership.sees_call_details
            else None
        )
        return number.digits, "global", contact.name if contact else ""
    # An extension: the same answer whether it does not exist or is not the user's to see.
    target = Extension.objects.visible_to(user).filter(tenant=tenant, number=number.digits).first()
    if target is None:
        raise CallRefused(
            _(
                "There is no extension %(number)s on your board. For an external number "
                "start with +, 00 or 0."
            )
            % {"number": number.digits},
            400,
        )
    gate(membership, target)
    return target.number, tenant.account, target.name


@login_required
@require_POST
async def dial(request: HtmxHttpRequest, account: str) -> HttpResponse:
    """The dial field: an external number or an extension, typed the way people write them."""
    user = cast(User, await request.auser())
    membership = await sync_to_async(membership_for)(user, account)
    if membership is None:
        raise Http404
    typed = request.POST.get("number", "")[: phonenumbers.INPUT_MAX * 2]
    try:
        gate(membership)
        callee, context, name = await sync_to_async(_dial_target)(user, membership, typed)
        attempt = await place(user, membership, callee, context)
    except CallRefused as refused:
        if request.htmx:
            return _dial_form(
                request, membership, value=typed, error=refused.message, status=refused.status
            )
        return await sync_to_async(_board_with_dial_error)(
            request, user, membership, typed, refused
        )
    if request.htmx:
        return _dial_form(request, membership, attempt=attempt, partner_name=name)
    return HttpResponseRedirect(reverse("board", args=[account]))


def _board_with_dial_error(
    request: HttpRequest, user: User, membership: Membership, typed: str, refused: CallRefused
) -> HttpResponse:
    context = board_context(request, user, membership, BoardView())
    context.update(dial_value=typed, dial_error=refused.message)
    return render(request, "board/board.html", context, status=refused.status)


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
            await originate.cancel(attempt, attempt.tenant)
            message = _("Cancelling…")
        except CallNotFound:
            message = _("The call had already ended.")
        except CTIError as exc:
            message = _("The PBX refused to cancel the call: %(error)s") % {"error": exc}
    response = _call_status(
        request,
        attempt,
        attempt.tenant,
        message=message,
        partner_name=await sync_to_async(callee_name)(attempt),
    )
    return _after_post(request, response, account)


# --- the user's own board settings ------------------------------------------------------


def _grid_response(request: HtmxHttpRequest, grid: Grid, account: str) -> HttpResponse:
    if request.htmx:
        return render(request, "board/board.html#grid", grid_context(grid))
    url = reverse("board", args=[account])
    query = grid.view.querystring
    return HttpResponseRedirect(f"{url}?{query}" if query else url)


@login_required
@require_POST
def favourite(request: HtmxHttpRequest, account: str) -> HttpResponse:
    """Pin the extension posted to the top of the board, or unpin it; answers with the grid."""
    user, membership = _membership(request, account)
    try:
        extension_id = int(request.POST.get("extension", ""))
    except ValueError:
        return HttpResponseBadRequest(_("Choose an extension to pin."))
    extension = (
        Extension.objects.visible_to(user).filter(tenant=membership.tenant, pk=extension_id).first()
    )
    if extension is None:
        raise Http404
    pinned, created = Favourite.objects.get_or_create(user=user, extension=extension)
    if not created:
        pinned.delete()
    favourites_changed(user.pk)
    # The filter form's fields come along (hx-include): the grid keeps the user's view.
    grid = build_grid(user, membership, BoardView.from_query(request.POST))
    return _grid_response(request, grid, account)


@login_required
@require_POST
def preferences(request: HtmxHttpRequest, account: str) -> HttpResponse:
    user, membership = _membership(request, account)
    form = forms.PreferenceForm(request.POST, instance=BoardPreference.of(user.pk))
    saved = form.is_valid()
    if saved:
        form.save()
    if not request.htmx:
        return HttpResponseRedirect(reverse("board", args=[account]))
    return render(
        request,
        "board/board.html#prefs",
        {"prefs": form, "saved": saved, "account": account, "tenant": membership.tenant},
        status=200 if saved else 400,
    )
