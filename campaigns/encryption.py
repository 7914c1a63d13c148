"""Secrets at rest: voice-AI platform API keys and webhook secrets, encrypted with Fernet.

The keys are settings.INTEGRATIONS_ENCRYPTION_KEY (comma-separated, newest first): new secrets are
encrypted with the first, and any of them decrypts, so a key can be rotated without a migration.
"""
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class EncryptionUnavailable(RuntimeError):
    """No usable INTEGRATIONS_ENCRYPTION_KEY: secrets can be neither stored nor read."""


def _fernet():
    keys = [key.strip() for key in settings.INTEGRATIONS_ENCRYPTION_KEY.split(",") if key.strip()]
    if not keys:
        raise EncryptionUnavailable("INTEGRATIONS_ENCRYPTION_KEY is not set: platform credentials cannot be stored "
                                    "or used (generate one with cryptography's Fernet.generate_key()).")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise EncryptionUnavailable(f"INTEGRATIONS_ENCRYPTION_KEY is not a valid Fernet key: {exc}") from None


def check_key():
    """Raise EncryptionUnavailable when the configured keys cannot seal or open a secret."""
    _fernet()


def encrypt(secret: str) -> str:
    """The secret as a Fernet token (text); an empty secret stays empty."""
    return _fernet().encrypt(secret.encode()).decode() if secret else ""


def decrypt(token: str) -> str:
    """The secret a token holds; raises EncryptionUnavailable when no configured key opens it."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise EncryptionUnavailable("A stored platform secret does not open with INTEGRATIONS_ENCRYPTION_KEY "
                                    "(was the key replaced rather than rotated?).") from None
