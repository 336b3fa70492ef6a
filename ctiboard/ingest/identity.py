"""Which worker this process is: an identity that survives restarts, never shared by two.

A restarted worker must find its own leases (``holder`` = its id) to resume its tenants at
once instead of waiting out the lease ttl, so the id is stable: ``CTIBOARD_WORKER_ID`` if the
deploy gives one, else ``<hostname>:port<metrics port>`` or ``<hostname>:<hash of the working
directory>``. Two live processes must never share it: a process finding the identity's
heartbeat live (and its owner not provably dead) waits until it goes stale; if it stays live,
an explicit id is refused and a derived one takes a suffix (``#2``, ``#3``, ...).
"""

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from .leases import Leases, Predecessor

logger = logging.getLogger(__name__)

ENV_VAR = "CTIBOARD_WORKER_ID"
_MAX_SUFFIX = 9


class IdentityClash(RuntimeError):
    """Another live process runs under this worker id."""


@dataclass(frozen=True)
class Identity:
    worker_id: str
    explicit: bool


def configured() -> Identity:
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        return Identity(explicit[:90], explicit=True)
    host = socket.gethostname()[:60]
    port = settings.CTIBOARD_METRICS_PORT
    where = f"port{port}" if port else hashlib.sha1(os.getcwd().encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
    return Identity(f"{host}:{where}", explicit=False)


def proven_dead(predecessor: Predecessor) -> bool:
    """The earlier incarnation ran on this host and its process is gone (or is us: a container
    restarted with the same pid). Hostnames must be unique among live hosts and containers."""
    if predecessor.hostname != socket.gethostname()[:255]:
        return False
    if predecessor.pid == os.getpid():
        return True
    try:
        os.kill(predecessor.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # somebody's process has that pid
    return False


def claim(
    identity: Identity,
    make_leases: Callable[[str], Leases],
    *,
    wait: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Leases:
    """Claim the identity (or, derived, a suffixed one); synchronous, in a database thread."""
    for number in range(1, 1 + (1 if identity.explicit else _MAX_SUFFIX)):
        worker_id = identity.worker_id if number == 1 else f"{identity.worker_id}#{number}"
        leases = make_leases(worker_id)
        deadline = time.monotonic() + wait
        while True:
            predecessor = leases.predecessor()
            dead = predecessor is not None and proven_dead(predecessor)
            if predecessor is None or not predecessor.live or dead:
                if leases.claim(predecessor, adopt=dead):
                    if predecessor is not None:
                        logger.info(
                            "worker %s: %s the leases of the previous run (pid %d)",
                            worker_id,
                            "resuming" if dead else "waiting out",
                            predecessor.pid,
                        )
                    return leases
                continue  # another process claimed it just now: look again
            if time.monotonic() >= deadline:
                break
            sleep(0.25)
        logger.warning(
            "worker id %s is in use by a live process (%s, pid %d)",
            worker_id,
            predecessor.hostname,
            predecessor.pid,
        )
    raise IdentityClash(
        f"worker id {identity.worker_id} is in use by a live ingest worker"
        + ("" if identity.explicit else f" (and its suffixes up to #{_MAX_SUFFIX})")
        + f"; give each worker its own {ENV_VAR}"
    )
