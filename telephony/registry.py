"""The providers by name; which one places a call is `telephony.runtimes`' choice (from the calling
number's carrier, settings.TELEPHONY_PROVIDER where a number names none)."""
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

PROVIDERS = {
    "simulated": "telephony.simulator.SimulatedProvider",
    "twilio": "telephony.providers.twilio.TwilioProvider",
    "vapi": "telephony.providers.vapi.VapiProvider",
    "retell": "telephony.providers.retell.RetellProvider",
    "elevenlabs": "telephony.providers.elevenlabs.ElevenLabsProvider",
}


class UnknownProvider(LookupError):
    pass


@lru_cache(maxsize=None)
def get_provider(name=None):
    """The provider instance for a carrier name (one per process); None → settings.TELEPHONY_PROVIDER."""
    name = name or settings.TELEPHONY_PROVIDER
    try:
        return import_string(PROVIDERS[name])()
    except KeyError:
        raise UnknownProvider(f"No telephony provider named {name!r}; known: {', '.join(PROVIDERS)}.") from None

