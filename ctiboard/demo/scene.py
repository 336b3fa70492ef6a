"""The demo's opening scene on the simulated PBX: a board that looks like a working day from the
first look (calls with phonebook callers, a VIP ringing, colleagues away or in do-not-disturb),
before the generated traffic takes over."""

import asyncio
import logging

from ctiboard.simulator.model import PhoneBehaviour
from ctiboard.simulator.tenant import TenantState

logger = logging.getLogger(__name__)

# Indices in extension order (demo.company's departments: Sales 0-11, Support 12-25,
# Accounting 26-33, Management 34-37, Logistics 38-). Alice's and Bob's first colleagues and
# Accounting (the board's first section, by name) stay free for trying click-to-call.
PRESENCES = ((8, "away"), (9, "dnd"), (15, "away"), (24, "busy"), (36, "dnd"), (41, "away"))
# Offline phones (a laptop closed, a desk phone unplugged).
OFFLINE = (44,)
# Calls: caller (external number or an index), called index, seconds ringing, seconds talking
# (None: rings until the caller gives up). External callers are in the demo phonebook.
CALLS: tuple[tuple[str | int, int, float, float | None], ...] = (
    ("498947110815", 13, 2.0, 540.0),  # a VIP on the phone with Support
    ("493022334455", 34, 1.0, 420.0),  # the tax advisers with Management
    ("4312345678", 39, 1.5, 300.0),  # the logistics partner in Vienna with Logistics
    ("494033445566", 14, 45.0, 300.0),  # a VIP ringing at Support, answered after a while
    (35, 16, 3.0, 360.0),  # Management asks Support
    ("49221987654", 17, 20.0, None),  # a caller waiting at Support gives up
)
OUTBOUND = ((20, "41445556677", 240.0),)  # Support calls the insurer in Zurich

# How long to wait for the ingest worker's call stream: calls before it would show no partner.
WAIT_FOR_WORKER = 30.0


async def opening_scene(state: TenantState) -> None:
    numbers = sorted((ext.number for ext in state.extension_list), key=lambda n: (len(n), n))
    for _ in range(int(WAIT_FOR_WORKER / 0.2)):
        if state.subscribers["calls"]:
            break
        await asyncio.sleep(0.2)

    def number(index: int) -> str | None:
        return numbers[index] if index < len(numbers) else None

    for index, presence in PRESENCES:
        if (n := number(index)) is not None:
            state.set_state(n, presence=presence)
    for index in OFFLINE:
        if (n := number(index)) is not None:
            state.set_behaviour(n, PhoneBehaviour(mode="offline"))
    for caller, index, ring, talk in CALLS:
        callee = number(index)
        source = number(caller) if isinstance(caller, int) else caller
        if callee is None or source is None:
            continue
        call = state.ring(source, [callee])
        if talk is None:
            call.timers.append(state.later(ring, _hangup, state, call.uuid))
        else:
            call.timers.append(state.later(ring, _answer, state, call.uuid))
            call.timers.append(state.later(ring + talk, _hangup, state, call.uuid))
    for index, remote, talk in OUTBOUND:
        if (n := number(index)) is not None:
            call = state.dial_out(n, remote)
            call.timers.append(state.later(1.5, state.remote_ringing, call))
            call.timers.append(state.later(4.0, _answer, state, call.uuid))
            call.timers.append(state.later(4.0 + talk, _hangup, state, call.uuid))
    logger.info("demo: opening scene set")


def _answer(state: TenantState, uuid: str) -> None:
    call = state.calls.get(uuid)
    if call is not None and not call.answered:
        state.answer(uuid)


def _hangup(state: TenantState, uuid: str) -> None:
    call = state.calls.get(uuid)
    if call is not None:
        state.hangup(call)
