"""What people type into the dial field, and what the CTI API gets."""

import pytest

from ctiboard.lib.phonenumbers import Dialled, InvalidNumber, display, normalise, parse


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
        ("030 123456", "+41", "4130123456"),
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
        ("+0 89 1234567", "never starts with 0"),
        ("000 89 1234567", "never starts with 0"),
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
    assert display("49891234567", external=True) == "+49891234567"
    assert display("101", external=False) == "101"
    assert parse("089 1234567").display == "+49891234567"
