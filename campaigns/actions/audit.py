"""The audit trail of operator controls: who paused, resumed, archived or updated a campaign (or
one of its tasks), when, through what, and how many tasks it changed.

A control is recorded in its own transaction, so a control that is refused or rolled back leaves
no record and a recorded one happened. A campaign control records itself when given the actor
(`do_pause_campaign(campaign, actor)`): in the transaction that changes the campaign, its tasks
changed counted in by the request's first batch (`do_count_tasks_changed`), so the campaign's row
lock is not held through that batch. Call sites of a task control record it in the control's
transaction:

    with transaction.atomic():
        changed = do_pause_task(task)
        do_record_control("pause", actor, changed, task=task)
"""
from dataclasses import dataclass

from campaigns.models import ActorKind, ControlRecord, ControlSource

ACTIONS = ("pause", "resume", "archive", "update")


@dataclass(frozen=True)
class Actor:
    """Who made a control, and through what (`ControlSource`)."""

    source: str
    kind: str
    name: str
    prefix: str = ""
    user: object = None
    api_key: object = None

    @classmethod
    def for_api_key(cls, api_key):
        return cls(ControlSource.API, ActorKind.API_KEY, api_key.name, api_key.prefix, api_key=api_key)

    @classmethod
    def for_admin_user(cls, user):
        return cls(ControlSource.ADMIN, ActorKind.USER, user.get_username(), user=user)

    @classmethod
    def for_command(cls, operator):
        return cls(ControlSource.COMMAND, ActorKind.COMMAND, operator)


def do_record_control(action, actor, tasks_changed, campaign=None, task=None, fields=()):
    """Record one control of `campaign`, or of one `task` (its campaign's history shows it); call
    it inside the control's transaction. `fields` are the settings an update set (model names)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control {action!r}")
    return ControlRecord.objects.create(
        campaign_id=campaign.id if task is None else task.campaign_id, task_id=task.id if task else None,
        action=action,
        source=actor.source, actor_kind=actor.kind, actor_name=actor.name[:200], actor_prefix=actor.prefix,
        user=actor.user, api_key=actor.api_key, tasks_changed=tasks_changed or 0,
        details={"fields": sorted(fields)} if fields else {})


def do_count_tasks_changed(record, tasks_changed):
    """Add the tasks a campaign control changed in its request's first batch to its record; call it
    in that batch's transaction."""
    ControlRecord.objects.filter(id=record.id).update(tasks_changed=tasks_changed)
    record.tasks_changed = tasks_changed


def campaign_history(campaign_id):
    """The campaign's control records, for paging by id (newest first)."""
    return ControlRecord.objects.filter(campaign_id=campaign_id)
