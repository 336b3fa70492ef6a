from django import forms

from .models import BoardPreference


class PreferenceForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = BoardPreference
        fields = ["notify", "sound", "crm_open"]
