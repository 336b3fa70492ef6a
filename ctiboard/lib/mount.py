"""Dispatch HTTP requests under a path prefix to a second ASGI application."""

from typing import Any


class PrefixMount:
    """Send HTTP requests below ``prefix`` to ``mounted``, everything else to ``default``.

    The mounted app sees the prefix as ``root_path`` (ASGI convention), so its own routes
    stay relative: the simulator answers ``/login`` whether it runs alone or in the demo.
    """

    def __init__(self, prefix: str, mounted: Any, default: Any) -> None:
        self.prefix = prefix.rstrip("/")
        self.mounted = mounted
        self.default = default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            scope = dict(scope, root_path=scope.get("root_path", "") + self.prefix)
            await self.mounted(scope, receive, send)
        else:
            await self.default(scope, receive, send)
