"""Rights changed by any path (admin, shell, bulk action): open boards recompute what they show.
A login session ended (logout, new password, deactivation, deleted): its sockets close
(session_ends). And the admin's re-sync request reaches the worker. Connected here, so tenancy
sends nothing."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from ctiboard.lib.sessions import session_model
from ctiboard.tenancy.models import ExtensionGroup, Membership
from ctiboard.tenancy.signals import resync_requested

from . import publish, session_ends


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
# A new password or a deactivation ends his login sessions, and with them his sockets.
_WATCHED = (*USER_RIGHTS, "password")
_BEFORE = "_ctiboard_user_before"


def _user_saving(sender: Any, instance: Any, raw: bool, update_fields: Any, **kwargs: Any) -> None:
    before = None
    if not raw and instance.pk is not None and set(update_fields or _WATCHED) & {*_WATCHED}:
        before = sender.objects.filter(pk=instance.pk).values_list(*_WATCHED).first()
    setattr(instance, _BEFORE, before)


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if created or before is None:
        return
    was = dict(zip(_WATCHED, before, strict=True))
    if was["is_active"] and not instance.is_active:
        session_ends.deactivated(instance.pk)
    elif instance.password != was["password"]:
        session_ends.password_changed(instance.pk)
    # Deactivating a user must end his open boards; other saves leave them alone.
    if any(getattr(instance, name) != was[name] for name in USER_RIGHTS):
        publish.visibility_changed(instance.pk)


def _session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    session_ends.session_deleted(instance.session_key, instance.get_decoded())


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
    post_delete.connect(_session_deleted, sender=session_model(), dispatch_uid="session-deleted")
