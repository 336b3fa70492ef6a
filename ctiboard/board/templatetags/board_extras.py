from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.formats import date_format

from ctiboard.calls.models import CallAttempt
from ctiboard.lib.phonenumbers import display

register = template.Library()


@register.filter
def callee(attempt: CallAttempt) -> str:
    """The called number as the board writes it: +49… for external numbers."""
    return display(attempt.callee, external=attempt.callee_context == "global")


@register.filter
def clock(moment: datetime | None) -> str:
    """A state's start: the time of day if it was today, else date and time."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return date_format(local, "H:i")
    return date_format(local, "SHORT_DATETIME_FORMAT")
