"""Setting up a workspace over the API: agents and calling numbers (validation and create actions).

Validation raises Django's `ValidationError` keyed by camelCase field, like campaign validation.
"""
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.actions.dnc import InvalidPhone, parse_e164
from campaigns.actions.integrations import check_runtime_credentials, validate_runtime
from campaigns.json_values import is_json_int
from campaigns.models import Agent, CallingNumber, Carrier, Outcome

AGENT_FIELDS = ("name", "prompt", "outcomes", "runtime")
NUMBER_FIELDS = ("number", "carrier", "callsPerSecond")
OUTCOME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_NAME_LENGTH = 200
MAX_PROMPT_LENGTH = 100_000
MAX_CALLS_PER_SECOND = 1000


def _unknown_fields(body, allowed, errors):
    for field in body:
        if field not in allowed:
            errors.setdefault(field, []).append("Unknown field.")


def validate_agent_body(body, workspace=None):
    """Agent field values from `{"name", "prompt", "outcomes", "runtime"}`; `name` is required.

    `outcomes` may name built-in outcomes beside custom ones; each is stored once, in the order given.
    `runtime` (`campaigns.actions.integrations.validate_runtime`) left out is a stream to the
    deployment's default URL; one on a platform needs the `workspace`'s credentials for it.
    """
    errors, fields = {}, {}
    _unknown_fields(body, AGENT_FIELDS, errors)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        errors.setdefault("name", []).append(f"Give the agent a name of 1 to {MAX_NAME_LENGTH} characters.")
    else:
        fields["name"] = name.strip()
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_LENGTH:
        errors.setdefault("prompt", []).append(f"Must be text of at most {MAX_PROMPT_LENGTH} characters.")
    else:
        fields["prompt"] = prompt
    outcomes = body.get("outcomes", [])
    if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
        errors.setdefault("outcomes", []).append("Give a list of outcome names.")
    else:
        # A built-in name is welcome: a client lists what its agent reports, built-in or not.
        for outcome in outcomes:
            if outcome not in Outcome.values and not OUTCOME_NAME.match(outcome):
                errors.setdefault("outcomes", []).append(
                    f"{outcome!r}: use lowercase letters, digits, - and _ (at most 64 characters).")
        fields["outcomes"] = list(dict.fromkeys(outcomes))
    if "runtime" in body:
        try:
            fields["runtime"] = validate_runtime(body["runtime"])
            if workspace is not None:
                check_runtime_credentials(workspace, fields["runtime"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return fields


def validate_number_body(body):
    """CallingNumber field values from `{"number", "carrier", "callsPerSecond"}`; `number` is required."""
    errors, fields = {}, {}
    _unknown_fields(body, NUMBER_FIELDS, errors)
    try:
        fields["number"] = parse_e164(body.get("number"))
    except InvalidPhone as exc:
        errors.setdefault("number", []).append(f"The number {exc}.")
    carrier = body.get("carrier", Carrier.SIMULATED)
    if carrier not in Carrier.values:
        errors.setdefault("carrier", []).append(f"Must be one of {', '.join(Carrier.values)}.")
    else:
        fields["carrier"] = carrier
    cps = body.get("callsPerSecond", 10)
    if not is_json_int(cps) or not 1 <= cps <= MAX_CALLS_PER_SECOND:
        errors.setdefault("callsPerSecond", []).append(f"Must be an integer from 1 to {MAX_CALLS_PER_SECOND}.")
    else:
        fields["calls_per_second"] = cps
    if errors:
        raise ValidationError(errors)
    return fields


@transaction.atomic
def do_create_agent(workspace, fields):
    return Agent.objects.create(workspace=workspace, **fields)


class NumberTaken(ValueError):
    """The workspace already has this calling number: a conflict with what is stored, not a bad body."""


@transaction.atomic
def do_update_agent(agent, fields):
    """Apply validated agent fields (`validate_agent_body`) to an existing agent."""
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.save(update_fields=list(fields))
    return agent


def do_create_calling_number(workspace, fields):
    """Create a calling number; raises `NumberTaken` for a number the workspace already has."""
    try:
        with transaction.atomic():
            return CallingNumber.objects.create(workspace=workspace, **fields)
    except IntegrityError:
        raise NumberTaken(f"{fields['number']} is already a calling number of this workspace.") from None


def do_update_calling_number(number, fields):
    """Apply validated fields (`validate_number_body`); a number the workspace already has is refused."""
    for name, value in fields.items():
        setattr(number, name, value)
    try:
        with transaction.atomic():
            number.save(update_fields=list(fields))
    except IntegrityError:
        raise NumberTaken(f"{fields['number']} is already a calling number of this workspace.") from None
    return number
