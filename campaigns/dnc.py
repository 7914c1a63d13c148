"""The organisation's do-not-call list: E.164 parsing, adding, removing and checking numbers.

The dispatcher checks the list right before every dial; task creation checks it too, so a listed
number never becomes a dialable task (see `campaigns.realtime`).
"""
from functools import lru_cache

import phonenumbers
from django.db import transaction

from campaigns.access import access_dnc_entry
from campaigns.models import DoNotCall

MAX_REASON_LENGTH = 200


class InvalidPhone(ValueError):
    """A phone number that is not a valid international (E.164) number; the message says why."""


def parse_e164(value):
    """The E.164 form of `value`, e.g. "+44 20 7183 8750" → "+442071838750".

    The number must carry its country code; raises `InvalidPhone` otherwise.
    """
    if not isinstance(value, str):
        raise InvalidPhone("must be a string in E.164 form, e.g. +14155550100")
    return _parse_e164_string(value)


@lru_cache(maxsize=8192)
def _parse_e164_string(value):
    """Cached: a bulk request repeats its caller ID on every body."""
    if not value.strip().startswith("+"):
        raise InvalidPhone("must start with + and the country code (E.164), e.g. +14155550100")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("is not a phone number (E.164 expected, e.g. +14155550100)") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone("is not a valid phone number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def listed_numbers(organisation_id, phones):
    """The subset of `phones` (E.164) on the organisation's do-not-call list. One query."""
    if not phones:
        return set()
    return set(DoNotCall.objects.filter(organisation_id=organisation_id, phone__in=list(phones))
               .values_list("phone", flat=True))


@transaction.atomic
def do_add_dnc_numbers(organisation_id, entries):
    """Add `entries` ([(e164, reason)]) to the list; numbers already listed keep their entry.

    Returns the entries now on the list for these numbers, in the order given.
    """
    phones = [phone for phone, _ in entries]
    DoNotCall.objects.bulk_create(
        [DoNotCall(organisation_id=organisation_id, phone=phone, reason=reason) for phone, reason in entries],
        ignore_conflicts=True,
    )
    by_phone = {entry.phone: entry for entry in DoNotCall.objects.filter(organisation_id=organisation_id,
                                                                         phone__in=phones)}
    return [by_phone[phone] for phone in dict.fromkeys(phones)]


@transaction.atomic
def do_remove_dnc_number(organisation_id, phone):
    """Remove one number; raises Http404 when it is not on the organisation's list."""
    entry = access_dnc_entry(organisation_id, phone)
    entry.delete()
