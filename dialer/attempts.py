"""Finishing an attempt: the outcome decides the task's next step (docs/product.md §1 and Flow 4).

`do_finish_attempt` runs inside the transaction in which telephony ends the call (it is the
receiver of `telephony.signals.call_ended`), so the call's end and the task's next state commit
together; the slot lease is released and the dispatcher nudged only after that commit.
Both read the campaign under `FOR SHARE` before locking the task (the dispatcher's order): a
control's `FOR UPDATE` either committed first, and its status decides the task's, or waits for
this transaction, and its flip or re-timing then finds the task as this left it. So a pause never
leaves a queued task behind it, nor a resume a paused one.
`do_requeue_not_placed_attempt` (the receiver of `telephony.signals.call_not_placed`) undoes an
admission the carrier never took, the same way. `do_free_slot_of_call` (the receiver of
`telephony.signals.call_line_freed`) gives a call's slot back as soon as its line is free, while
its attempt still waits for the agent's analysis.
"""
import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.actions.dnc import do_add_dnc_numbers
from campaigns.models import (
    Campaign, CampaignStatus, CampaignType, CompletionReason, Outcome, Task, TaskStatus, Workspace,
)
from campaigns.rows import instances_from_row, save_fields, select_list
from config.prepared import PreparedStatement
from config.redis_client import get_redis
from dialer import keys, slots
from dialer.compliance import breaker_trips, policy_from_json
from dialer.dispatch_lock import nudge_dispatcher, nudge_dispatcher_for
from dialer.lifecycle import (
    UNFINISHED_TASK_STATUSES, check_task_transition, completion_reason_after_attempt, task_status_after_attempt,
)
from dialer.retry_policy import decide_after_attempt, not_placed_retry_delay
from dialer.scheduling import dispatch_rank, resolve_config
from telephony.models import Call, CallStatus

logger = logging.getLogger(__name__)

CALLBACK_RANK = -(2**31)  # a due callback sorts ahead of every attempt tier in its campaign


@transaction.atomic(savepoint=False)
def do_finish_attempt(call_id, outcome, ended_at, callback_at=None, call=None):
    """Apply an ended call's outcome to its task. Idempotent: a second call for the same attempt,
    or one for a task no longer in progress on this attempt, changes nothing. Returns the task.

    `call`: the call's task_id, attempt, lease_token and organisation_id when the caller has them
    (the `call_ended` signal sends them, with slot_freed and to_number), else they are read. No
    savepoint of its own: inside telephony's transaction it commits or rolls back with the call's
    end. A call whose slot was freed at wrap-up releases nothing, and nudges the dispatcher only
    for work its end makes dialable: its task queued again, or a task held back for its number.
    """
    if call is None:
        call = Call.objects.values("task_id", "attempt", "lease_token", "organisation_id").get(id=call_id)
    campaign, task = _lock_campaign_and_task(call["task_id"])
    organisation_id = call["organisation_id"]
    lease_token = call["lease_token"]
    slot_freed = call.get("slot_freed", False)
    if slot_freed:
        transaction.on_commit(lambda: nudge_dispatcher(organisation_id, held_number=call["to_number"]))
    else:
        transaction.on_commit(lambda: _release_and_nudge(organisation_id, call_id, lease_token))
    if task.status != TaskStatus.IN_PROGRESS or task.attempts_made != call["attempt"]:
        return task
    if campaign.workspace.compliance.get("circuitBreaker"):
        # Robust: the attempt has ended whatever the breaker's judgement meets; the next one judges again.
        transaction.on_commit(lambda: judge_circuit_breaker(campaign.id), robust=True)

    config = resolve_config(task, campaign)
    decision = decide_after_attempt(config, task.attempts_made, outcome, ended_at, callback_at)
    if outcome == Outcome.OPT_OUT:
        do_add_dnc_numbers(organisation_id, [(task.phone, f"opt-out on call {call_id}")])
    task.status = task_status_after_attempt(campaign.status, decision)
    check_task_transition(TaskStatus.IN_PROGRESS, task.status)
    task.last_outcome = outcome
    fields = ["status", "last_outcome", "next_attempt_at", "callback_at", "dispatch_rank", "final_outcome",
              "completion_reason", "completed_at", "updated_at"]
    if task.status in (TaskStatus.QUEUED, TaskStatus.PAUSED):
        task.next_attempt_at = decision.next_attempt_at
        task.callback_at = decision.next_attempt_at if decision.is_callback else None
        task.dispatch_rank = CALLBACK_RANK if decision.is_callback else dispatch_rank(
            campaign.type, task.attempts_made, config.priorities)
        task.final_outcome, task.completion_reason, task.completed_at = "", "", None
        if slot_freed and task.status == TaskStatus.QUEUED:
            transaction.on_commit(lambda: nudge_dispatcher_for(organisation_id, task.next_attempt_at, timezone.now()))
    else:
        task.next_attempt_at = None
        task.callback_at = None
        task.final_outcome = outcome
        task.completion_reason = completion_reason_after_attempt(campaign.status, decision)
        task.completed_at = ended_at
        transaction.on_commit(lambda: _task_finished(task, campaign))
    save_fields(task, fields)
    return task


def do_free_slot_of_call(call_id, organisation_id, lease_token):
    """The call went to wrap-up: once that commits, release its lease and nudge the dispatcher.
    Its task stays in progress until the call ends, so only other work takes the slot."""
    transaction.on_commit(lambda: _release_and_nudge(organisation_id, call_id, lease_token))


@transaction.atomic
def do_requeue_not_placed_attempt(call_id, task_id, attempt, organisation_id, lease_token, is_callback,
                                  retry_after=None, now=None):
    """Give back an attempt the carrier never took (429, 5xx, timeout, concurrency limit).

    The task returns to queued (paused or archived if its campaign was meanwhile) with its
    attempts unchanged, due again after `not_placed_retry_delay`; a due callback stays one. The
    lease is released and the dispatcher nudged after commit. Idempotent like `do_finish_attempt`.
    """
    now = now or timezone.now()
    campaign, task = _lock_campaign_and_task(task_id)
    transaction.on_commit(lambda: _release_and_nudge(organisation_id, call_id, lease_token))
    if task.status != TaskStatus.IN_PROGRESS or task.attempts_made != attempt:
        return task
    refusals = _count_refusal(organisation_id, task.id)
    delay = not_placed_retry_delay(refusals, retry_after, settings.CARRIER_RETRY_BASE_SECONDS,
                                   settings.CARRIER_RETRY_MAX_SECONDS)
    campaign_status = campaign.status
    if campaign_status in (CampaignStatus.ARCHIVED, CampaignStatus.COMPLETED):
        task.status = TaskStatus.ARCHIVED
        task.completion_reason = (CompletionReason.ARCHIVED if campaign_status == CampaignStatus.ARCHIVED
                                  else CompletionReason.ENDED)
        task.next_attempt_at, task.callback_at, task.completed_at = None, None, now
    else:
        task.status = TaskStatus.PAUSED if campaign_status == CampaignStatus.PAUSED else TaskStatus.QUEUED
        task.next_attempt_at = now + dt.timedelta(seconds=delay)
        task.callback_at = task.next_attempt_at if is_callback else None
    check_task_transition(TaskStatus.IN_PROGRESS, task.status)
    task.attempts_made = attempt - 1
    task.save(update_fields=["status", "attempts_made", "next_attempt_at", "callback_at", "completion_reason",
                             "completed_at", "updated_at"])
    if task.status == TaskStatus.ARCHIVED:
        transaction.on_commit(lambda: _task_finished(task, campaign))
    return task


@transaction.atomic
def do_archive_ineligible_attempt(call_id, task_id, attempt, organisation_id, lease_token, now=None):
    """The workspace's pre-dial check refused an admitted call (the receiver of
    `telephony.signals.call_ineligible`): the call was never placed, so the attempt is given back
    and the task archived, reason `ineligible`. The lease is released and the dispatcher nudged
    after commit. Idempotent like `do_finish_attempt`."""
    now = now or timezone.now()
    task = Task.objects.select_for_update().select_related("campaign__workspace").get(id=task_id)
    transaction.on_commit(lambda: _release_and_nudge(organisation_id, call_id, lease_token))
    if task.status != TaskStatus.IN_PROGRESS or task.attempts_made != attempt:
        return task
    check_task_transition(TaskStatus.IN_PROGRESS, TaskStatus.ARCHIVED)
    task.status, task.completion_reason, task.completed_at = TaskStatus.ARCHIVED, CompletionReason.INELIGIBLE, now
    task.next_attempt_at = task.callback_at = None
    task.attempts_made = attempt - 1
    task.save(update_fields=["status", "attempts_made", "next_attempt_at", "callback_at", "completion_reason",
                             "completed_at", "updated_at"])
    transaction.on_commit(lambda: _task_finished(task, task.campaign))
    return task


def judge_circuit_breaker(campaign_id):
    """Pause the campaign when its last finished attempts trip its workspace's circuit breaker
    (`dialer.compliance.breaker_trips`; outcome `failed` counts, which includes a carrier's
    refusal; only attempts admitted since it last tripped): the pause a manual one is, with the
    reason recorded, and `campaign.paused` sent through the signed outbound webhooks in the same
    transaction. Resuming is manual. Returns whether it paused the campaign."""
    from campaigns.actions.compliance import do_trip_circuit_breaker
    from telephony.webhooks_out import enqueue_webhook

    campaign = Campaign.objects.select_related("workspace").get(id=campaign_id)
    policy = policy_from_json(campaign.workspace.compliance)
    if not policy.has_breaker or campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        return False
    calls = Call.objects.filter(campaign_id=campaign_id, status=CallStatus.ENDED)
    if campaign.breaker_tripped_at is not None:
        calls = calls.filter(created_at__gt=campaign.breaker_tripped_at)  # since it was last resumed
    outcomes = list(calls.order_by("-created_at").values_list("outcome", flat=True)[:policy.breaker_min_attempts])
    if not breaker_trips(outcomes, policy.breaker_failure_rate, policy.breaker_min_attempts, Outcome.FAILED):
        return False
    failures = sum(outcome == Outcome.FAILED for outcome in outcomes)
    reason = (f"circuit breaker: {failures} of the last {len(outcomes)} attempts failed "
              f"(the workspace pauses at {policy.breaker_failure_rate:.0%})")
    now = timezone.now()
    with transaction.atomic():
        if not do_trip_circuit_breaker(campaign, reason, now):
            return False
        enqueue_webhook(campaign.workspace, "campaign.paused", {
            "campaign": str(campaign.id), "name": campaign.name, "status": campaign.status, "reason": reason,
            "pausedAt": now,
        })
    logger.warning("campaign %s paused: %s", campaign.id, reason)
    return True


# The call's end and a requeue lock and read the task's campaign (with its workspace) and the
# task in one plain statement: the ORM's compiled selects cost more CPU than the database, and
# a round trip each did too. The order of the locks is the dispatcher's: a subquery that locks
# is never merged into its parent, and the task's lateral subquery needs the campaign's row, so
# the task is locked only once the campaign's FOR SHARE is held.
CAMPAIGN_AND_TASK_LOCKED = PreparedStatement(f"""
SELECT {select_list(Campaign, "c")}, {select_list(Workspace, "w")}, {select_list(Task, "t")}
FROM (SELECT {select_list(Campaign, "campaign")} FROM campaigns_campaign campaign
      WHERE campaign.id = (SELECT campaign_id FROM campaigns_task WHERE id = %(task)s::bigint)
      FOR SHARE) c
JOIN campaigns_workspace w ON w.id = c.workspace_id
CROSS JOIN LATERAL (SELECT {select_list(Task, "task")} FROM campaigns_task task
                    WHERE task.id = %(task)s::bigint AND task.campaign_id = c.id
                    FOR UPDATE) t
""")


def _lock_campaign_and_task(task_id):
    """(campaign with its workspace, task): the campaign's row held FOR SHARE, then the task's FOR
    UPDATE (the dispatcher's order), until the transaction ends; each read once held, so no
    control can change them meanwhile."""
    with connection.cursor() as cursor:
        CAMPAIGN_AND_TASK_LOCKED.execute(cursor, {"task": task_id})
        campaign, workspace, task = instances_from_row(cursor.fetchone(), Campaign, Workspace, Task)
    campaign.workspace = workspace
    return campaign, task


def _count_refusal(organisation_id, task_id):
    key = keys.not_placed_refusals(organisation_id, task_id)
    pipe = get_redis().pipeline()
    pipe.incr(key)
    # Refusals further apart than the longest backoff are not consecutive: start again from the base.
    pipe.expire(key, int(settings.CARRIER_RETRY_MAX_SECONDS * 4) + 60)
    return pipe.execute()[0]


def _release_and_nudge(organisation_id, call_id, lease_token):
    try:
        if lease_token is not None:
            slots.release(organisation_id, str(call_id), lease_token)
    finally:
        # Even when Redis failed the release (the reaper frees orphan leases), nudge the dispatcher.
        nudge_dispatcher(organisation_id)


UNFINISHED_TASK = PreparedStatement(
    "SELECT 1 FROM campaigns_task WHERE campaign_id = %s::bigint AND status = ANY(%s::varchar[]) LIMIT 1")


def _has_unfinished_tasks(campaign_id):
    with connection.cursor() as cursor:
        UNFINISHED_TASK.execute(cursor, [campaign_id, [str(status) for status in UNFINISHED_TASK_STATUSES]])
        return cursor.fetchone() is not None


def _task_finished(task, campaign):
    from campaigns.actions.controls import do_complete_campaign_if_done
    from telephony.webhooks_out import enqueue_webhook

    # Most finished tasks leave others unfinished: one unlocked look says so without locking the
    # campaign. Safe to skip on it: the task still unfinished checks again once it finishes.
    if campaign.type == CampaignType.BATCH and not _has_unfinished_tasks(campaign.id):
        do_complete_campaign_if_done(campaign.id, task.completed_at)
    workspace = campaign.workspace
    if workspace.webhook_url:
        enqueue_webhook(workspace, "task.finished", {
            "task": str(task.id), "campaign": str(task.campaign_id), "phone": task.phone, "status": task.status,
            "finalOutcome": task.final_outcome, "completionReason": task.completion_reason,
            "attemptsMade": task.attempts_made,
        })
