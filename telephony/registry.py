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


def provider_name_for_number(workspace_id, number):
    """The carrier configured on a workspace's calling number, or the default provider."""
    from campaigns.models import CallingNumber

    carrier = (CallingNumber.objects.filter(workspace_id=workspace_id, number=number)
               .values_list("carrier", flat=True).first())
    return carrier or settings.TELEPHONY_PROVIDER
