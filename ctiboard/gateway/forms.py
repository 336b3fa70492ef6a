from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ApiToken


class TokenForm(forms.ModelForm):  # type: ignore[type-arg]
    expires_in_days = forms.IntegerField(
        label=_("expires after (days)"),
        required=False,
        min_value=1,
        max_value=3650,
        help_text=_("Empty: until revoked."),
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scope"]
