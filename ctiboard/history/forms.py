from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ctiboard.calls.models import Outcome
from ctiboard.tenancy.models import Extension, ExtensionGroup

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

DIRECTIONS = [("", _("Any direction")), ("inbound", _("Inbound")), ("outbound", _("Outbound"))]


# Days a filter may name. Python's calendar ends at 9999-12-31, and the day after the end of a
# period must exist as an aware datetime: 9999-12-31 answered 500. Human ranges, so that a typo
# is told, not silently searched.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)


class _DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self) -> None:
        # The browser's date picker keeps to the same range.
        super().__init__(
            format="%Y-%m-%d", attrs={"min": FIRST_DAY.isoformat(), "max": LAST_DAY.isoformat()}
        )


def _day_field(label: "StrOrPromise") -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        widget=_DateInput(),
        validators=[MinValueValidator(FIRST_DAY), MaxValueValidator(LAST_DAY)],
    )


def start_of(day: date) -> datetime:
    """Midnight at the start of ``day`` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


class PeriodForm(forms.Form):
    date_from = _day_field(_("From"))
    date_to = _day_field(_("To"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end lies before the start."))
        return cleaned

    def value(self, name: str) -> Any:
        """The cleaned value of a field that validated (filters with errors are left out)."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) if name not in self.errors else None

    def period(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) of the chosen days (both inclusive), or None where open."""
        start, end = self.value("date_from"), self.value("date_to")
        return (
            start_of(start) if start else None,
            start_of(end + timedelta(days=1)) if end else None,
        )


class HistoryFilter(PeriodForm):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    extension = forms.ModelChoiceField(
        label=_("Extension"),
        queryset=Extension.objects.none(),
        required=False,
        empty_label=_("All extensions"),
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        required=False,
        choices=[("", _("Any outcome")), *Outcome.choices],
    )
    direction = forms.ChoiceField(label=_("Direction"), required=False, choices=DIRECTIONS)

    def __init__(self, data: Any, *, extensions: QuerySet[Extension]) -> None:
        super().__init__(data)
        # Only what the user may see can be chosen: another id is an invalid choice.
        field = self.fields["extension"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = extensions


class AnalyticsFilter(PeriodForm):
    group = forms.ModelChoiceField(
        label=_("Group"),
        queryset=ExtensionGroup.objects.none(),
        required=False,
        empty_label=_("All my extensions"),
    )

    def __init__(self, data: Any, *, groups: QuerySet[ExtensionGroup]) -> None:
        super().__init__(data)
        field = self.fields["group"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = groups
