"""Encryption at rest for CTI API credentials."""

import base64
import logging
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)


def _derive(secret: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ctiboard credentials")
    return base64.urlsafe_b64encode(key.derive(secret.encode()))


@cache
def _fernet() -> MultiFernet:
    # The first key encrypts; all of them decrypt, so keys can be rotated without a migration.
    secrets = settings.CTIBOARD_CREDENTIALS_KEYS or [settings.SECRET_KEY]
    return MultiFernet([Fernet(_derive(secret)) for secret in secrets])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "stored credential cannot be decrypted: CTIBOARD_CREDENTIALS_KEYS or SECRET_KEY "
            "changed since it was saved; enter the API password again"
        ) from None


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Stores text encrypted with Fernet; Python code only ever sees the plaintext."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        try:
            return decrypt(value)
        except ValueError as exc:
            # Loading must not fail (the admin has to stay usable to fix it); an empty
            # credential makes the login fail visibly instead.
            logger.error("%s.%s: %s", self.model.__name__, self.name, exc)
            return ""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
