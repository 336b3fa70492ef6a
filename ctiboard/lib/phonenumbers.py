"""Phone numbers as people type them, turned into what NFON's CTI API accepts, and back.

The spec wants numbers "without any prefixes like 00 or +": an external number goes out as
its E.164 digits in the ``global`` context (``+49 89 1234-567`` → ``49891234567``), an
extension as its plain number in the K-Account's context.

Google's libphonenumber (the ``phonenumbers`` package) knows every country's numbering plan;
the tenant's country calling code (``Tenant.country_code``, e.g. "49") picks the region whose
plan reads national numbers. What counts as what:

- ``+…``, and the region's international prefix (``00…`` in Europe), are international;
- a national number of the tenant's country: with its trunk prefix where the country has
  one (``089 1234567`` in Germany, ``020 7946 0018`` in the UK), or any number the country's
  plan knows where it has none (``06 6982 1234`` in Italy, ``612 34 56 78`` in Spain);
- anything else is an extension number of the tenant;
- spaces, dashes, slashes, dots and parentheses are decoration; ``(0)`` after the country
  code (``+49 (0)89 …``) is the trunk prefix that is not dialled internationally. Italy keeps
  its leading 0 internationally (``+39 06 …``): libphonenumber knows that.

Shown, a number of the tenant's own country is written the national way (``0351 9715048``),
any other the international way (``+39 06 6982 1234``).

Plain functions without Django models: the board, the history, the phonebook and its CSV
import share them.
"""

import functools
import re
from dataclasses import dataclass

import phonenumbers
from django.utils.translation import gettext as _
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

# E.164: at most 15 digits including the country code. Fewer than 7 is no real number.
E164_MAX = 15
E164_MIN = 7
EXTENSION_MAX = 16
INPUT_MAX = 40

# What people write in a number; libphonenumber would also read letters ("0800-FLOWERS")
# and extensions ("ext. 12"), which a dial field must not guess at.
_ALLOWED = re.compile(r"\+?[0-9 \t\-/().]*")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
# No region: the number must be international (+…).
_NO_REGION = "ZZ"

# Local-only: the area code is missing (a number dialled from within its town).
_TOO_SHORT = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
_TOO_LONG = (ValidationResult.TOO_LONG,)


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


@functools.lru_cache(maxsize=256)
def region_for(country_code: str) -> str:
    """The region whose numbering plan reads national numbers: "49" → "DE", "44" → "GB".

    A calling code shared by several regions gives its main one ("1" → "US"); national
    numbers of all of them read alike. Raises ``InvalidNumber`` for no calling code at all.
    """
    code = country_code.strip().lstrip("+")
    region = (
        phonenumbers.region_code_for_country_code(int(code))
        if _COUNTRY_CODE.fullmatch(code)
        else _NO_REGION
    )
    if region == _NO_REGION:
        raise InvalidNumber(_("The PBX has no valid country code for national numbers."))
    return region


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
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        raise InvalidNumber(_("Enter a number to call."))
    if text.startswith("+") or digits.startswith("00"):
        # International: the tenant's country does not matter (and may be unset).
        return _external(text if text.startswith("+") else "+" + digits[2:])
    try:
        region = region_for(country_code)
    except InvalidNumber:
        # Without the tenant's country only a national number cannot be read.
        if digits.startswith("0"):
            raise
        region = ""
    if region and _is_national(digits, region):
        return _external(text, region)
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


def display(digits: str, *, external: bool, country_code: str = "") -> str:
    """How a normalised number is shown: an extension as it is (``101``); an external number
    nationally if it is of the tenant's country (``country_code``), else internationally.

    ``49891234567`` → ``089 1234567`` for a German tenant, ``+49 89 1234567`` for others.
    """
    if not external or not digits:
        return digits
    return _display(digits, country_code.strip().lstrip("+"))


def e164(digits: str, *, external: bool) -> str:
    """The machine-readable form: ``+49891234567`` for an external number, else the digits."""
    return f"+{digits}" if external and digits else digits


def looks_external(digits: str) -> bool:
    """For a number the PBX reported without its context: E.164 digits, or an extension?"""
    return len(digits) >= E164_MIN and digits.isdigit() and not digits.startswith("0")


@functools.lru_cache(maxsize=4096)
def _display(digits: str, country_code: str) -> str:
    # Tiles are cached per state already; this spares the history and the exports a parse
    # per row for the partners that come up again and again.
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return "+" + digits
    if str(number.country_code) == country_code:
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def _is_national(digits: str, region: str) -> bool:
    """Whether digits typed without + or 00 are a national number rather than an extension."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    if prefix:
        # The trunk prefix (0 in most of Europe) marks a national number.
        return digits.startswith(prefix)
    # No trunk prefix (Italy, Spain, Portugal, Poland): only a number the plan knows.
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
    except NumberParseException:
        return False


def _external(text: str, region: str = _NO_REGION) -> Dialled:
    try:
        number = phonenumbers.parse(text, None if region == _NO_REGION else region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidNumber(_("That country code does not exist.")) from None
        if exc.error_type == NumberParseException.TOO_LONG:
            raise InvalidNumber(
                _("That number is too long: at most 15 digits with country code.")
            ) from None
        raise InvalidNumber(_("That number is too short.")) from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        raise InvalidNumber(_("That country code does not exist."))
    if reason in _TOO_SHORT:
        raise InvalidNumber(_("That number is too short."))
    if reason in _TOO_LONG:
        raise InvalidNumber(_("That number is too long: at most 15 digits with country code."))
    if number.italian_leading_zero and not phonenumbers.is_valid_number(number):
        # A 0 libphonenumber did not take for the trunk prefix, as what followed it is no
        # number of that country (``089 1``): too short, or none at all.
        rest = phonenumbers.PhoneNumber(
            country_code=number.country_code, national_number=number.national_number
        )
        if phonenumbers.is_possible_number_with_reason(rest) in _TOO_SHORT:
            raise InvalidNumber(_("That number is too short."))
        raise InvalidNumber(_("That is no valid number of its country."))
    # INVALID_LENGTH: between the plan's lengths; the PBX decides (a new range may exist).
    e164_digits = phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    if len(e164_digits) > E164_MAX:
        raise InvalidNumber(_("That number is too long: at most 15 digits with country code."))
    if len(e164_digits) < E164_MIN:
        raise InvalidNumber(_("That number is too short."))
    return Dialled(e164_digits, external=True)


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
