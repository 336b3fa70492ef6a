"""The channel-layer groups live messages go to."""


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def ingest_group(tenant_id: int) -> str:
    """Joined by the ingest worker while it streams the tenant (whichever worker holds it)."""
    return f"ingest.{tenant_id}"


def api_token_group(token_id: int) -> str:
    """Joined by the gateway's open streams of one API token: revoking it ends them."""
    return f"apitoken.{token_id}"
