"""Per-user board settings: favourite extensions and what happens when the own phone rings."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ctiboard.tenancy.models import Extension


class Favourite(models.Model):
    """An extension a user pinned to the top of his board."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="board_favourites"
    )
    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "extension"], name="unique_favourite"),
        ]
        verbose_name = _("favourite")
        verbose_name_plural = _("favourites")

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.extension_id}"


class CrmOpen(models.TextChoices):
    CLICK = "click", _("Only when I click")
    RING = "ring", _("When my phone rings")
    ANSWER = "answer", _("When I answer")


class BoardPreference(models.Model):
    """What the board does when the user's own extension rings."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="board_preference"
    )
    notify = models.BooleanField(
        _("notification when my phone rings"),
        default=False,
        help_text=_("A browser notification with the caller's number and name."),
    )
    sound = models.BooleanField(
        _("sound when my phone rings"),
        default=False,
        help_text=_("Different tones for internal, external and VIP callers."),
    )
    crm_open = models.CharField(
        _("open the caller in the CRM"),
        max_length=10,
        choices=CrmOpen.choices,
        default=CrmOpen.CLICK,
    )

    class Meta:
        verbose_name = _("board preference")
        verbose_name_plural = _("board preferences")

    def __str__(self) -> str:
        return f"board preference of {self.user_id}"

    @classmethod
    def of(cls, user_id: int) -> "BoardPreference":
        """The stored preference, or the defaults (unsaved) for a user who never chose."""
        return cls.objects.filter(user_id=user_id).first() or cls(user_id=user_id)
