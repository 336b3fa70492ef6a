"""Phone numbers as people type them, turned into what NFON's CTI API accepts.

The spec wants numbers "without any prefixes like 00 or +": an external number goes out as
its E.164 digits in the ``global`` context (``+49 89 1234-567`` → ``49891234567``), an
extension as its plain number in the K-Account's context.

What counts as what:

- ``+…`` and ``00…`` are international; a single leading ``0`` is a national number of the
  tenant's country (``089 1234567`` → ``49 891234567``);
- anything else is an extension number of the tenant;
- spaces, dashes, slashes, dots and parentheses are decoration; ``(0)`` after the country
  code (``+49 (0)89 …``) is the national trunk prefix that is not dialled internationally.

Plain functions without Django models: the board, the phonebook and its CSV import share them.
"""

import re
from dataclasses import dataclass

from django.utils.translation import gettext as _

# E.164: at most 15 digits including the country code. Fewer than 7 is no real number.
E164_MAX = 15
E164_MIN = 7
EXTENSION_MAX = 16
INPUT_MAX = 40

_ALLOWED = re.compile(r"\+?[0-9 \t\-/().]*")
_TRUNK_ZERO = re.compile(r"^(\s*[0-9]{1,3}\s*[-/.]?\s*)\(\s*0\s*\)")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")


class InvalidNumber(ValueError):
    """The input is no number we could dial; the message says why, in the user's language."""


@dataclass(frozen=True)
class Dialled:
    """A normalised number: digits only, and whether it goes to the ``global`` context."""

    digits: str
    external: bool

    @property
    def display(self) -> str:
        return display(self.digits, external=self.external)


def parse(raw: str, country_code: str = "49") -> Dialled:
    """Normalise what a user typed into a dial field, or raise ``InvalidNumber``."""
    text = raw.strip()
    if not text:
        raise InvalidNumber(_("Enter a number to call."))
    if len(text) > INPUT_MAX:
        raise InvalidNumber(_("That is too long for a phone number."))
    if not _ALLOWED.fullmatch(text):
        raise InvalidNumber(
            _(
                "A phone number may contain only digits, spaces, dashes, slashes, "
                "parentheses and a leading +."
            )
        )
    if not _balanced(text):
        raise InvalidNumber(_("The parentheses in this number do not match."))
    international = text.startswith("+")
    body = text[1:] if international else text
    if international:
        body = _TRUNK_ZERO.sub(r"\1", body, count=1)
    digits = re.sub(r"[^0-9]", "", body)
    if not digits:
        raise InvalidNumber(_("Enter a number to call."))
    if international:
        return _external(digits)
    if digits.startswith("00"):
        return _external(digits[2:])
    if digits.startswith("0"):
        return _external(_country_code(country_code) + digits[1:])
    if len(digits) > EXTENSION_MAX:
        raise InvalidNumber(
            _("For an external number start with +, 00 or 0 (for example +49 89 1234567).")
        )
    return Dialled(digits, external=False)


def normalise(raw: str, country_code: str = "49") -> str:
    """The lookup key of a number (phonebook, call partners): E.164 digits or an extension.

    Returns "" for input that is no number at all, so that nothing matches it.
    """
    try:
        return parse(raw, country_code).digits
    except InvalidNumber:
        return ""


def display(digits: str, *, external: bool) -> str:
    """How the board writes a normalised number: ``+49891234567`` or ``101``."""
    return f"+{digits}" if external and digits else digits


def looks_external(digits: str) -> bool:
    """For a number the PBX reported without its context: E.164 digits, or an extension?"""
    return len(digits) >= E164_MIN and digits.isdigit() and not digits.startswith("0")


def _external(e164: str) -> Dialled:
    if e164.startswith("0"):
        raise InvalidNumber(_("A country code never starts with 0."))
    if len(e164) < E164_MIN:
        raise InvalidNumber(_("That number is too short."))
    if len(e164) > E164_MAX:
        raise InvalidNumber(_("That number is too long: at most 15 digits with country code."))
    return Dialled(e164, external=True)


def _country_code(value: str) -> str:
    code = value.strip().lstrip("+")
    if not _COUNTRY_CODE.fullmatch(code):
        raise InvalidNumber(_("The PBX has no valid country code for national numbers."))
    return code


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
            if depth > 1:
                return False
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0
