"""Inbound webhooks: carrier and voice-AI platform callbacks, and the agent runtime's post-call analysis."""
import datetime as dt
import json
import uuid

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from campaigns.vocabulary import Outcome
from campaigns.actions.tenancy import authenticate_api_key
from campaigns.rows import instances_from_row, select_list
from config.prepared import PreparedStatement
from telephony.events import handle_analysis, handle_event
from telephony.models import Call
from telephony.registry import PROVIDERS, get_provider
from telephony.rules import EventKind, NormalizedEvent
from telephony.webhooks_out import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@csrf_exempt
@require_POST
def carrier_status(request, carrier):
    """A carrier's (or a voice-AI platform's) call-progress callback. Unsigned or forged → 403 and
    nothing is stored."""
    if carrier not in PROVIDERS:
        return HttpResponse(status=404)
    provider = get_provider(carrier)
    if not provider.verify_webhook(request):
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    for event in provider.parse_webhook(request):
        handle_event(event)
    return HttpResponse(status=204)


# Every agent analysis reads its call this way: plain SQL, because compiling the ORM's join
# cost several times what the database spends on it.
WORKSPACE_CALL = PreparedStatement(f"""
SELECT {select_list(Call, "c")} FROM telephony_call c JOIN campaigns_campaign ca ON ca.id = c.campaign_id
WHERE c.id = %s::uuid AND ca.workspace_id = %s::bigint
""")


def workspace_call_or_none(workspace, call_id):
    """The workspace's call, or None: the same answer whether it is missing or someone else's."""
    try:
        call_uuid = uuid.UUID(str(call_id))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        WORKSPACE_CALL.execute(cursor, [str(call_uuid), workspace.id])
        row = cursor.fetchone()
    return instances_from_row(row, Call)[0] if row is not None else None


def _call_for_signed_request(request, call_id):
    """The call whose workspace secret signs this request, or None (unknown call or bad signature)."""
    try:
        call_uuid = uuid.UUID(str(call_id))
    except ValueError:
        return None
    call = Call.objects.select_related("agent", "campaign__workspace").filter(id=call_uuid).first()
    if call is None:
        return None
    secret = call.campaign.workspace.webhook_secret
    if not verify_signature(secret, request.headers.get(TIMESTAMP_HEADER), request.body,
                            request.headers.get(SIGNATURE_HEADER)):
        return None
    return call


def _authenticated_call(request, call_id):
    """(call, error response): Bearer workspace API key, or an HMAC signature by the workspace secret."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        api_key = authenticate_api_key(authorization.removeprefix("Bearer ").strip())
        if api_key is None:
            return None, JsonResponse({"detail": "Invalid API key."}, status=401)
        call = workspace_call_or_none(api_key.workspace, call_id)
        return call, None if call else JsonResponse({"detail": "Not found."}, status=404)
    if request.headers.get(SIGNATURE_HEADER):
        call = _call_for_signed_request(request, call_id)
        return call, None if call else JsonResponse({"detail": "Invalid signature."}, status=403)
    return None, JsonResponse({"detail": "Authentication required (Bearer API key or X-Dialer-Signature)."},
                              status=401)


def _callback_time(value):
    """`callbackAt`: ISO-8601 with an offset, or epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError
    return parsed


def parse_analysis(body, call):
    """The agent's analysis body → (analysis dict, recording URL), or raise ValueError({field: reason})."""
    errors = {}
    outcome = body.get("outcome") or ""
    standard = {o.value for o in Outcome}
    if outcome and outcome not in standard:  # only then is the agent (and its own outcomes) read
        allowed = standard | set(call.agent.outcomes if call.agent else [])
        if outcome not in allowed:
            errors["outcome"] = f"Unknown outcome {outcome!r}; this agent may report: {', '.join(sorted(allowed))}."
    callback_at = None
    if body.get("callbackAt") not in (None, ""):
        try:
            callback_at = _callback_time(body["callbackAt"])
        except (TypeError, ValueError, OverflowError, OSError):
            errors["callbackAt"] = "Must be ISO-8601 with a UTC offset, or epoch milliseconds."
    elif outcome == Outcome.CALLBACK:
        errors["callbackAt"] = "Required when the outcome is callback."
    fields = body.get("fields", {})
    if not isinstance(fields, dict):
        errors["fields"] = "Must be an object of custom fields."
    for name in ("transcript", "summary", "recordingUrl"):
        if not isinstance(body.get(name, ""), str):
            errors[name] = "Must be a string."
    if errors:
        raise ValueError(errors)
    analysis = {"outcome": outcome, "summary": body.get("summary", ""), "transcript": body.get("transcript", ""),
                "fields": fields}
    if callback_at is not None:
        analysis["callback_at"] = callback_at.isoformat()
    return analysis, body.get("recordingUrl", "")


@csrf_exempt
@require_POST
def agent_analysis(request):
    """The agent runtime's post-call result, merged with the carrier's status into the final outcome."""
    try:
        body = json.loads(request.body)
    except ValueError:
        return JsonResponse({"detail": "Body must be JSON."}, status=400)
    if not isinstance(body, dict) or not body.get("callId"):
        return JsonResponse({"callId": ["Required."]}, status=400)
    call, error = _authenticated_call(request, body["callId"])
    if error is not None:
        return error
    try:
        analysis, recording_url = parse_analysis(body, call)
    except ValueError as exc:
        return JsonResponse({field: [reason] for field, reason in exc.args[0].items()}, status=400)
    applied, status, outcome = handle_analysis(NormalizedEvent(
        carrier=call.carrier, kind=EventKind.ANALYSIS, carrier_call_id=call.carrier_call_id or "",
        call_id=str(call.id), recording_url=recording_url, analysis=analysis, raw={"source": "agent", **body}))
    if status is None:
        return JsonResponse({"detail": "Not found."}, status=404)  # withdrawn (never placed) meanwhile
    return JsonResponse({"callId": str(call.id), "applied": applied, "status": status, "outcome": outcome})


@require_GET
def agent_call(request, call_id):
    """What the agent runtime needs to run a call: the rendered prompt and the task's context."""
    call, error = _authenticated_call(request, call_id)
    if error is not None:
        return error
    context = {k: v for k, v in (call.task.context or {}).items() if not k.startswith("_")}
    return JsonResponse({"callId": str(call.id), "agentId": call.agent_id, "prompt": call.prompt,
                         "context": context, "from": call.from_number, "to": call.to_number,
                         "attempt": call.attempt, "status": call.status})
