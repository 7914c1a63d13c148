"""The one validation layer for campaign settings, shared by the REST API and the admin.

`validate_campaign_body` takes the camelCase body of `POST /api/v1/campaigns` (or of a PATCH, with
the instance) and returns the Campaign field values, or raises `ValidationError` keyed by the
camelCase field with every problem found at once:

    >>> validate_campaign_body(ws, {"type": "batch", "name": "", "slots": 0, "colour": "red"})
    ValidationError({'name': ['Give the campaign a name.'], 'agent': ['This field is required.'],
                     'from': [...], 'slots': ['Must be at least 1.'], 'colour': ['Unknown field.']})
"""
import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone as django_timezone
from django.utils.dateparse import parse_datetime

from campaigns.json_values import is_json_int
from campaigns.models import Agent, CallingNumber, CampaignType, Priority, SlotMode
from dialer.retry_policy import AUTO_RETRIED, NEVER_RETRIED, OPT_IN_RETRIED
from dialer.scheduling import MAX_RETRY_INTERVAL_MS
from dialer.windows import InvalidTimezone, hhmm_to_time, zone

# docs/product.md §1, outcomes and retries. Auto-retried outcomes are accepted in a body (clients
# echo them) but never stored: they are always on. Never-retried ones are refused.

# Bounds that keep a schedule computable: intervals are summed into datetimes, and one task
# carries one interval per retry.
MAX_RETRIES = 100
MAX_NAME_LENGTH = 200
MAX_ID = 2**63 - 1

FIELDS = (
    "type", "name", "agent", "from", "priority", "timezone", "startAt", "endAt", "callingHours",
    "callingDays", "maxRetries", "retryInterval", "retryOutcomes", "slots", "slotMode",
)
REQUIRED_ON_CREATE = ("type", "name", "agent")
REQUIRED = "This field is required."


def validate_campaign_body(workspace, body, instance=None, *, now=None):
    """Campaign field values for `workspace` from a camelCase `body`, or `ValidationError`.

    Create (`instance` None): `type`, `name` and `agent` are required, and `from` for batch
    campaigns; the rest default (priority normal, timezone UTC, start now, no end, calling all day
    every day, no retries, retry interval one hour, slots 1, hard). Update (`instance` given):
    every field is optional and merged over the instance; `type` cannot change. Either way the
    full set of field values is returned: name, type, agent, calling_number, priority, timezone,
    start_at, end_at, calling_start, calling_end, calling_days, max_retries, retry_interval_ms,
    retry_outcomes, slots, slot_mode. Runs a few lookups (agent, calling number); no writes.
    """
    if not isinstance(body, dict):
        raise ValidationError({"body": ["Expected a JSON object."]})
    now = now or django_timezone.now()
    errors = {}

    def fail(field, reason):
        errors.setdefault(field, []).append(reason)

    for field in body:
        if field not in FIELDS:
            fail(field, "Unknown field.")
    if instance is None:
        for field in REQUIRED_ON_CREATE:
            if field not in body:
                fail(field, REQUIRED)

    values = _current_values(instance)
    for field, clean in CLEANERS.items():
        if field in body and field not in errors:
            try:
                values.update(clean(body[field], workspace=workspace, values=values))
            except ValidationError as exc:
                for reason in exc.messages:
                    fail(field, reason)

    if "type" in body and instance is not None and "type" not in errors and (reason := type_change(body, instance)):
        fail("type", reason)
    if values.get("type") == CampaignType.BATCH and values.get("calling_number") is None and "from" not in errors:
        fail("from", REQUIRED)
    _check_cross_fields(body, values, now, errors)

    if errors:
        raise ValidationError(errors)
    if values["start_at"] is None:
        values["start_at"] = now
    return values


def type_change(body, instance):
    """Why `body` may not be applied to `instance` because it changes the campaign's type, or None.

    The API answers this with 409 (the body is well formed; the stored campaign is of the other type).
    """
    if body.get("type") in CampaignType.values and body["type"] != instance.type:
        return f"A campaign's type cannot change (this one is {instance.type})."
    return None


def _current_values(instance):
    if instance is None:
        return {
            "type": None, "name": None, "agent": None, "calling_number": None, "priority": Priority.NORMAL,
            "timezone": "UTC", "start_at": None, "end_at": None,
            "calling_start": dt.time(0, 0), "calling_end": dt.time(0, 0), "calling_days": list(range(7)),
            "max_retries": 0, "retry_interval_ms": 3_600_000, "retry_outcomes": [],
            "slots": 1, "slot_mode": SlotMode.HARD,
        }
    return {
        "type": instance.type, "name": instance.name, "agent": instance.agent,
        "calling_number": instance.calling_number, "priority": instance.priority, "timezone": instance.timezone,
        "start_at": instance.start_at, "end_at": instance.end_at,
        "calling_start": instance.calling_start, "calling_end": instance.calling_end,
        "calling_days": list(instance.calling_days), "max_retries": instance.max_retries,
        "retry_interval_ms": instance.retry_interval_ms, "retry_outcomes": list(instance.retry_outcomes),
        "slots": instance.slots, "slot_mode": instance.slot_mode,
    }



def _choice(value, choices):
    if value not in choices.values:
        raise ValidationError(f"Must be one of {', '.join(choices.values)}, not {value!r}.")
    return value


def _clean_type(value, **_):
    return {"type": _choice(value, CampaignType)}


def _clean_name(value, **_):
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give the campaign a name.")
    if len(value.strip()) > MAX_NAME_LENGTH:
        raise ValidationError(f"At most {MAX_NAME_LENGTH} characters.")
    return {"name": value.strip()}


def _object_id(value):
    if is_json_int(value):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        return None
    return number if 1 <= number <= MAX_ID else None


def _clean_agent(value, *, workspace, **_):
    number = _object_id(value)
    agent = Agent.objects.filter(id=number, workspace=workspace).first() if number else None
    if agent is None:
        raise ValidationError(f"No agent {value!r} in this workspace.")
    return {"agent": agent}


def _clean_from(value, *, workspace, values):
    if value is None:
        if values["type"] == CampaignType.BATCH:
            raise ValidationError("A batch campaign needs a calling number.")
        return {"calling_number": None}
    if not isinstance(value, str) or not value.startswith("+"):
        raise ValidationError(f"Give the calling number in E.164, like +14155550100, not {value!r}.")
    number = CallingNumber.objects.filter(workspace=workspace, number=value).first()
    if number is None:
        raise ValidationError(f"{value} is not a calling number of this workspace.")
    return {"calling_number": number}


def _clean_priority(value, **_):
    return {"priority": _choice(value, Priority)}


def _clean_timezone(value, **_):
    try:
        zone(value)
    except InvalidTimezone:
        raise ValidationError(f"{value!r} is not an IANA timezone (like Europe/London).") from None
    return {"timezone": value}


def _instant(value):
    if not isinstance(value, str):
        raise ValidationError(f"Give an ISO 8601 date and time with an offset, like 2025-06-01T09:00:00+05:30, not {value!r}.")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError(f"{value!r} is not an ISO 8601 date and time.")
    if parsed.tzinfo is None:
        raise ValidationError(f"{value!r} has no UTC offset: add Z or one like +05:30.")
    return parsed


def _clean_start_at(value, **_):
    return {"start_at": _instant(value)}


def _clean_end_at(value, **_):
    return {"end_at": None if value is None else _instant(value)}


def _clean_calling_hours(value, **_):
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise ValidationError('Give the daily window as {"start": HHMM, "end": HHMM}, like {"start": 1000, "end": 2000}.')
    reasons = []
    times = {}
    for key in ("start", "end"):
        if key == "start" and value[key] == 2400:
            reasons.append("start: 2400 is only allowed as an end (midnight); start at 0 instead.")
            continue
        try:
            times[key] = hhmm_to_time(value[key])
        except ValueError:
            reasons.append(f"{key}: {value[key]!r} is not an HHMM time (0000 to 2359, end up to 2400).")
    if reasons:
        raise ValidationError(reasons)
    return {"calling_start": times["start"], "calling_end": times["end"]}


def _clean_calling_days(value, **_):
    if not isinstance(value, list) or not value or not all(is_json_int(day) and 0 <= day <= 6 for day in value):
        raise ValidationError("Give a non-empty list of weekdays, 0 = Monday to 6 = Sunday.")
    return {"calling_days": sorted(set(value))}


def _bounded_int(value, low, high, unit=""):
    if not is_json_int(value):
        raise ValidationError(f"Must be a whole number, not {value!r}.")
    if value < low:
        raise ValidationError(f"Must be at least {low}{unit}.")
    if value > high:
        raise ValidationError(f"Must be at most {high}{unit}.")
    return value


def _clean_max_retries(value, **_):
    return {"max_retries": _bounded_int(value, 0, MAX_RETRIES)}


def _clean_retry_interval(value, **_):
    return {"retry_interval_ms": _bounded_int(value, 0, MAX_RETRY_INTERVAL_MS, " ms")}


def _clean_retry_outcomes(value, **_):
    # Checked against the agent once the agent is known (in _check_cross_fields).
    if not isinstance(value, list) or not all(isinstance(outcome, str) for outcome in value):
        raise ValidationError("Give a list of outcome names, like [\"voicemail\"].")
    refused = [outcome for outcome in value if outcome in NEVER_RETRIED]
    if refused:
        raise ValidationError(f"{', '.join(refused)} is never retried.")
    kept = []
    for outcome in value:
        if outcome not in AUTO_RETRIED and outcome not in kept:
            kept.append(outcome)
    return {"retry_outcomes": kept}


def _clean_slots(value, *, workspace, **_):
    if is_json_int(value) and value > workspace.slots:
        raise ValidationError(f"Must be at most {workspace.slots}, the workspace's slots.")
    return {"slots": _bounded_int(value, 1, workspace.slots)}


def _clean_slot_mode(value, **_):
    return {"slot_mode": _choice(value, SlotMode)}


# Order matters: `from` reads the type, so type comes first.
CLEANERS = {
    "type": _clean_type, "name": _clean_name, "agent": _clean_agent, "from": _clean_from,
    "priority": _clean_priority, "timezone": _clean_timezone, "startAt": _clean_start_at, "endAt": _clean_end_at,
    "callingHours": _clean_calling_hours, "callingDays": _clean_calling_days, "maxRetries": _clean_max_retries,
    "retryInterval": _clean_retry_interval, "retryOutcomes": _clean_retry_outcomes, "slots": _clean_slots,
    "slotMode": _clean_slot_mode,
}


def _check_cross_fields(body, values, now, errors):
    """Rules across fields, judged on the merged values, reported on the field the body touched."""

    def fail(field, reason):
        errors.setdefault(field, []).append(reason)

    start_at = values["start_at"] or now
    end_at = values["end_at"]
    if end_at is not None and "endAt" in body and "endAt" not in errors:
        if end_at <= start_at:
            fail("endAt", "Must be after startAt.")
        elif end_at <= now:
            fail("endAt", "Must be in the future.")
    elif end_at is not None and "startAt" in body and "startAt" not in errors and end_at <= start_at:
        fail("startAt", "Must be before the campaign's end.")

    agent = values["agent"]
    if agent is not None and "retryOutcomes" not in errors:
        allowed = set(OPT_IN_RETRIED) | set(agent.outcomes)
        unknown = [outcome for outcome in values["retry_outcomes"] if outcome not in allowed]
        if unknown:
            custom = ", ".join(agent.custom_outcomes) or "none"
            fail("retryOutcomes", f"{', '.join(unknown)}: not an outcome agent {agent.name} can give "
                                  f"(retriable: voicemail, silent and its custom outcomes: {custom}).")
