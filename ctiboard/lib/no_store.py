"""``Cache-Control: no-store`` on every response Django renders, unless the view set its own.

Every page of ctiboard is personal (the board, its fragments, call history, the CSV export,
analytics, the admin): no browser cache, proxy or shared computer may keep a copy. Static files
never get here (WhiteNoise answers them earlier, cacheable for a year). A view that wants
caching says so with its own ``Cache-Control``.
"""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import sync_and_async_middleware

Handler = Callable[[HttpRequest], HttpResponseBase]
AsyncHandler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _no_store(response: HttpResponseBase) -> HttpResponseBase:
    if not response.has_header("Cache-Control"):
        # no-cache, no-store, must-revalidate, private, max-age=0 and an Expires in the past.
        add_never_cache_headers(response)
    return response


@sync_and_async_middleware
def no_store_middleware(get_response: Handler | AsyncHandler) -> Handler | AsyncHandler:
    if iscoroutinefunction(get_response):
        async_response = get_response

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            return _no_store(await async_response(request))  # type: ignore[misc]

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        return _no_store(get_response(request))  # type: ignore[arg-type]

    return sync_middleware
