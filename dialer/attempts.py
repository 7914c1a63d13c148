"""Finishing an attempt: the outcome decides the task's next step (DESIGN section 1 and Flow 4).

`do_finish_attempt` runs inside the transaction in which telephony ends the call (it is the
receiver of `telephony.signals.call_ended`), so the call's end and the task's next state commit
together; the slot lease is released and the dispatcher nudged only after that commit.
"""
import logging

from django.db import transaction

from campaigns.dnc import do_add_dnc_numbers
from campaigns.models import CampaignType, Outcome, Task, TaskStatus
from dialer import slots
from dialer.dispatch_lock import nudge_dispatcher
from dialer.lifecycle import completion_reason_after_attempt, task_status_after_attempt
from dialer.retry_policy import decide_after_attempt
from dialer.scheduling import dispatch_rank, resolve_config
from telephony.models import Call

logger = logging.getLogger(__name__)

CALLBACK_RANK = -(2**31)  # a due callback sorts ahead of every attempt tier in its campaign


@transaction.atomic
def do_finish_attempt(call_id, outcome, ended_at, callback_at=None):
    """Apply an ended call's outcome to its task. Idempotent: a second call for the same attempt,
    or one for a task no longer in progress on this attempt, changes nothing. Returns the task.
    """
    call = Call.objects.select_related("campaign__workspace").get(id=call_id)
    task = Task.objects.select_for_update().get(id=call.task_id)
    campaign = call.campaign
    organisation_id = campaign.workspace.organisation_id
    transaction.on_commit(lambda: _after_commit(organisation_id, call))
    if task.status != TaskStatus.IN_PROGRESS or task.attempts_made != call.attempt:
        return task

    config = resolve_config(task, campaign)
    decision = decide_after_attempt(config, task.attempts_made, outcome, ended_at, callback_at)
    if outcome == Outcome.OPT_OUT:
        do_add_dnc_numbers(organisation_id, [(task.phone, f"opt-out on call {call.id}")])
    task.status = task_status_after_attempt(campaign.status, decision)
    task.last_outcome = outcome
    fields = ["status", "last_outcome", "next_attempt_at", "callback_at", "dispatch_rank", "final_outcome",
              "completion_reason", "completed_at", "updated_at"]
    if task.status in (TaskStatus.QUEUED, TaskStatus.PAUSED):
        task.next_attempt_at = decision.next_attempt_at
        task.callback_at = decision.next_attempt_at if decision.is_callback else None
        task.dispatch_rank = CALLBACK_RANK if decision.is_callback else dispatch_rank(
            campaign.type, task.attempts_made, config.priorities)
        task.final_outcome, task.completion_reason, task.completed_at = "", "", None
    else:
        task.next_attempt_at = None
        task.callback_at = None
        task.final_outcome = outcome
        task.completion_reason = completion_reason_after_attempt(campaign.status, decision)
        task.completed_at = ended_at
        transaction.on_commit(lambda: _task_finished(task, campaign))
    task.save(update_fields=fields)
    return task


def _after_commit(organisation_id, call):
    try:
        if call.lease_token is not None:
            slots.release(organisation_id, str(call.id), call.lease_token)
    finally:
        # Even when Redis failed the release (the reaper frees orphan leases), nudge the dispatcher.
        nudge_dispatcher(organisation_id)


def _task_finished(task, campaign):
    from campaigns.controls import do_complete_campaign_if_done
    from telephony.webhooks_out import enqueue_webhook

    if campaign.type == CampaignType.BATCH:
        do_complete_campaign_if_done(campaign.id, task.completed_at)
    workspace = campaign.workspace
    if workspace.webhook_url:
        enqueue_webhook(workspace, "task.finished", {
            "task": str(task.id), "campaign": str(task.campaign_id), "phone": task.phone, "status": task.status,
            "finalOutcome": task.final_outcome, "completionReason": task.completion_reason,
            "attemptsMade": task.attempts_made,
        })
