"""OpenAPI schemas of the API's JSON (raw, since bodies are validated by the domain, not serializers)."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from campaigns.models import CampaignStatus, CampaignType, Carrier, Priority, SlotMode, TaskStatus
from campaigns.realtime import MAX_ATTEMPTS, MAX_EPOCH_MS, MAX_INTERVAL_MS, MAX_PRIORITY, MAX_TASKS_PER_REQUEST
from telephony.models import CallStatus


def nullable(schema):
    return {**schema, "nullable": True}


STRING = {"type": "string"}
ID = {"type": "string", "description": "Object id (a string of digits).", "example": "42"}
E164 = {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$", "example": "+14155550100"}
INSTANT = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (Z)."}
HHMM = {"type": "integer", "minimum": 0, "maximum": 2400, "description": "Time of day as HHMM, e.g. 930."}
EPOCH_MS = {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS, "description": "Epoch milliseconds."}
CONTEXT = {"type": "object", "additionalProperties": True, "description": "Prompt variables (${name})."}


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
}
NOT_FOUND = {404: err("No such object in this workspace (another workspace's objects are 404 too).")}
BAD_REQUEST = {400: err("Invalid request: every error names its field and reason.")}

CREATE_TASK_BODY = obj({
    "phone": E164,
    "campaign": ID,
    "from": {**E164, "description": "A calling number of this workspace (default: the campaign's)."},
    "agent": {**ID, "description": "An agent of this workspace (default: the campaign's)."},
    "start": HHMM,
    "end": HHMM,
    "timezone": {"type": "string", "example": "Asia/Kolkata", "description": "IANA timezone of start/end."},
    "startAfter": EPOCH_MS,
    "endAfter": {**EPOCH_MS, "description": "Epoch ms after which the task is archived; after startAfter."},
    "retries": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS, "description": "Total attempts."},
    "intervals": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_INTERVAL_MS},
                  "description": "Exactly retries - 1 gaps in ms, from the end of one attempt to the next."},
    "priorities": {"type": "array", "items": {"type": "integer", "minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY},
                   "description": "One per attempt; higher dials sooner."},
    "retryOutcomes": {"type": "array", "items": STRING,
                      "description": "voicemail, silent or the agent's custom outcomes."},
    "context": CONTEXT,
}, required=["phone", "campaign"], additionalProperties=False)

TASK = obj({
    "id": ID, "campaign": ID, "phone": E164, "status": {"type": "string", "enum": TaskStatus.values},
    "attemptsMade": {"type": "integer"}, "nextAttemptAt": nullable(INSTANT), "callbackAt": nullable(INSTANT),
    "lastOutcome": nullable(STRING), "finalOutcome": nullable(STRING),
    "completionReason": nullable({**STRING, "description": "connected, exhausted, archived, dnc, ended…"}),
    "context": CONTEXT, "createdAt": INSTANT, "completedAt": nullable(INSTANT),
})

RESOLVED_CONFIG = obj({
    "from": nullable(E164), "agent": ID, "start": HHMM, "end": HHMM, "timezone": STRING,
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

CALLING_HOURS = obj({"start": HHMM, "end": HHMM}, required=["start", "end"])
CAMPAIGN_SETTINGS = {
    "type": {"type": "string", "enum": CampaignType.values},
    "name": {"type": "string", "maxLength": 200},
    "agent": ID,
    "from": nullable({**E164, "description": "Calling number; required for batch campaigns."}),
    "priority": {"type": "string", "enum": Priority.values},
    "timezone": STRING,
    "startAt": INSTANT,
    "endAt": nullable(INSTANT),
    "callingHours": CALLING_HOURS,
    "callingDays": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}},
    "maxRetries": {"type": "integer", "minimum": 0, "description": "Additional attempts (batch)."},
    "retryInterval": {"type": "integer", "minimum": 0, "description": "Milliseconds."},
    "retryOutcomes": {"type": "array", "items": STRING},
    "slots": {"type": "integer", "minimum": 1},
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
    "id": ID, **CAMPAIGN_SETTINGS, "status": {"type": "string", "enum": CampaignStatus.values},
    "contactsUploadedAt": nullable(INSTANT), "createdAt": INSTANT, "updatedAt": INSTANT,
    "completedAt": nullable(INSTANT),
    "taskCounts": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "Tasks per status."},
    "callOutcomes": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "Calls per outcome."},
    "control": {**CONTROL_PROGRESS, "description": "While a control's tasks are changed in the background: "
                                                   "which, and how many of how many. Null otherwise."},
    "sampleTask": {**CREATE_TASK_BODY, "description": "Realtime only: a ready-to-use Create Task body."},
})


def page_of(item_schema):
    return obj({"results": {"type": "array", "items": item_schema},
                "nextCursor": nullable({"type": "string", "description": "Pass as ?cursor= for the next page."})},
               required=["results", "nextCursor"])


PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="nextCursor of the previous page."),
    OpenApiParameter("limit", int, description="Page size, 1 to 500 (default 50)."),
]

CONTROL_RESULT = obj({"changed": {"type": "integer", "description": "Tasks this control changed before answering."},
                      "status": STRING,
                      "control": {**CONTROL_PROGRESS, "description": "Null once every task is changed; else the "
                                                                     "background job's progress."}},
                     required=["changed", "status", "control"])

CONTACT_IMPORT = obj({
    "id": {"type": "string", "format": "uuid"}, "campaign": ID, "filename": STRING,
    "rowsTotal": {"type": "integer"}, "rowsImported": {"type": "integer"}, "duplicates": {"type": "integer"},
    "errorCount": {"type": "integer"},
    "errors": {"type": "array", "items": obj({"row": {"type": "integer"}, "column": STRING, "reason": STRING})},
    "skipInvalid": {"type": "boolean"}, "createdAt": INSTANT,
})
CONTACTS_UPLOAD = obj({"file": {"type": "string", "format": "binary"},
                       "skipInvalid": {"type": "boolean", "description": "Import the good rows, skip bad ones."}},
                      required=["file"])

AGENT_CREATE = obj({"name": {"type": "string", "maxLength": 200},
                    "prompt": {"type": "string", "description": "Template; ${var} comes from task context."},
                    "outcomes": {"type": "array", "items": STRING, "description": "Custom outcomes."}},
                   required=["name"], additionalProperties=False)
AGENT = obj({"id": ID, "name": STRING, "prompt": STRING, "outcomes": {"type": "array", "items": STRING},
             "createdAt": INSTANT})

NUMBER_CREATE = obj({"number": E164, "carrier": {"type": "string", "enum": Carrier.values},
                     "callsPerSecond": {"type": "integer", "minimum": 1}},
                    required=["number"], additionalProperties=False)
NUMBER = obj({"id": ID, "number": E164, "carrier": STRING, "callsPerSecond": {"type": "integer"},
              "createdAt": INSTANT})

DNC_ENTRY_CREATE = obj({"phone": E164, "reason": {"type": "string", "maxLength": 200}},
                       required=["phone"], additionalProperties=False)
DNC_ENTRY = obj({"phone": E164, "reason": STRING, "createdAt": INSTANT})

SLOT_USE = obj({"used": {"type": "integer"}, "allocation": {"type": "integer"},
                "mode": {"type": "string", "enum": SlotMode.values}, "borrowed": {"type": "integer"}})
SLOTS = obj({
    "organisation": obj({"id": ID, **SLOT_USE["properties"]}),
    "workspace": obj({"id": ID, **SLOT_USE["properties"]}),
    "campaigns": {"type": "array", "items": obj({"id": ID, **SLOT_USE["properties"]})},
})


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, location=OpenApiParameter.HEADER,
    description="Makes a retry return the first response and create nothing more (per workspace).")
