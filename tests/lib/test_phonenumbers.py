"""What people type into the dial field, and what the CTI API gets."""

import phonenumbers as pn
import pytest

from ctiboard.lib.phonenumbers import (
    Dialled,
    InvalidNumber,
    display,
    normalise,
    parse,
    region_for,
)


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("+49 89 1234-567", "49891234567"),
        ("+49891234567", "49891234567"),
        ("0049 89 1234567", "49891234567"),
        ("0049-89-1234567", "49891234567"),
        ("089 1234567", "49891234567"),
        ("089/1234567", "49891234567"),
        ("(089) 123 45 67", "49891234567"),
        ("+49 (0)89 1234567", "49891234567"),
        ("+49 (0) 89 1234567", "49891234567"),
        ("+49 89 (1234) 567", "49891234567"),
        ("  +43 1 234 56 78  ", "4312345678"),
        ("0043 1 2345678", "4312345678"),
        ("+1 (212) 555-0100", "12125550100"),
        ("089.123.4567", "49891234567"),
        ("\t0 89 12 34 567", "49891234567"),
    ],
)
def test_external_numbers_become_e164_digits_without_prefix(typed: str, digits: str) -> None:
    assert parse(typed) == Dialled(digits, external=True)


@pytest.mark.parametrize(
    ("typed", "country", "digits"),
    [
        ("030 123456", "49", "4930123456"),
        ("01 2345678", "43", "4312345678"),
        ("044 668 18 00", "+41", "41446681800"),
        ("020 7946 0958", "44", "442079460958"),
    ],
)
def test_national_numbers_get_the_tenants_country_code(
    typed: str, country: str, digits: str
) -> None:
    assert parse(typed, country) == Dialled(digits, external=True)


@pytest.mark.parametrize(("typed", "digits"), [("101", "101"), (" 2 05 ", "205"), ("9", "9")])
def test_numbers_without_prefix_are_extensions(typed: str, digits: str) -> None:
    assert parse(typed) == Dialled(digits, external=False)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a number"),
        ("   ", "Enter a number"),
        ("+", "Enter a number"),
        ("()", "Enter a number"),
        ("abc", "only digits"),
        ("0800-FLOWERS", "only digits"),
        ("+49 89 +1234", "only digits"),
        ("49+891234", "only digits"),
        ("101; DROP TABLE", "only digits"),
        ("0049 89 1234567#", "only digits"),
        ("(089 1234567", "parentheses"),
        ("089) 1234567", "parentheses"),
        ("((089)) 1234567", "parentheses"),
        ("+0 89 1234567", "country code does not exist"),
        ("000 89 1234567", "country code does not exist"),
        ("+999 1234567", "country code does not exist"),
        ("030 12", "too short"),
        ("+49 89", "too short"),
        ("089 1", "too short"),
        ("+49 89 1234 5678 9012 3", "too long"),
        ("1" * 41, "too long"),
        ("49891234567890123", r"start with \+, 00 or 0"),
    ],
)
def test_invalid_input_gets_a_reason(typed: str, message: str) -> None:
    with pytest.raises(InvalidNumber, match=message):
        parse(typed)


def test_a_broken_country_code_is_reported_not_guessed() -> None:
    with pytest.raises(InvalidNumber, match="country code"):
        parse("089 1234567", "0049")
    # International and internal numbers do not need it.
    assert parse("+49 89 1234567", "").digits == "49891234567"
    assert parse("101", "").digits == "101"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+49 30 123456", "4930123456"),
        ("030 123456", "4930123456"),
        ("4930123456", "4930123456"),
        ("101", "101"),
        ("not a number", ""),
        ("", ""),
    ],
)
def test_normalise_gives_one_lookup_key_per_number(raw: str, key: str) -> None:
    assert normalise(raw, "49") == key


def test_display() -> None:
    assert display("49891234567", external=True) == "+49 89 1234567"
    assert display("49891234567", external=True, country_code="49") == "089 1234567"
    assert display("49891234567", external=True, country_code="43") == "+49 89 1234567"
    assert display("101", external=False, country_code="49") == "101"
    assert parse("089 1234567").display == "+49 89 1234567"


# --- every country NFON serves, through libphonenumber's own numbering plan examples ------

NFON_COUNTRIES = {
    "DE": "49",
    "AT": "43",
    "GB": "44",
    "IT": "39",
    "ES": "34",
    "FR": "33",
    "PT": "351",
    "PL": "48",
}


def _examples() -> list[tuple[str, str, str]]:
    """(region, calling code, E.164 digits) of each region's fixed line and mobile example."""
    found = []
    for region, code in NFON_COUNTRIES.items():
        for kind in (pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE):
            number = pn.example_number_for_type(region, kind)
            assert number is not None
            found.append((region, code, pn.format_number(number, pn.PhoneNumberFormat.E164)[1:]))
    return found


@pytest.mark.parametrize(("region", "code", "digits"), _examples())
def test_each_countrys_numbers_as_written_there_and_abroad(
    region: str, code: str, digits: str
) -> None:
    number = pn.parse("+" + digits)
    national = pn.format_number(number, pn.PhoneNumberFormat.NATIONAL)
    international = pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL)
    # Typed at home (the tenant's country), typed from anywhere, with 00 instead of +.
    assert parse(national, code) == Dialled(digits, external=True)
    assert parse(international, "49" if code != "49" else "43") == Dialled(digits, external=True)
    assert parse("00" + digits, code) == Dialled(digits, external=True)
    # Shown nationally at home, internationally to everyone else.
    assert display(digits, external=True, country_code=code) == national
    other = "44" if code != "44" else "49"
    assert display(digits, external=True, country_code=other) == international


@pytest.mark.parametrize(
    ("typed", "country", "digits"),
    [
        # Germany: trunk 0, the (0) of the international form, 00 from abroad.
        ("089 1234567", "49", "49891234567"),
        ("+49 (0)89 1234-567", "49", "49891234567"),
        ("0351 9715048", "49", "493519715048"),
        ("0151 23456789", "49", "4915123456789"),
        # Austria, the UK, France: trunk 0 too.
        ("01 234567890", "43", "431234567890"),
        ("0044 20 7946 0018", "49", "442079460018"),
        ("020 7946 0018", "44", "442079460018"),
        ("07700 900123", "44", "447700900123"),
        ("01 23 45 67 89", "33", "33123456789"),
        ("06 12 34 56 78", "33", "33612345678"),
        # Italy: no trunk prefix, the 0 belongs to the number and stays internationally.
        ("06 6982 1234", "39", "390669821234"),
        ("+39 06 6982 1234", "49", "390669821234"),
        ("0039 06 6982 1234", "43", "390669821234"),
        ("312 345 6789", "39", "393123456789"),
        # Spain, Portugal, Poland: no trunk prefix at all; numbers are typed as they are.
        ("912 34 56 78", "34", "34912345678"),
        ("612 34 56 78", "34", "34612345678"),
        ("21 234 5678", "351", "351212345678"),
        ("912 345 678", "351", "351912345678"),
        ("12 345 67 89", "48", "48123456789"),
        ("512 345 678", "48", "48512345678"),
    ],
)
def test_numbers_as_people_type_them(typed: str, country: str, digits: str) -> None:
    assert parse(typed, country) == Dialled(digits, external=True)


@pytest.mark.parametrize("country", ["39", "34", "351", "48"])
def test_without_a_trunk_prefix_short_numbers_are_still_extensions(country: str) -> None:
    assert parse("101", country) == Dialled("101", external=False)
    assert parse("2050", country) == Dialled("2050", external=False)


def test_italy_keeps_its_zero_internationally() -> None:
    dialled = parse("06 6982 1234", "39")
    assert dialled.digits == "390669821234"  # not 39669821234
    assert display(dialled.digits, external=True, country_code="39") == "06 6982 1234"
    assert display(dialled.digits, external=True, country_code="49") == "+39 06 6982 1234"


def test_a_german_number_for_a_german_tenant_and_for_others() -> None:
    assert display("493519715048", external=True, country_code="49") == "0351 9715048"
    assert display("493519715048", external=True, country_code="39") == "+49 351 9715048"


def test_an_unknown_range_is_still_shown_with_its_country_code() -> None:
    # 15 digits the plan does not know: written as well as it goes, never lost.
    assert display("999123", external=True, country_code="49").replace(" ", "") == "+999123"


def test_region_for_calling_codes() -> None:
    assert [region_for(code) for code in NFON_COUNTRIES.values()] == list(NFON_COUNTRIES)
    assert region_for("+44") == "GB"
    with pytest.raises(InvalidNumber):
        region_for("999")
