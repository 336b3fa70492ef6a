"""Signals of the tenancy app; ctiboard.live turns them into messages to the ingest worker."""

from django.dispatch import Signal

# The admin asks for a tenant's extension list to be re-read now (sent with tenant_id=).
resync_requested = Signal()
