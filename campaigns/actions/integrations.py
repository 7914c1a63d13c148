"""A workspace's voice-AI platform credentials (Vapi, Retell, ElevenLabs), and agents' runtimes.

Validation raises Django's `ValidationError` keyed by camelCase field, like the other actions; a
runtime's own fields are named `runtime.<field>` (e.g. `runtime.agentId`).
"""
import re

from django.core.exceptions import ValidationError
from django.db import transaction

from campaigns import encryption
from campaigns.json_values import is_json_int
from campaigns.models import Agent, Integration, Platform, RuntimeKind
from telephony.models import Call
from telephony.outbound import validate_outbound_url
from telephony.vocabulary import OPEN_CALL_STATUSES

INTEGRATION_FIELDS = ("apiKey", "webhookSecret", "baseUrl", "simulate", "concurrency")
MAX_SECRET_LENGTH = 500
MAX_BASE_URL_LENGTH = 300
MAX_CONCURRENCY = 100_000
MAX_STREAM_URL_LENGTH = 500
# Platform ids are opaque: UUIDs (Vapi), agent_… (Retell, ElevenLabs), phnum_… (ElevenLabs).
PLATFORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
RUNTIME_FIELDS = {
    RuntimeKind.STREAM: ("url",),
    RuntimeKind.VAPI: ("assistantId", "phoneNumberId"),
    RuntimeKind.RETELL: ("agentId",),
    RuntimeKind.ELEVENLABS: ("agentId", "phoneNumberId"),
}


class IntegrationMissing(ValueError):
    """An agent's runtime names a platform the workspace has no credentials for."""


class IntegrationInUse(ValueError):
    """Credentials that agents or live calls still need: removing them would strand their calls."""


def validate_runtime(runtime):
    """The runtime as stored, from an agent body's `runtime` (left out of the body: a stream to the
    deployment's default URL, stored as {}).

    >>> validate_runtime({"kind": "retell", "agentId": "agent_1"})
    {'kind': 'retell', 'agentId': 'agent_1'}
    >>> validate_runtime({"kind": "stream", "url": "https://a.example"})
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'runtime.url': ['Must be a wss:// URL with a host.']}
    """
    if not isinstance(runtime, dict):
        raise ValidationError({"runtime": ["Must be an object with a kind: stream, vapi, retell or elevenlabs."]})
    kind = runtime.get("kind")
    if kind not in RuntimeKind.values:
        raise ValidationError({"runtime.kind": [f"Must be one of {', '.join(RuntimeKind.values)}."]})
    errors, fields = {}, {"kind": kind}
    allowed = RUNTIME_FIELDS[RuntimeKind(kind)]
    for name in runtime:
        if name != "kind" and name not in allowed:
            errors[f"runtime.{name}"] = [f"Unknown field for a {kind} runtime; it takes {', '.join(allowed)}."]
    for name in allowed:
        value = runtime.get(name)
        if kind == RuntimeKind.STREAM:
            if not _is_wss_url(value):
                errors[f"runtime.{name}"] = ["Must be a wss:// URL with a host."]
        elif not isinstance(value, str) or not PLATFORM_ID.match(value):
            errors[f"runtime.{name}"] = [f"Required: the {kind} id (1 to 128 letters, digits, _ . : -)."]
        if f"runtime.{name}" not in errors:
            fields[name] = value
    if errors:
        raise ValidationError(errors)
    return fields


def _is_wss_url(value):
    if not isinstance(value, str) or len(value) > MAX_STREAM_URL_LENGTH:
        return False
    match = re.match(r"^wss://([^/?#\s]+)[^\s]*$", value)
    return bool(match) and not match[1].startswith(("@", ":"))


def check_runtime_credentials(workspace, runtime):
    """Raise ValidationError on `runtime.kind` when the runtime's platform has no credentials here."""
    kind = (runtime or {}).get("kind")
    if kind in Platform.values and not Integration.objects.filter(workspace=workspace, platform=kind).exists():
        raise ValidationError({"runtime.kind": [
            f"This workspace has no {Platform(kind).label} credentials: PUT /api/v1/integrations/{kind} first."]})


def validate_integration_body(body, instance=None):
    """Integration field values from `{"apiKey", "webhookSecret", "baseUrl", "simulate", "concurrency"}`.

    `apiKey` and `webhookSecret` are required unless `simulate` is true (a demo needs no account).
    Secrets come back encrypted; a secret left out of an update keeps its stored value.
    """
    errors, fields = {}, {}
    for name in body:
        if name not in INTEGRATION_FIELDS:
            errors.setdefault(name, []).append("Unknown field.")
    simulate = body.get("simulate", False)
    if not isinstance(simulate, bool):
        errors.setdefault("simulate", []).append("Must be true or false.")
    else:
        fields["simulate"] = simulate
    for name, column in (("apiKey", "api_key_encrypted"), ("webhookSecret", "webhook_secret_encrypted")):
        value = body.get(name)
        stored = instance is not None and getattr(instance, column)
        if value is None and (simulate is True or stored):
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_SECRET_LENGTH:
            errors.setdefault(name, []).append(f"Required: the platform's secret, 1 to {MAX_SECRET_LENGTH} characters.")
        else:
            fields[column] = value.strip()
    base_url = body.get("baseUrl", "")
    if not isinstance(base_url, str) or len(base_url) > MAX_BASE_URL_LENGTH:
        errors.setdefault("baseUrl", []).append(f"Must be an http(s) URL of at most {MAX_BASE_URL_LENGTH} characters.")
    else:
        try:
            if base_url:
                validate_outbound_url(base_url, "baseUrl")
            fields["base_url"] = base_url
        except ValidationError as exc:
            errors.setdefault("baseUrl", []).extend(exc.message_dict["baseUrl"])
    concurrency = body.get("concurrency")
    if concurrency is not None and (not is_json_int(concurrency) or not 1 <= concurrency <= MAX_CONCURRENCY):
        errors.setdefault("concurrency", []).append(f"Must be null or an integer from 1 to {MAX_CONCURRENCY}.")
    else:
        fields["concurrency"] = concurrency
    if errors:
        raise ValidationError(errors)
    try:
        for column in ("api_key_encrypted", "webhook_secret_encrypted"):
            if column in fields:
                fields[column] = encryption.encrypt(fields[column])
    except encryption.EncryptionUnavailable as exc:
        raise ValidationError({"apiKey": [str(exc)]}) from None
    return fields


@transaction.atomic
def do_set_integration(workspace, platform, fields):
    """Create or replace the workspace's credentials for `platform` with validated fields
    (`validate_integration_body`). Returns (integration, created)."""
    integration, created = Integration.objects.select_for_update().get_or_create(
        workspace=workspace, platform=platform, defaults=fields)
    if not created:
        for name, value in fields.items():
            setattr(integration, name, value)
        integration.save(update_fields=[*fields, "updated_at"])
    return integration, created


def integration_in_use(integration):
    """Why the credentials cannot be removed now, or None: an agent of the workspace runs on the
    platform (its next call would be refused) or a call placed through it has not ended (its
    webhooks, the analysis included, are checked with the webhook secret)."""
    platform = integration.get_platform_display()
    agents = list(Agent.objects.filter(workspace_id=integration.workspace_id, runtime__kind=integration.platform)
                  .order_by("name").values_list("name", flat=True))
    if agents:
        return f"Agents run on {platform}: {', '.join(agents)}. Give them another runtime first."
    open_calls = Call.objects.filter(campaign__workspace_id=integration.workspace_id, carrier=integration.platform,
                                     status__in=OPEN_CALL_STATUSES).count()
    if open_calls:
        return (f"{open_calls} call(s) placed through {platform} have not ended yet, and their webhooks are checked "
                "with these credentials: remove them once the calls end.")
    return None


@transaction.atomic
def do_remove_integration(integration):
    """Remove a workspace's credentials for a platform; raises IntegrationInUse with the reason
    while `integration_in_use` finds one."""
    locked = Integration.objects.select_for_update().get(id=integration.id)
    reason = integration_in_use(locked)
    if reason:
        raise IntegrationInUse(reason)
    locked.delete()


def workspace_integration(workspace, platform):
    return Integration.objects.filter(workspace=workspace, platform=platform).first()
