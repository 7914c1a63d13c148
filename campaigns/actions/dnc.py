"""The organisation's do-not-call list: E.164 parsing, adding, removing and checking numbers.

The dispatcher checks the list right before every dial; task creation checks it too, so a listed
number never becomes a dialable task (see `campaigns.actions.realtime`).
"""
from django.db import connection, transaction

from campaigns.access import access_dnc_entry
from campaigns.models import DoNotCall
from campaigns.phone_numbers import InvalidPhone, parse_e164  # noqa: F401 (re-exported for the API's callers)

MAX_REASON_LENGTH = 200


def listed_numbers(organisation_id, phones):
    """The subset of `phones` (E.164) on the organisation's do-not-call list. One query, whatever
    asks: task creation, the CSV import and the dispatcher's check right before a dial.

    The numbers go as one comma-separated text the server splits (E.164 has no commas): a
    100,000-item list would otherwise be compiled and planned constant by constant (~4x slower).
    """
    if not phones:
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT phone FROM campaigns_donotcall WHERE organisation_id = %s "
                       "AND phone = ANY(string_to_array(%s, ','))", [organisation_id, ",".join(phones)])
        return {phone for (phone,) in cursor.fetchall()}


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
