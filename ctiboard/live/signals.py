"""Rights changed by any path (admin, shell, bulk action): open boards recompute what they show.
And the admin's re-sync request reaches the worker. Connected here, so tenancy sends nothing."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from ctiboard.tenancy.models import ExtensionGroup, Membership
from ctiboard.tenancy.signals import resync_requested

from . import publish


def _membership_saved(sender: Any, instance: Membership, **kwargs: Any) -> None:
    publish.visibility_changed(instance.user_id)


def _membership_links_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if isinstance(instance, Membership):
        publish.visibility_changed(instance.user_id)
    elif isinstance(instance, ExtensionGroup):
        for user_id in set(instance.memberships.values_list("user_id", flat=True)):
            publish.visibility_changed(user_id)


def _group_deleted(sender: Any, instance: ExtensionGroup, **kwargs: Any) -> None:
    # Deleting a group cascades to its link rows without m2m_changed: however it is deleted
    # (one, a bulk action, with its tenant), its members' boards must drop its extensions.
    for user_id in set(instance.memberships.values_list("user_id", flat=True)):
        publish.visibility_changed(user_id)


# What of the user himself decides what his boards show (the rest is in his memberships):
# a login (last_login), a new name, e-mail or password changes none of it.
USER_RIGHTS = ("is_active", "is_staff", "is_superuser")
_RIGHTS_BEFORE = "_ctiboard_rights_before"


def _user_saving(sender: Any, instance: Any, raw: bool, update_fields: Any, **kwargs: Any) -> None:
    before = None
    if not raw and instance.pk is not None and set(update_fields or USER_RIGHTS) & {*USER_RIGHTS}:
        before = sender.objects.filter(pk=instance.pk).values_list(*USER_RIGHTS).first()
    setattr(instance, _RIGHTS_BEFORE, before)


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    # Deactivating a user must end his open boards; other saves leave them alone.
    before = instance.__dict__.pop(_RIGHTS_BEFORE, None)
    if created or before is None:
        return
    if tuple(getattr(instance, name) for name in USER_RIGHTS) != before:
        publish.visibility_changed(instance.pk)


def _resync_requested(sender: Any, tenant_id: int, **kwargs: Any) -> None:
    publish.resync_requested(tenant_id)


def connect() -> None:
    resync_requested.connect(_resync_requested, dispatch_uid="resync-requested")
    post_save.connect(_membership_saved, sender=Membership, dispatch_uid="membership-saved")
    post_delete.connect(_membership_saved, sender=Membership, dispatch_uid="membership-deleted")
    for through in (
        Membership.extensions.through,
        Membership.groups.through,
        ExtensionGroup.extensions.through,
    ):
        m2m_changed.connect(
            _membership_links_changed, sender=through, dispatch_uid=f"links-{through.__name__}"
        )
    pre_delete.connect(_group_deleted, sender=ExtensionGroup, dispatch_uid="group-deleted")
    pre_save.connect(_user_saving, sender=get_user_model(), dispatch_uid="user-saving")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="user-saved")
