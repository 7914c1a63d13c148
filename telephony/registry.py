"""The providers by name, and the calling numbers' carriers (settings.TELEPHONY_PROVIDER where a number
names none); which one places a call is `telephony.runtimes`' choice."""
from functools import lru_cache

from django.conf import settings
from django.db.models import Q
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


def calling_number_carriers(pairs):
    """{(workspace id, number): carrier} for calling numbers; settings.TELEPHONY_PROVIDER where a
    number is not a workspace's (or names no carrier)."""
    from campaigns.models import CallingNumber

    carriers = dict.fromkeys(pairs, settings.TELEPHONY_PROVIDER)
    if not pairs:
        return carriers
    match = Q()
    for workspace_id, number in pairs:
        match |= Q(workspace_id=workspace_id, number=number)
    for workspace_id, number, carrier in (CallingNumber.objects.filter(match)
                                          .values_list("workspace_id", "number", "carrier")):
        carriers[(workspace_id, number)] = carrier or settings.TELEPHONY_PROVIDER
    return carriers
