"""The command-line flags that shape simulated traffic; `simulate` and `demo` share them."""

from argparse import ArgumentParser
from dataclasses import fields
from typing import Any

from ctiboard.simulator.model import PROFILES, Oddities

ODDITIES = tuple(field.name for field in fields(Oddities))


def add_profile_arguments(parser: ArgumentParser, *, default: str) -> None:
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=default,
        help=(
            f"spec: only what NFON's spec documents; realistic: also what real NFON traffic "
            f"does ({', '.join(name for name in PROFILES['realistic'])}) (default: {default})"
        ),
    )
    parser.add_argument(
        "--oddity",
        action="append",
        default=[],
        choices=ODDITIES,
        help="switch one real-traffic oddity on, on top of the profile (repeatable)",
    )
    parser.add_argument(
        "--no-extended-presence",
        action="store_false",
        dest="extended_presence",
        help="tenants without NFON's extended presence: only available/offline",
    )


def tenant_options(options: dict[str, Any]) -> dict[str, Any]:
    """``Simulator.add_tenant`` keyword arguments for the parsed flags."""
    oddities = {**PROFILES[options["profile"]], **dict.fromkeys(options["oddity"], True)}
    return {"oddities": oddities, "extended_presence": options["extended_presence"]}
