"""Django's user admin, with "Sign out everywhere": ends every login session of the chosen
users, and with them their open boards (live.session_ends closes the sockets)."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ctiboard.lib.sessions import end_sessions_of

User = get_user_model()


class BoardUserAdmin(UserAdmin):  # type: ignore[type-arg]
    actions = ["sign_out_everywhere"]

    @admin.action(description=_("Sign out everywhere"), permissions=["change"])
    def sign_out_everywhere(self, request: HttpRequest, queryset: QuerySet) -> None:  # type: ignore[type-arg]
        ended = end_sessions_of(queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("%(count)d session ended.", "%(count)d sessions ended.", ended)
            % {"count": ended},
            messages.SUCCESS,
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, BoardUserAdmin)
