"""The workspace's compliance policy (docs/product.md §1, compliance): setting it, and a campaign
pausing itself under it.

A policy change applies at once to every attempt not yet placed: the dispatcher re-checks each
candidate against the policy right before admitting it, and the tasks a rule held (`held_by`) are
made due now, so that a widened rule dials them without delay and a narrowed one re-times them
on that same re-check. The dispatcher is nudged after the commit.
"""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.actions.controls import ControlRefused, do_pause_campaign
from campaigns.models import Campaign, CampaignStatus, HeldBy, Task, TaskStatus, Workspace
from campaigns.signals import tasks_changed
from dialer.compliance import InvalidPolicy, parse_policy
from telephony.outbound import validate_outbound_url

MAX_PAUSED_REASON_LENGTH = Campaign._meta.get_field("paused_reason").max_length


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
    held = Task.objects.filter(campaign_id__in=Campaign.objects.filter(workspace_id=locked.id).values("id"),
                               status=TaskStatus.QUEUED).exclude(held_by=HeldBy.NONE)
    if held.update(next_attempt_at=now, updated_at=now):
        organisation_id = locked.organisation_id
        transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))
    return stored


def do_pause_campaign_for_compliance(campaign, reason):
    """Pause a running or scheduled campaign as a manual pause does, recording why (shown in the
    admin and the API until it is resumed). False when it was no longer pausable. Call it inside
    the transaction that also reports the pause."""
    try:
        do_pause_campaign(campaign)
    except ControlRefused:
        return False
    Campaign.objects.filter(id=campaign.id, status=CampaignStatus.PAUSED).update(
        paused_reason=reason[:MAX_PAUSED_REASON_LENGTH])
    campaign.paused_reason = reason[:MAX_PAUSED_REASON_LENGTH]
    return True
