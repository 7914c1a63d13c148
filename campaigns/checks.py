"""System checks of the campaigns app's settings (`manage.py check`; `--deploy` adds the deploy ones)."""
from django.conf import settings
from django.core import checks

from campaigns import encryption


def _key_is_set():
    return bool(settings.INTEGRATIONS_ENCRYPTION_KEY.strip(" ,"))


@checks.register(checks.Tags.security)
def integrations_encryption_key_opens(app_configs, **kwargs):
    """A key that is set must be usable: otherwise every save and use of platform credentials fails."""
    if not _key_is_set():
        return []
    try:
        encryption.check_key()
    except encryption.EncryptionUnavailable as exc:
        return [checks.Error(str(exc), id="campaigns.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def integrations_encryption_key_set(app_configs, **kwargs):
    """Noted, not warned: a deployment without voice-AI platforms needs no key."""
    if _key_is_set():
        return []
    return [checks.Info("INTEGRATIONS_ENCRYPTION_KEY is not set: voice-AI platform credentials (Vapi, Retell, "
                        "ElevenLabs) cannot be saved or used.", hint="Generate one with cryptography's "
                        "Fernet.generate_key().", id="campaigns.I001")]
