"""The tenant's settings for the board: its country code and its CRM link."""

import pytest
from django.core.exceptions import ValidationError

from ctiboard.tenancy.models import validate_crm_url_template
from tests.conftest import Company


def test_crm_link_fills_in_the_number(company: Company) -> None:
    tenant = company.tenant
    assert tenant.crm_url("4930123456", external=True) == ""
    tenant.crm_url_template = "https://crm.example/search?phone={number}&e164={e164}"
    assert tenant.crm_url("4930123456", external=True) == (
        "https://crm.example/search?phone=4930123456&e164=%2B4930123456"
    )
    assert tenant.crm_url("101", external=False) == (
        "https://crm.example/search?phone=101&e164=101"
    )
    assert tenant.crm_url("", external=False) == ""


@pytest.mark.parametrize(
    "template",
    ["https://crm.example/search", "javascript:alert({number})", "crm.example/{number}"],
)
def test_crm_link_must_be_a_web_address_with_the_number(template: str) -> None:
    with pytest.raises(ValidationError):
        validate_crm_url_template(template)


def test_country_code_defaults_to_germany(company: Company) -> None:
    assert company.tenant.country_code == "49"
    company.tenant.country_code = "049"
    with pytest.raises(ValidationError, match="Digits only"):
        company.tenant.full_clean()
