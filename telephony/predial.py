"""The workspace's pre-dial check: asked right before each call is placed, in the dial job.

When the workspace's compliance policy names a `predialWebhookUrl`, each claimed call is POSTed
there first, all of a job's calls at once (the check is I/O, like placing), through
`telephony.outbound` and signed like the outbound webhooks (`telephony.webhooks_out.sign`, with
the workspace's webhook secret; event `call.predial`). Body:
`{"callId", "taskId", "campaignId", "phone", "attempt", "context"}`. The answer decides:

- `{"eligible": true}` within `predialTimeoutMs`: the call is placed;
- `{"eligible": false}`: the call is not placed; its Call row goes and `call_ineligible` is sent
  (the dialer archives the task, reason `ineligible`, and frees the slot);
- anything else (timeout, error, another status or body): with `predialFailOpen` the call is
  placed; otherwise (fail closed) it is not, as a carrier that could not take it: `call_not_placed`
  (the dialer queues the task again a little later, not as an attempt, and frees the slot).
"""
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import transaction

from campaigns.models import Workspace
from telephony.models import Call, CallStatus
from telephony.outbound import OutboundError, OutboundSession
from telephony.signals import call_ineligible, call_not_placed
from telephony.webhooks_out import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

logger = logging.getLogger(__name__)

EVENT = "call.predial"
ELIGIBLE, INELIGIBLE, UNANSWERED = "eligible", "ineligible", "unanswered"
RESPONSE_LIMIT_BYTES = 16 * 1024


def body(call):
    return {"callId": str(call.id), "taskId": call.task_id, "campaignId": call.campaign_id, "phone": call.to_number,
            "attempt": call.attempt, "context": call.task.context or {}}


def ask(url, secret, payload, timeout_ms):
    """ELIGIBLE, INELIGIBLE or UNANSWERED, and a short reason of ours. Runs in a thread: no ORM."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", EVENT_HEADER: EVENT, TIMESTAMP_HEADER: str(timestamp),
               SIGNATURE_HEADER: sign(secret, timestamp, raw), "User-Agent": "dialer-predial/1"}
    seconds = timeout_ms / 1000
    try:
        with OutboundSession() as session:
            response = session.request("POST", url, body=raw, headers=headers, connect_timeout=seconds,
                                       total_timeout=seconds, max_bytes=RESPONSE_LIMIT_BYTES)
    except OutboundError as exc:
        return UNANSWERED, exc.reason
    if not response.ok:
        return UNANSWERED, f"answered HTTP {response.status}"
    try:
        eligible = json.loads(response.body).get("eligible")
    except (ValueError, AttributeError):
        return UNANSWERED, "answered something other than a JSON object"
    if not isinstance(eligible, bool):
        return UNANSWERED, "answered without a boolean eligible"
    return (ELIGIBLE, "") if eligible else (INELIGIBLE, "")


def screen(calls):
    """The claimed `calls` that may be placed now, in order; every other one is settled here (its
    Call row deleted and the dialer told, which frees its slot). Calls whose workspace has no
    pre-dial check (`call.has_predial_check`, read with the claim) pass untouched, without a query;
    the others' policies are read in one."""
    checked = {call.campaign.workspace_id for call in calls if call.has_predial_check}
    if not checked:
        return calls
    checks = {workspace_id: (policy, secret) for workspace_id, policy, secret in
              Workspace.objects.filter(id__in=checked).values_list("id", "compliance", "webhook_secret")
              if policy.get("predialWebhookUrl")}
    asked = [call for call in calls if call.campaign.workspace_id in checks]
    if not asked:
        return calls
    answers = dict(zip((call.id for call in asked), _ask_concurrently(asked, checks)))
    to_place = []
    for call in calls:
        if call.id not in answers:
            to_place.append(call)
            continue
        verdict, reason = answers[call.id]
        policy = checks[call.campaign.workspace_id][0]
        if verdict == ELIGIBLE or (verdict == UNANSWERED and policy.get("predialFailOpen")):
            to_place.append(call)
            continue
        logger.info("pre-dial check %s call %s: %s", verdict, call.id, reason)
        try:
            _withdraw(call.id, call_ineligible if verdict == INELIGIBLE else call_not_placed,
                      f"pre-dial check: {reason or verdict}")
        except Exception:  # one call's bookkeeping failure must not strand the others in this job
            logger.exception("settling call %s after its pre-dial check failed", call.id)
    return to_place


def _ask_one(call, checks):
    policy, secret = checks[call.campaign.workspace_id]
    # The policy stores its timeout (or the default) with the URL.
    return ask(policy["predialWebhookUrl"], secret, body(call), policy["predialTimeoutMs"])


def _ask_concurrently(calls, checks):
    if len(calls) == 1:
        return [_ask_one(calls[0], checks)]
    with ThreadPoolExecutor(max_workers=min(len(calls), settings.DIAL_PLACING_THREADS),
                            thread_name_prefix="predial") as pool:
        return list(pool.map(lambda call: _ask_one(call, checks), calls))


@transaction.atomic
def _withdraw(call_id, signal, reason):
    """The call is not placed: its row goes (it was never a call) and `signal` tells the dialer, in
    one transaction, as `telephony.calls` does for a carrier that could not take a call."""
    call = (Call.objects.select_for_update(of=("self",))
            .filter(id=call_id, status=CallStatus.ADMITTED, carrier_call_id__isnull=True).first())
    if call is None:
        return False  # the reaper settled it meanwhile
    signal.send(sender=Call, call_id=call.id, task_id=call.task_id, attempt=call.attempt,
                organisation_id=call.organisation_id, lease_token=call.lease_token, is_callback=call.is_callback,
                retry_after=None, reason=reason)
    call.delete()
    return True
