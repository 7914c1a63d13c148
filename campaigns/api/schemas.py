"""OpenAPI schemas of the API's JSON (raw, since bodies are validated by the domain, not serializers).

Request schemas state every limit the validation enforces that JSON Schema can express, so a
request the schema allows is refused only for what it cannot: a number that is not valid for its
country, an id or calling number that does not exist in the workspace, rules across fields, and
limits that depend on stored state. Those are said in each field's description.
"""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from phonenumbers import SUPPORTED_REGIONS

from campaigns.api.idempotency import MAX_KEY_LENGTH
from campaigns.api.pagination import MAX_LIMIT
from campaigns.actions.workspace_setup import MAX_CALLS_PER_SECOND, MAX_PROMPT_LENGTH, OUTCOME_NAME
from campaigns.campaign_validation import MAX_NAME_LENGTH, MAX_RETRIES
from campaigns.actions.dnc import MAX_REASON_LENGTH
from campaigns.actions.integrations import (
    MAX_BASE_URL_LENGTH, MAX_CONCURRENCY, MAX_SECRET_LENGTH, MAX_STREAM_URL_LENGTH, PLATFORM_ID,
)
from campaigns.models import (
    CalleeTimezoneSource, CampaignStatus, CampaignType, Carrier, HeldBy, Platform, Priority, SlotMode, TaskStatus,
)
from campaigns.actions.realtime import MAX_ATTEMPTS, MAX_EPOCH_MS, MAX_PRIORITY
from dialer import compliance
from dialer.retry_policy import NEVER_RETRIED, in_outcome_order
from dialer.scheduling import MAX_RETRY_INTERVAL_MS
from telephony.models import CallStatus


def nullable(schema):
    return {**schema, "nullable": True}


STRING = {"type": "string"}
ID = {"type": "string", "description": "Object id (a string of digits).", "example": "42"}
E164 = {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$", "example": "+14155550100"}
PHONE = {**E164, "description": "E.164. Must also be a valid number for its country code (phonenumbers' rules), "
                                "which a pattern cannot say."}
INSTANT = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (Z)."}
INSTANT_IN = {"type": "string", "format": "date-time", "description": "ISO 8601 with a UTC offset (Z or +05:30)."}
EPOCH_MS = {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS, "description": "Epoch milliseconds."}
CONTEXT = {"type": "object", "additionalProperties": True,
           "description": "Prompt variables (${name}). No text in it may hold the NUL character (\\u0000) or "
                          "a lone UTF-16 surrogate, which cannot be stored."}
# Not only whitespace: names are trimmed before they are judged (Python's whitespace, which also
# counts the separators U+001C-001F and U+0085).
NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": r"[^\s\u001c-\u001f\u0085]",
        "description": f"1 to {MAX_NAME_LENGTH} characters once surrounding whitespace is trimmed."}
# The IANA zone names this server knows, one shared component (see docs.add_components_and_links).
TIMEZONE = {"$ref": "#/components/schemas/Timezone"}


def hhmm(*, end):
    """Time of day as an HHMM integer: a range per hour, since an integer cannot carry a pattern.

    >>> [r["minimum"] for r in hhmm(end=False)["anyOf"][:2]], hhmm(end=True)["anyOf"][-1]
    ([0, 100], {'enum': [2400]})
    """
    hours = [{"minimum": hour * 100, "maximum": hour * 100 + 59} for hour in range(24)]
    if end:
        return {"type": "integer", "anyOf": [*hours, {"enum": [2400]}],
                "description": "Time of day as HHMM, e.g. 1800; 2400 is midnight at the end of the day."}
    return {"type": "integer", "anyOf": hours, "description": "Time of day as HHMM, e.g. 930 for 09:30."}


HHMM_START = hhmm(end=False)
HHMM_END = hhmm(end=True)
RETRIABLE_OUTCOME = {
    "type": "string", "not": {"enum": in_outcome_order(NEVER_RETRIED)},
    "description": "voicemail, silent, an always-retried outcome (accepted, always on) or one of the agent's "
                   "custom outcomes; connected and opt-out are never retried. Which custom outcomes exist "
                   "depends on the agent.",
}


def obj(properties, required=(), **extra):
    schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


ERROR = obj({
    "errors": {"type": "array", "items": obj({
        "field": nullable({"type": "string", "description": "camelCase field at fault; null for the request."}),
        "message": STRING,
        "index": nullable({"type": "integer", "description": "Position in a bulk request's array."}),
    }, required=["field", "message"])},
}, required=["errors"])


def err(description):
    return OpenApiResponse(response=ERROR, description=description)


COMMON_ERRORS = {
    401: err("Missing, invalid or revoked API key."),
    429: err("Too many requests for this API key; see Retry-After."),
    503: err("The database connection was lost mid-request (a restart or failover); nothing was committed. "
             "Retry after Retry-After."),
}
NOT_FOUND = {404: err("No such object in this workspace (another workspace's objects are 404 too).")}
BAD_REQUEST = {400: err("Invalid request: every error names its field and reason.")}

CREATE_TASK_BODY = obj({
    "phone": PHONE,
    "campaign": {**ID, "description": "A realtime campaign of this workspace that is neither completed nor "
                                      "archived."},
    "from": {**E164, "description": "A calling number of this workspace (default: the campaign's; required when "
                                    "the campaign has none)."},
    "agent": {**ID, "description": "An agent of this workspace (default: the campaign's)."},
    "start": HHMM_START,
    "end": HHMM_END,
    "timezone": {**TIMEZONE, "description": "IANA timezone of start/end, e.g. Asia/Kolkata."},
    "startAfter": EPOCH_MS,
    "endAfter": {**EPOCH_MS, "description": "Epoch ms after which the task is archived; must be after startAfter."},
    "retries": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS,
                "description": "Total attempts (default: the campaign's)."},
    "intervals": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_RETRY_INTERVAL_MS},
                  "description": "Exactly retries - 1 gaps in ms, from the end of one attempt to the next."},
    "priorities": {"type": "array", "items": {"type": "integer", "minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY},
                   "description": "Exactly one per attempt (retries entries); higher dials sooner."},
    "retryOutcomes": {"type": "array", "items": RETRIABLE_OUTCOME},
    "context": CONTEXT,
}, required=["phone", "campaign"], additionalProperties=False)

TASK = obj({
    "id": ID, "campaign": ID, "phone": E164, "status": {"type": "string", "enum": TaskStatus.values},
    "attemptsMade": {"type": "integer"}, "nextAttemptAt": nullable(INSTANT), "callbackAt": nullable(INSTANT),
    "lastOutcome": nullable(STRING), "finalOutcome": nullable(STRING),
    "completionReason": nullable({**STRING, "description": "connected, exhausted, archived, dnc, ended, "
                                                           "ineligible…"}),
    "heldBy": nullable({"type": "string", "enum": [held for held in HeldBy.values if held],
                        "description": "The workspace compliance rule the queued task waits on, if any."}),
    "context": CONTEXT, "createdAt": INSTANT, "completedAt": nullable(INSTANT),
}, required=["id", "campaign", "phone", "status"])

RESOLVED_CONFIG = obj({
    "from": nullable(E164), "agent": ID, "start": HHMM_START, "end": HHMM_END, "timezone": STRING,
    "days": {"type": "array", "items": {"type": "integer"}}, "startAfter": EPOCH_MS, "endAfter": nullable(EPOCH_MS),
    "retries": {"type": "integer"}, "intervals": {"type": "array", "items": {"type": "integer"}},
    "priorities": nullable({"type": "array", "items": {"type": "integer"}}),
    "retryOutcomes": {"type": "array", "items": STRING},
})

CALL_SUMMARY_PROPERTIES = {
    "id": {"type": "string", "format": "uuid"}, "attempt": {"type": "integer"},
    "status": {"type": "string", "enum": CallStatus.values}, "outcome": nullable(STRING),
    "startedAt": nullable(INSTANT), "endedAt": nullable(INSTANT),
}

TASK_DETAIL = obj({
    **TASK["properties"],
    "config": obj({"submitted": {"type": "object", "description": "The config keys of the Create Task body."},
                   "resolved": RESOLVED_CONFIG}),
    "calleeTimezone": obj({
        "zones": {"type": "array", "items": STRING,
                  "description": "The IANA zones legal hours are judged in; all must be open."},
        "source": {"type": "string", "enum": CalleeTimezoneSource.values,
                   "description": "explicit (given with the task), number (its only zone), number_zones (all "
                                  "its zones), campaign (the campaign's timezone)."},
    }),
    "calls": {"type": "array", "items": obj(CALL_SUMMARY_PROPERTIES)},
})

CALL = obj({
    **CALL_SUMMARY_PROPERTIES, "task": ID, "campaign": ID, "agent": nullable(ID), "from": E164, "to": E164,
    "carrier": STRING, "carrierCallId": nullable(STRING), "carrierStatus": nullable(STRING),
    "isCallback": {"type": "boolean"}, "admittedAt": INSTANT, "ringingAt": nullable(INSTANT),
    "answeredAt": nullable(INSTANT), "durationSeconds": nullable({"type": "integer"}),
    "cost": nullable({"type": "string", "description": "Decimal."}), "recordingUrl": nullable(STRING),
    "transcript": STRING, "analysis": {"type": "object"}, "callbackAt": nullable(INSTANT),
})

CALLING_HOURS = obj({"start": HHMM_START, "end": HHMM_END}, required=["start", "end"], additionalProperties=False)
CAMPAIGN_SETTINGS = {
    "type": {"type": "string", "enum": CampaignType.values,
             "description": "Fixed at creation: an update may repeat it, not change it (409)."},
    "name": NAME,
    "agent": {**ID, "description": "An agent of this workspace."},
    "from": nullable({**E164, "description": "A calling number of this workspace; required (not null) for batch "
                                             "campaigns."}),
    "priority": {"type": "string", "enum": Priority.values},
    "timezone": TIMEZONE,
    "startAt": INSTANT_IN,
    "endAt": nullable({**INSTANT_IN, "description": "Must be after startAt and in the future."}),
    "callingHours": CALLING_HOURS,
    "callingDays": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}, "minItems": 1,
                    "description": "Weekdays, 0 = Monday to 6 = Sunday; repeats are kept once."},
    "maxRetries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "description": "Additional attempts."},
    "retryInterval": {"type": "integer", "minimum": 0, "maximum": MAX_RETRY_INTERVAL_MS,
                      "description": "Milliseconds."},
    "retryOutcomes": {"type": "array", "items": RETRIABLE_OUTCOME},
    "slots": {"type": "integer", "minimum": 1, "description": "At most the workspace's slots."},
    "slotMode": {"type": "string", "enum": SlotMode.values},
}
CAMPAIGN_CREATE = obj(CAMPAIGN_SETTINGS, required=["type", "name", "agent"], additionalProperties=False)
CAMPAIGN_UPDATE = obj(CAMPAIGN_SETTINGS, additionalProperties=False)
CONTROL_PROGRESS = nullable(obj({
    "action": {"type": "string", "enum": ["pause", "resume", "archive", "update", "end"],
               "description": "The control whose tasks are being changed (update: re-timing; end: the "
                              "end time's archive)."},
    "done": {"type": "integer"}, "total": nullable({"type": "integer", "description": "Null until counted."}),
}, required=["action", "done", "total"]))
CAMPAIGN = obj({
    "id": ID, **CAMPAIGN_SETTINGS, "name": STRING, "timezone": STRING, "startAt": INSTANT, "endAt": nullable(INSTANT),
    "status": {"type": "string", "enum": CampaignStatus.values},
    "contactsUploadedAt": nullable(INSTANT), "createdAt": INSTANT, "updatedAt": INSTANT,
    "completedAt": nullable(INSTANT),
    "taskCounts": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "Tasks per status."},
    "callOutcomes": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "Calls per outcome."},
    "control": {**CONTROL_PROGRESS, "description": "While a control's tasks are changed in the background: "
                                                   "which, and how many of how many. Null otherwise."},
    "sampleTask": {**CREATE_TASK_BODY, "description": "Realtime only: a ready-to-use Create Task body."},
    "pausedReason": nullable({**STRING, "description": "Why the campaign paused itself (circuit breaker); null "
                                                       "for a manual pause or when not paused."}),
})
# An update's answer: the campaign as updated, without the counts (a grouped count over every task
# and call of the campaign, the detail GET's part, not the update's).
UPDATED_CAMPAIGN = obj({name: schema for name, schema in CAMPAIGN["properties"].items()
                        if name not in ("taskCounts", "callOutcomes")})


def page_of(item_schema):
    return obj({"results": {"type": "array", "items": item_schema},
                "nextCursor": nullable({"type": "string", "description": "Pass as ?cursor= for the next page."})},
               required=["results", "nextCursor"])


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="nextCursor of the previous page; only a cursor this API returned "
                                                 "is valid."),
    OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                     description=f"Page size, 1 to {MAX_LIMIT} (default 50)."),
]

CONTROL_RESULT = obj({"changed": {"type": "integer", "description": "Tasks this control changed before answering."},
                      "status": STRING,
                      "control": {**CONTROL_PROGRESS, "description": "Null once every task is changed; else the "
                                                                     "background job's progress."}},
                     required=["changed", "status", "control"])
# A task's control changes that one task in the request: there is no background job to report.
TASK_CONTROL_RESULT = obj({"changed": CONTROL_RESULT["properties"]["changed"], "status": STRING},
                          required=["changed", "status"])

CONTACT_IMPORT = obj({
    "id": {"type": "string", "format": "uuid"}, "campaign": ID, "filename": STRING,
    "rowsTotal": {"type": "integer"}, "rowsImported": {"type": "integer"}, "duplicates": {"type": "integer"},
    "errorCount": {"type": "integer"},
    "errors": {"type": "array", "items": obj({"row": {"type": "integer"}, "column": STRING, "reason": STRING})},
    "skipInvalid": {"type": "boolean"}, "createdAt": INSTANT,
})
CONTACTS_UPLOAD = obj({"file": {"type": "string", "format": "binary",
                                "description": "A UTF-8 CSV file whose first column is `phone`; a file with any "
                                               "error imports nothing unless skipInvalid."},
                       "skipInvalid": {"type": "boolean", "description": "Import the good rows, skip bad ones."}},
                      required=["file"])

PLATFORM_ID_SCHEMA = {"type": "string", "pattern": PLATFORM_ID.pattern}
RUNTIME = {"oneOf": [
    obj({"kind": {"type": "string", "enum": ["stream"]},
         "url": {"type": "string", "pattern": r"^wss://[^/?#\s@:][^/?#\s]*\S*$", "maxLength": MAX_STREAM_URL_LENGTH,
                 "description": "The agent's media stream; callId, agentId and attempt ride as stream parameters."}},
        required=["kind", "url"], additionalProperties=False),
    obj({"kind": {"type": "string", "enum": ["vapi"]}, "assistantId": PLATFORM_ID_SCHEMA,
         "phoneNumberId": PLATFORM_ID_SCHEMA}, required=["kind", "assistantId", "phoneNumberId"],
        additionalProperties=False),
    obj({"kind": {"type": "string", "enum": ["retell"]}, "agentId": PLATFORM_ID_SCHEMA},
        required=["kind", "agentId"], additionalProperties=False),
    obj({"kind": {"type": "string", "enum": ["elevenlabs"]}, "agentId": PLATFORM_ID_SCHEMA,
         "phoneNumberId": PLATFORM_ID_SCHEMA}, required=["kind", "agentId", "phoneNumberId"],
        additionalProperties=False),
], "description": "Where the agent runs (default: a stream to the deployment's AGENT_MEDIA_STREAM_URL). A platform "
                  "runtime needs the workspace's credentials for that platform (PUT /api/v1/integrations/{platform}); "
                  "without them it is a 400 on runtime.kind."}

AGENT_CREATE = obj({"name": NAME, "runtime": RUNTIME,
                    "prompt": {"type": "string", "maxLength": MAX_PROMPT_LENGTH,
                               "description": "Template; ${var} comes from task context."},
                    "outcomes": {"type": "array", "items": {"type": "string", "pattern": OUTCOME_NAME.pattern},
                                 "description": "The outcomes its call analysis reports: built-in names (e.g. "
                                                "voicemail) and custom ones; each is kept once, in order."}},
                   required=["name"], additionalProperties=False)
AGENT = obj({"id": ID, "name": STRING, "prompt": STRING, "outcomes": {"type": "array", "items": STRING},
             "runtime": {"type": "object", "additionalProperties": True,
                         "description": "kind (stream, vapi, retell, elevenlabs) and its platform ids."},
             "createdAt": INSTANT})

PLATFORM = OpenApiParameter("platform", str, location=OpenApiParameter.PATH, enum=Platform.values,
                            description="The voice-AI platform.")
SECRET = {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_LENGTH, "pattern": r"\S", "writeOnly": True}
INTEGRATION_SET = obj({
    "apiKey": {**SECRET, "description": "The platform's API key. Required unless simulate is true or one is "
                                        "stored; stored encrypted, never shown."},
    "webhookSecret": {**SECRET, "description": "The secret its webhooks are signed with (Vapi: the server "
                                               "credential's HMAC secret or bearer token; Retell: the API key marked "
                                               "for webhooks; ElevenLabs: the webhook's HMAC secret). Required like "
                                               "apiKey."},
    "baseUrl": {"type": "string", "maxLength": MAX_BASE_URL_LENGTH, "pattern": r"^$|^https?://[^/?#\s]+([/?#]\S*)?$",
                "description": "A regional API endpoint (empty: the platform's public one). http(s); its host must "
                               "resolve to public internet addresses."},
    "simulate": {"type": "boolean", "description": "Place this platform's calls on the simulated carrier."},
    "concurrency": nullable({"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY,
                             "description": "The platform's concurrent-call limit for this account: the dispatcher "
                                            "never has more calls live on it."}),
}, additionalProperties=False)
INTEGRATION = obj({"platform": {"type": "string", "enum": Platform.values}, "hasApiKey": {"type": "boolean"},
                   "hasWebhookSecret": {"type": "boolean"}, "baseUrl": STRING, "simulate": {"type": "boolean"},
                   "concurrency": nullable({"type": "integer"}), "updatedAt": INSTANT})

NUMBER_CREATE = obj({"number": {**PHONE, "description": PHONE["description"] + " Unique in the workspace: "
                                                                            "a number it already has is a 409."},
                     "carrier": {"type": "string", "enum": Carrier.values},
                     "callsPerSecond": {"type": "integer", "minimum": 1, "maximum": MAX_CALLS_PER_SECOND}},
                    required=["number"], additionalProperties=False)
NUMBER = obj({"id": ID, "number": E164, "carrier": STRING, "callsPerSecond": {"type": "integer"},
              "createdAt": INSTANT})

DNC_ENTRY_CREATE = obj({"phone": PHONE, "reason": {"type": "string", "maxLength": MAX_REASON_LENGTH}},
                       required=["phone"], additionalProperties=False)
DNC_ENTRY = obj({"phone": E164, "reason": STRING, "createdAt": INSTANT})

SLOT_USE = obj({"used": {"type": "integer"}, "allocation": {"type": "integer"},
                "mode": {"type": "string", "enum": SlotMode.values}, "borrowed": {"type": "integer"}})
SLOTS = obj({
    "organisation": obj({"id": ID, **SLOT_USE["properties"]}),
    "workspace": obj({"id": ID, **SLOT_USE["properties"]}),
    "campaigns": {"type": "array", "items": obj({"id": ID, **SLOT_USE["properties"]})},
})

CONTROL_RECORD = obj({
    "id": ID, "action": {"type": "string", "enum": ["pause", "resume", "archive", "update"]},
    "task": nullable({**ID, "description": "The task controlled; null for the whole campaign."}),
    "source": {"type": "string", "enum": ["api", "admin", "command"]},
    "actor": obj({"kind": {"type": "string", "enum": ["api_key", "user", "command"]},
                  "name": {"type": "string", "description": "The API key's name, the username, or the operator "
                                                            "a command named."},
                  "prefix": nullable({"type": "string", "description": "The API key's prefix, e.g. dk_a1b2c3d."})},
                 required=["kind", "name", "prefix"]),
    "tasksChanged": {"type": "integer"},
    "fields": {"type": "array", "items": STRING, "description": "The settings an update set."},
    "createdAt": INSTANT,
}, required=["id", "action", "task", "source", "actor", "tasksChanged", "fields", "createdAt"])

WEBHOOK_URL = {"type": "string", "maxLength": 200, "example": "https://hooks.example.com/dialer",
               "pattern": r"^$|^https?://[^/?#\s]+([/?#]\S*)?$",
               "description": "Receives call.ended and task.finished, signed; empty for none. http(s) only, "
                              "and its host must resolve only to public internet addresses (checked when set "
                              "and at every delivery)."}
WORKSPACE = obj({"id": ID, "name": STRING, "organisation": ID, "slots": {"type": "integer"},
                 "slotMode": {"type": "string", "enum": SlotMode.values}, "webhookUrl": WEBHOOK_URL,
                 "createdAt": INSTANT})
WORKSPACE_UPDATE = obj({"webhookUrl": WEBHOOK_URL}, additionalProperties=False)

LEGAL_HOURS = obj({"start": HHMM_START, "end": HHMM_END}, required=["start", "end"], additionalProperties=False,
                  description="HHMM in the callee's local time; an end before the start crosses midnight.")
COMPLIANCE_PROPERTIES = {
    "legalHours": nullable(LEGAL_HOURS),
    "legalDays": nullable({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6},
                           "minItems": 1, "uniqueItems": True, "description": "Weekdays, 0 = Monday."}),
    "countryHours": nullable({"type": "object", "additionalProperties": LEGAL_HOURS,
                              "propertyNames": {"type": "string", "enum": sorted(SUPPORTED_REGIONS)},
                              "description": "Legal hours by the callee's country (ISO 3166 code, e.g. IN)."}),
    "frequencyCap": nullable(obj({
        "attempts": {"type": "integer", "minimum": 1, "maximum": compliance.MAX_CAP_ATTEMPTS},
        "windowHours": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": compliance.MAX_CAP_WINDOW_HOURS},
    }, required=["attempts", "windowHours"], additionalProperties=False,
        description="Calls per number in any window, across the workspace's campaigns.")),
    "predialWebhookUrl": nullable({"type": "string", "maxLength": compliance.MAX_URL_LENGTH,
                                   "pattern": r"^https?://[^/?#\s]+([/?#]\S*)?$",
                                   "description": "Asked right before each call, signed. http(s) only, and its "
                                                  "host must resolve only to public internet addresses (checked "
                                                  "when set and at every check)."}),
    "predialTimeoutMs": nullable({"type": "integer", "minimum": compliance.MIN_PREDIAL_TIMEOUT_MS,
                                  "maximum": compliance.MAX_PREDIAL_TIMEOUT_MS,
                                  "description": f"Default {compliance.DEFAULT_PREDIAL_TIMEOUT_MS}."}),
    "predialFailOpen": nullable({"type": "boolean", "description": "Place the call when the check does not "
                                                                  "answer in time (default false: do not)."}),
    "circuitBreaker": nullable(obj({
        "failureRate": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
        "minAttempts": {"type": "integer", "minimum": 1, "maximum": compliance.MAX_BREAKER_ATTEMPTS},
    }, required=["failureRate", "minAttempts"], additionalProperties=False,
        description="Pause a campaign whose last minAttempts finished attempts failed at this rate or more.")),
}
COMPLIANCE = obj(COMPLIANCE_PROPERTIES, required=list(compliance.FIELDS),
                 description="Null where there is no such rule.")
COMPLIANCE_UPDATE = obj(COMPLIANCE_PROPERTIES, additionalProperties=False,
                        description="Fields given replace the stored ones; null removes a rule.")


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    location=OpenApiParameter.HEADER,
    description="Makes a retry return the first response and create nothing more (per workspace).")
