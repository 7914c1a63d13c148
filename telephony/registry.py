"""Which provider serves a call: the calling number's carrier, else settings.TELEPHONY_PROVIDER."""
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

PROVIDERS = {
    "simulated": "telephony.simulator.SimulatedProvider",
    "twilio": "telephony.providers.twilio.TwilioProvider",
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


DEFAULT_CALLS_PER_SECOND = 10


def calling_number_settings(workspace_id, number):
    """(carrier, calls per second) of a workspace's calling number; defaults when it has none."""
    from campaigns.models import CallingNumber

    found = (CallingNumber.objects.filter(workspace_id=workspace_id, number=number)
             .values_list("carrier", "calls_per_second").first())
    if found is None:
        return settings.TELEPHONY_PROVIDER, DEFAULT_CALLS_PER_SECOND
    return found[0] or settings.TELEPHONY_PROVIDER, found[1]
