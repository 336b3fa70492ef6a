"""A revoked, changed or deleted API token: its open streams check it within the second."""

from typing import Any

from django.db.models.signals import post_delete, post_save

from ctiboard.live import publish

from .models import ApiToken


def _token_changed(sender: Any, instance: ApiToken, created: bool = False, **kwargs: Any) -> None:
    if not created:
        publish.api_token_changed(instance.pk)


def connect() -> None:
    post_save.connect(_token_changed, sender=ApiToken, dispatch_uid="api-token-saved")
    post_delete.connect(_token_changed, sender=ApiToken, dispatch_uid="api-token-deleted")
