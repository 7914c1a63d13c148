"""The workspace's compliance policy (docs/product.md §1, compliance): setting it, and a campaign
pausing itself under it.

A policy change applies at once to every attempt not yet placed: the dispatcher re-checks each
candidate against the policy right before admitting it, and the tasks a rule held (`held_by`) are
released (made due now, no longer marked held), so that a widened rule dials them without delay
and a narrowed one holds them again on that same re-check. The change releases the first
CONTROL_INLINE_TASKS itself and leaves the rest to the job `campaigns.release_held_tasks`
(CONTROL_BATCH_TASKS a transaction), as the campaign controls do; the dispatcher is nudged after
each commit that released any.
"""
import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from campaigns.actions.controls import ControlRefused, do_pause_campaign
from campaigns.models import Campaign, CampaignStatus, Task, Workspace
from campaigns.signals import tasks_changed
from config.jobs import Job, enqueue
from dialer.compliance import InvalidPolicy, parse_policy
from telephony.outbound import validate_outbound_url

MAX_PAUSED_REASON_LENGTH = Campaign._meta.get_field("paused_reason").max_length

# Up to a batch of the workspace's tasks held before `changed_at` (the partial index task_held),
# made due. A released task leaves the index, so each batch reads only what is left; the outer
# condition is checked again on a row a dispatcher pass held meanwhile.
RELEASE_HELD_SQL = """
UPDATE campaigns_task
SET next_attempt_at = %s, held_by = '', updated_at = %s
WHERE id IN (
    SELECT t.id FROM campaigns_task t
    WHERE t.campaign_id IN (SELECT id FROM campaigns_campaign WHERE workspace_id = %s)
      AND t.status = 'queued' AND t.held_by <> '' AND t.updated_at < %s
    LIMIT %s)
  AND status = 'queued' AND held_by <> ''
"""


def validate_policy(body, current=None):
    """The policy JSON to store after applying `body` to `current`, or `ValidationError` keyed by
    the camelCase field (dotted for nested ones: `legalHours.start`). The pre-dial URL must be one
    `telephony.outbound` would call (resolved now, and again at every check)."""
    try:
        stored = parse_policy(body, current)
    except InvalidPolicy as exc:
        errors = {}
        for field, reason in exc.errors:
            errors.setdefault(field or "__all__", []).append(reason)
        raise ValidationError(errors) from None
    if isinstance(body, dict) and body.get("predialWebhookUrl"):
        validate_outbound_url(stored["predialWebhookUrl"], "predialWebhookUrl")
    return stored


@transaction.atomic
def do_set_compliance_policy(workspace, body, replace=False, now=None):
    """Apply `body` to the workspace's policy (a PATCH: given fields replace, null removes; with
    `replace`, `body` is the whole policy). Returns the stored policy."""
    now = now or timezone.now()
    locked = Workspace.objects.select_for_update().get(id=workspace.id)
    stored = validate_policy(body, None if replace else locked.compliance)
    Workspace.objects.filter(id=locked.id).update(compliance=stored)
    workspace.compliance = stored
    released = _release_held(locked, now, settings.CONTROL_INLINE_TASKS)
    if released == settings.CONTROL_INLINE_TASKS:
        transaction.on_commit(lambda: enqueue(Job.RELEASE_HELD_TASKS, locked.id, now.isoformat()))
    return stored


def release_held_tasks(workspace_id, changed_at):
    """Release, a batch a transaction, the tasks of the workspace still held from before
    `changed_at` (ISO 8601): the body of `campaigns.release_held_tasks`. Returns how many."""
    changed_at = dt.datetime.fromisoformat(changed_at)
    workspace = Workspace.objects.filter(id=workspace_id).first()
    total = 0
    while workspace is not None:
        with transaction.atomic():
            released = _release_held(workspace, changed_at, settings.CONTROL_BATCH_TASKS)
        total += released
        if released < settings.CONTROL_BATCH_TASKS:
            break
    return total


def _release_held(workspace, changed_at, limit):
    with connection.cursor() as cursor:
        cursor.execute(RELEASE_HELD_SQL, [changed_at, changed_at, workspace.id, changed_at, limit])
        released = cursor.rowcount
    if released:
        organisation_id = workspace.organisation_id
        transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))
    return released


def do_trip_circuit_breaker(campaign, reason, now):
    """Pause a running or scheduled campaign as a manual pause does, recording why (shown in the
    admin and the API until it is resumed) and when: the attempts admitted before `now` never
    count for its breaker again, so a resumed campaign starts afresh. False when it was no longer
    pausable. Call it inside the transaction that also reports the pause."""
    try:
        do_pause_campaign(campaign)
    except ControlRefused:
        return False
    campaign.paused_reason, campaign.breaker_tripped_at = reason[:MAX_PAUSED_REASON_LENGTH], now
    Campaign.objects.filter(id=campaign.id, status=CampaignStatus.PAUSED).update(
        paused_reason=campaign.paused_reason, breaker_tripped_at=now)
    return True
