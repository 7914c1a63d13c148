"""Read-only figures for the operator dashboard in the admin. Every query rests on an index.

Counts and pages come from `task_campaign_status` (campaign, status, id), compliance holds from
`task_held` and `task_ineligible` (partial: only held or refused tasks), call figures from
`call_attempt_unique_per_task`, `call_campaign_outcome` and `call_campaign_created`; live slot use comes from
Redis (`dialer.slots.usage`), once per organisation shown, never once per row.
"""
import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Max, Min
from django.db.models.functions import Trunc

from campaigns.models import CompletionReason, HeldBy, Task, TaskStatus, Workspace
from dialer import slots
from telephony.models import Call

TASK_STATUSES = [status.value for status in TaskStatus]
FINISHED_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.ARCHIVED)
TASK_PAGE_SIZE = 50
# Calls over time: at most this many of the most recent buckets, at a unit chosen from the span.
TIMELINE_BUCKETS = 60
# A young campaign's first minutes are shown on a 30-minute axis, not as two full-width bars.
TIMELINE_MIN_BUCKETS = 30
TIMELINE_UNITS = (("minute", dt.timedelta(minutes=1)), ("hour", dt.timedelta(hours=1)), ("day", dt.timedelta(days=1)))


@dataclass(frozen=True)
class Progress:
    """Tasks of one campaign by status; `done` counts completed and archived ones."""

    counts: dict
    total: int
    done: int

    @property
    def percent(self):
        return round(100 * self.done / self.total, 1) if self.total else 0.0

    def as_json(self):
        return {"counts": self.counts, "total": self.total, "done": self.done, "percent": self.percent}


def _progress(counts):
    full = {status: counts.get(status, 0) for status in TASK_STATUSES}
    return Progress(counts=full, total=sum(full.values()),
                    done=sum(full[status] for status in FINISHED_TASK_STATUSES))


def progress_by_campaign(campaign_ids):
    """{campaign_id: Progress} for every id given, in one grouped query."""
    found = {campaign_id: {} for campaign_id in campaign_ids}
    rows = (Task.objects.filter(campaign_id__in=list(found))
            .values_list("campaign_id", "status").annotate(count=Count("id")).order_by())
    for campaign_id, status, count in rows:
        found[campaign_id][status] = count
    return {campaign_id: _progress(counts) for campaign_id, counts in found.items()}


def compliance_holds(campaign):
    """Tasks the workspace's compliance rules hold or refused: {"legal_hours", "frequency_cap"}
    (queued, waiting on that rule) and "predial_refusals" (archived by the pre-dial check)."""
    held = dict(Task.objects.filter(campaign_id=campaign.id, status=TaskStatus.QUEUED).exclude(held_by=HeldBy.NONE)
                .values_list("held_by").annotate(count=Count("id")).order_by())
    refused = Task.objects.filter(campaign_id=campaign.id, completion_reason=CompletionReason.INELIGIBLE).count()
    return {"legal_hours": held.get(HeldBy.LEGAL_HOURS, 0), "frequency_cap": held.get(HeldBy.FREQUENCY_CAP, 0),
            "predial_refusals": refused}


def live_slots(organisation_ids):
    """{organisation_id: dialer.slots.usage(organisation_id)}: one Redis call per organisation."""
    return {organisation_id: slots.usage(organisation_id) for organisation_id in sorted(set(organisation_ids))}


def campaign_slots(campaign, usage):
    """Live calls against the campaign's slots, from an organisation's usage readout."""
    node = usage["campaigns"].get(campaign.id)
    if node is None:
        # Not in Redis yet (the dispatcher has not run since it was created): nothing live.
        return {"used": 0, "allocation": campaign.slots, "mode": campaign.slot_mode, "borrowed": 0}
    return {key: node[key] for key in ("used", "allocation", "mode", "borrowed")}


def slots_panel(organisations):
    """The live slots panel: per organisation, its total and each workspace's use.

    `organisations` is a list of Organisation rows; workspaces come in one query.
    Returns [{"id", "name", "used", "allocation", "borrowed", "workspaces": [{...}]}].
    """
    usage = live_slots([organisation.id for organisation in organisations])
    workspaces = {}
    for workspace in Workspace.objects.filter(organisation__in=organisations).order_by("organisation_id", "name"):
        workspaces.setdefault(workspace.organisation_id, []).append(workspace)
    panel = []
    for organisation in organisations:
        readout = usage[organisation.id]
        org_node = readout["organisation"]
        rows = []
        for workspace in workspaces.get(organisation.id, []):
            node = readout["workspaces"].get(workspace.id) or {"used": 0, "borrowed": 0}
            rows.append({"id": workspace.id, "name": workspace.name, "used": node["used"],
                         "allocation": workspace.slots, "mode": workspace.slot_mode, "borrowed": node["borrowed"]})
        panel.append({"id": organisation.id, "name": organisation.name, "used": org_node["used"],
                      "allocation": organisation.total_slots, "borrowed": 0, "workspaces": rows,
                      "campaigns": {str(campaign_id): {"used": node["used"], "allocation": node["allocation"]}
                                    for campaign_id, node in readout["campaigns"].items()}})
    return panel


def task_page(campaign, status=None, after=None, size=TASK_PAGE_SIZE):
    """One page of a campaign's tasks in id order, optionally of one status, after task id `after`.

    Keyset pagination on (campaign, status, id): the page costs the same at task 100,000 as at
    task 1. Returns (tasks, next_after or None).
    """
    tasks = campaign.tasks.order_by("id")
    if status:
        tasks = tasks.filter(status=status)
    if after is not None:
        tasks = tasks.filter(id__gt=after)
    rows = list(tasks.only("id", "phone", "status", "attempts_made", "next_attempt_at", "last_outcome",
                           "final_outcome", "completion_reason", "campaign_id")[:size + 1])
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


def outcome_breakdown(campaign):
    """[(outcome, calls)] of ended calls, most frequent first; index (campaign, outcome)."""
    rows = (Call.objects.filter(campaign_id=campaign.id).exclude(outcome="")
            .values_list("outcome").annotate(count=Count("id")).order_by("-count", "outcome"))
    return [(outcome, count) for outcome, count in rows]


def calls_over_time(campaign):
    """(unit, [(bucket_start, calls)]): calls admitted per minute, hour or day, the most recent
    TIMELINE_BUCKETS buckets, empty buckets included; index (campaign, created_at)."""
    calls = Call.objects.filter(campaign_id=campaign.id)
    span = calls.aggregate(first=Min("created_at"), last=Max("created_at"))
    if span["first"] is None:
        return "minute", []
    unit, step = next(((name, step) for name, step in TIMELINE_UNITS
                       if span["last"] - span["first"] <= step * TIMELINE_BUCKETS), TIMELINE_UNITS[-1])
    last = _truncate(span["last"], unit)
    first = max(_truncate(span["first"], unit), last - step * (TIMELINE_BUCKETS - 1))
    first = min(first, last - step * (TIMELINE_MIN_BUCKETS - 1))
    counts = dict(calls.filter(created_at__gte=first).annotate(bucket=Trunc("created_at", unit))
                  .values_list("bucket").annotate(count=Count("id")).order_by())
    buckets = []
    moment = first
    while moment <= last:
        buckets.append((moment, counts.get(moment, 0)))
        moment += step
    return unit, buckets


def _truncate(instant, unit):
    instant = instant.astimezone(dt.UTC)
    if unit == "minute":
        return instant.replace(second=0, microsecond=0)
    if unit == "hour":
        return instant.replace(minute=0, second=0, microsecond=0)
    return instant.replace(hour=0, minute=0, second=0, microsecond=0)


# Chart geometry, in SVG user units. The templates draw what these functions compute.
BAR_CHART_WIDTH = 520
BAR_ROW_HEIGHT = 22
BAR_LABEL_WIDTH = 110
TIMELINE_WIDTH = 600
TIMELINE_HEIGHT = 140


def outcome_bars(breakdown):
    """Horizontal bars for `outcome_breakdown`: [{"label", "count", "y", "width", "percent"}]."""
    total = sum(count for _, count in breakdown)
    top = max((count for _, count in breakdown), default=0)
    room = BAR_CHART_WIDTH - BAR_LABEL_WIDTH - 100
    return {
        "width": BAR_CHART_WIDTH, "height": BAR_ROW_HEIGHT * len(breakdown), "label_width": BAR_LABEL_WIDTH,
        "bars": [{"label": outcome, "count": count, "y": index * BAR_ROW_HEIGHT,
                  "width": max(1, round(room * count / top)), "percent": round(100 * count / total, 1)}
                 for index, (outcome, count) in enumerate(breakdown)],
    }


def timeline_bars(unit, buckets):
    """Vertical bars for `calls_over_time`: [{"x", "y", "width", "height", "count", "label"}] plus axis labels."""
    if not buckets:
        return {"width": TIMELINE_WIDTH, "height": TIMELINE_HEIGHT, "bars": [], "unit": unit, "peak": 0}
    peak = max(count for _, count in buckets) or 1
    plot_height = TIMELINE_HEIGHT - 20
    slot = TIMELINE_WIDTH / len(buckets)
    label_format = "%d %b" if unit == "day" else "%H:%M"
    bars = []
    for index, (moment, count) in enumerate(buckets):
        height = round(plot_height * count / peak, 1)
        bars.append({"x": round(index * slot + 1, 1), "width": round(max(1.0, slot - 2), 1),
                     "y": round(plot_height - height, 1), "height": height, "count": count,
                     "label": moment.strftime(label_format + " UTC")})
    return {"width": TIMELINE_WIDTH, "height": TIMELINE_HEIGHT, "plot_height": plot_height, "bars": bars,
            "unit": unit, "peak": peak, "first_label": bars[0]["label"], "last_label": bars[-1]["label"]}


CONTROL_VERBS = {"pause": "pausing", "resume": "resuming", "archive": "archiving", "update": "re-timing",
                 "end": "ending"}


def control_text(control):
    """A running control's progress for people, "" when none: e.g. {"action": "pause", "done":
    120000, "total": 300000} → "pausing: 120,000 of 300,000 tasks"; a total not yet counted → "pausing:
    120,000 tasks so far"."""
    if not control:
        return ""
    verb = CONTROL_VERBS[control["action"]]
    if control["total"] is None:
        return f"{verb}: {control['done']:,} tasks so far"
    return f"{verb}: {control['done']:,} of {control['total']:,} tasks"
