"""The open SSE streams of a tenant: one queue of pre-serialised frames and directives each."""

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger("ctiboard.simulator")

StreamKind = Literal["states", "calls", "originate"]
STREAM_KINDS: tuple[StreamKind, ...] = ("states", "calls", "originate")
# A client this far behind has lost the plot; its stream is closed so it reconnects and
# re-bootstraps instead of the simulator buffering without bound.
MAX_BACKLOG = 10_000


@dataclass(frozen=True, slots=True)
class Directive:
    """A stream instruction queued behind the events already pending for that stream."""

    action: Literal["close", "truncate", "stall"]
    payload: bytes = b""  # truncate: the partial frame to send before closing


CLOSE = Directive("close")
STALL = Directive("stall")
StreamItem = bytes | Directive


class Subscription:
    """One open SSE stream's queue: pre-serialised frames and directives."""

    __slots__ = ("_group", "kind", "overflowed", "queue", "released")

    def __init__(self, group: set["Subscription"], kind: StreamKind) -> None:
        self._group = group
        self.kind = kind
        self.queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self.released = asyncio.Event()  # set to end a stall
        self.overflowed = False
        group.add(self)

    def push(self, item: StreamItem) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)
            logger.warning("closing a %s stream that fell %d events behind", self.kind, MAX_BACKLOG)
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        self._group.discard(self)
