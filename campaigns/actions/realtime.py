"""Realtime campaigns: the Create Task API's validation and its all-or-nothing bulk create.

A body is docs/product.md §1's Create Task body, camelCase, exactly:

    {"phone": "+919876543210", "from": "+918012345678", "agent": "7", "start": 1000, "end": 1800,
     "timezone": "Asia/Kolkata", "startAfter": 1748629800000, "endAfter": 1748716200000,
     "priorities": [100, 50], "retries": 2, "intervals": [180000], "retryOutcomes": ["voicemail"],
     "context": {"name": "Tarun"}, "campaign": "12"}

Only `phone` and `campaign` are required. A task stores only what was submitted (its config
columns stay null otherwise), so a later campaign update reaches every inherited setting.

A number on the organisation's do-not-call list is accepted but its task is created already
`archived` with completion reason `dnc`: the caller sees that in the response, a bulk request is
not refused for one listed number, and the number is never dialed. Likewise a task whose end
comes before any calling window opens is created `archived` with reason `ended`.
"""
import datetime as dt

from django.db import transaction
from django.utils import timezone as django_timezone

from campaigns.access import parse_bigint_id
from campaigns.actions.dnc import InvalidPhone, listed_numbers, parse_e164
from campaigns.json_values import is_json_int
from campaigns.models import (
    Agent, CallingNumber, Campaign, CampaignStatus, CampaignType, CompletionReason, Outcome, Task, TaskStatus,
)
from campaigns.phone_numbers import callee_zones, explicit_zone
from campaigns.prompts import prompt_variables
from campaigns.signals import tasks_changed
from campaigns.actions.task_store import insert_tasks
from dialer.compliance import first_legal_attempt, policy_from_json
from dialer.retry_policy import NEVER_RETRIED
from dialer.scheduling import MAX_RETRY_INTERVAL_MS, dispatch_rank, first_attempt_at, resolve_config
from dialer.windows import InvalidTimezone, hhmm_to_time, time_to_hhmm, zone

MAX_TASKS_PER_REQUEST = 1000
MAX_ATTEMPTS = 100
MAX_PRIORITY = 2**31 - 1
# Epoch milliseconds of 9999-12-31T23:59:59.999Z, the last instant a datetime can hold.
MAX_EPOCH_MS = 253_402_300_799_999
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

FIELDS = ("phone", "campaign", "from", "agent", "start", "end", "timezone", "startAfter", "endAfter",
          "priorities", "retries", "intervals", "retryOutcomes", "context")
# Everything but who to call, where, and what to say: the task's submitted config.
CONFIG_FIELDS = tuple(f for f in FIELDS if f not in ("phone", "campaign", "context"))
BUILT_IN_OUTCOMES = frozenset(Outcome.values)
# A sample number in the range reserved for fiction (555-01xx), valid for phonenumbers.
SAMPLE_PHONE = "+14155550100"


class InvalidTasks(ValueError):
    """Raised when any body is invalid; `errors` is [{"index", "field", "message"}], complete."""

    def __init__(self, errors):
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def epoch_ms(instant):
    return None if instant is None else (instant - EPOCH) // dt.timedelta(milliseconds=1)


def sample_task_body(campaign):
    """A Create Task body that works as it is for `campaign`, carrying the campaign's defaults.

    The phone is a fictional sample; `context` names every `${variable}` of the agent's prompt.
    """
    body = {
        "phone": SAMPLE_PHONE,
        "campaign": str(campaign.id),
        "agent": str(campaign.agent_id),
        "start": time_to_hhmm(campaign.calling_start),
        "end": time_to_hhmm(campaign.calling_end),
        "timezone": campaign.timezone,
        # Epoch milliseconds cannot be negative; a start before 1970 is in the past either way.
        "startAfter": max(epoch_ms(campaign.start_at), 0),
        "retries": campaign.max_attempts,
        "intervals": [campaign.retry_interval_ms] * campaign.max_retries,
        "priorities": [100] * campaign.max_attempts,
        "retryOutcomes": list(campaign.retry_outcomes),
        "context": {name: "" for name in prompt_variables(campaign.agent.prompt)},
    }
    # Without a campaign default, tasks must name their caller ID: suggest the workspace's first.
    number = campaign.calling_number or campaign.workspace.numbers.order_by("id").first()
    if number is not None:
        body["from"] = number.number
    if campaign.end_at is not None:
        body["endAfter"] = epoch_ms(campaign.end_at)
    return body



def _int_list(value, low, high):
    """The reason `value` is not a list of integers in [low, high], or None."""
    if not isinstance(value, list):
        return "must be a list of integers"
    for position, item in enumerate(value):
        if not is_json_int(item):
            return f"entry {position} must be an integer"
        if not low <= item <= high:
            return f"entry {position} must be between {low} and {high}"
    return None


class _Lookups:
    """Everything the bodies refer to, fetched in one query per kind for the whole request."""

    def __init__(self, workspace, bodies):
        campaign_ids, agent_ids, numbers = set(), set(), set()
        for body in bodies:
            if not isinstance(body, dict):
                continue
            if (campaign_id := parse_bigint_id(body.get("campaign"))) is not None:
                campaign_ids.add(campaign_id)
            if (agent_id := parse_bigint_id(body.get("agent"))) is not None:
                agent_ids.add(agent_id)
            if isinstance(body.get("from"), str):
                try:
                    numbers.add(parse_e164(body["from"]))
                except InvalidPhone:
                    pass
        self.campaigns = {c.id: c for c in Campaign.objects.filter(workspace=workspace, id__in=campaign_ids)
                          .select_related("agent", "calling_number")} if campaign_ids else {}
        self.agents = {a.id: a for a in Agent.objects.filter(workspace=workspace, id__in=agent_ids)} if agent_ids else {}
        self.numbers = {n.number: n for n in CallingNumber.objects.filter(workspace=workspace, number__in=numbers)} \
            if numbers else {}


class _BodyValidator:
    """Validates one body into unsaved Task field values, collecting every error it finds."""

    def __init__(self, index, body, lookups):
        self.index = index
        self.body = body
        self.lookups = lookups
        self.errors = []
        self.fields = {}

    def error(self, field, message):
        self.errors.append({"index": self.index, "field": field, "message": message})

    def validate(self):
        if not isinstance(self.body, dict):
            self.error(None, "must be a JSON object (a Create Task body)")
            return
        for key in self.body:
            if key not in FIELDS:
                self.error(key, "is not a field of the Create Task body")
        self._phone()
        campaign = self._campaign()
        agent = self._agent(campaign)
        self._from(campaign)
        self._window()
        self._instants()
        self._attempts(campaign)
        self._retry_outcomes(agent)
        self._context()

    def _phone(self):
        if "phone" not in self.body:
            self.error("phone", "is required")
            return
        try:
            self.fields["phone"] = parse_e164(self.body["phone"])
        except InvalidPhone as exc:
            self.error("phone", str(exc))

    def _campaign(self):
        if "campaign" not in self.body:
            self.error("campaign", "is required")
            return None
        campaign = self.lookups.campaigns.get(parse_bigint_id(self.body["campaign"]))
        if campaign is None:
            self.error("campaign", "no such campaign in this workspace")
        elif campaign.type != CampaignType.REALTIME:
            self.error("campaign", "is a batch campaign; its tasks come from its CSV upload")
        elif campaign.status in (CampaignStatus.ARCHIVED, CampaignStatus.COMPLETED):
            self.error("campaign", f"is {campaign.status}; it takes no new tasks")
        else:
            self.fields["campaign"] = campaign
            return campaign
        return None

    def _agent(self, campaign):
        if "agent" not in self.body:
            return campaign.agent if campaign else None
        agent = self.lookups.agents.get(parse_bigint_id(self.body["agent"]))
        if agent is None:
            self.error("agent", "no such agent in this workspace")
            return None
        self.fields["agent"] = agent
        return agent

    def _from(self, campaign):
        if "from" not in self.body:
            if campaign is not None and campaign.calling_number_id is None:
                self.error("from", "is required: the campaign has no default calling number")
            return
        try:
            number = self.lookups.numbers.get(parse_e164(self.body["from"]))
        except InvalidPhone as exc:
            self.error("from", str(exc))
            return
        if number is None:
            self.error("from", "is not a calling number of this workspace")
        else:
            self.fields["calling_number"] = number

    def _window(self):
        for field, column in (("start", "calling_start"), ("end", "calling_end")):
            if field not in self.body:
                continue
            value = self.body[field]
            if not is_json_int(value):
                self.error(field, "must be an integer time of day HHMM, e.g. 930 for 09:30")
                continue
            if field == "start" and value == 2400:
                self.error(field, "2400 is allowed only as an end (midnight)")
                continue
            try:
                self.fields[column] = hhmm_to_time(value)
            except ValueError:
                self.error(field, f"{value} is not a time of day HHMM (hours 00-23, minutes 00-59)")
        if "timezone" in self.body:
            value = self.body["timezone"]
            try:
                if not isinstance(value, str):
                    raise InvalidTimezone(value)
                zone(value)
            except InvalidTimezone:
                self.error("timezone", "must be an IANA timezone name, e.g. Asia/Kolkata")
            else:
                self.fields["timezone"] = value

    def _instants(self):
        for field, column in (("startAfter", "start_after"), ("endAfter", "end_after")):
            if field not in self.body:
                continue
            value = self.body[field]
            if not is_json_int(value) or not 0 <= value <= MAX_EPOCH_MS:
                self.error(field, f"must be epoch milliseconds, an integer between 0 and {MAX_EPOCH_MS}")
                continue
            self.fields[column] = EPOCH + dt.timedelta(milliseconds=value)
        start, end = self.fields.get("start_after"), self.fields.get("end_after")
        if start is not None and end is not None and end <= start:
            self.error("endAfter", "must be after startAfter")

    def _attempts(self, campaign):
        retries = None
        if "retries" in self.body:
            value = self.body["retries"]
            if not is_json_int(value) or not 1 <= value <= MAX_ATTEMPTS:
                self.error("retries", f"must be the total number of attempts, an integer from 1 to {MAX_ATTEMPTS}")
            else:
                retries = self.fields["max_attempts"] = value
        elif campaign is not None:
            retries = campaign.max_attempts
        inherited = "" if "retries" in self.body else " (inherited from the campaign)"
        if "intervals" in self.body:
            reason = _int_list(self.body["intervals"], 0, MAX_RETRY_INTERVAL_MS)
            if reason:
                self.error("intervals", f"{reason} (milliseconds)")
            elif retries is not None and len(self.body["intervals"]) != retries - 1:
                self.error("intervals", f"must have exactly retries - 1 = {retries - 1} entries{inherited}, "
                                        f"got {len(self.body['intervals'])}")
            else:
                self.fields["intervals_ms"] = list(self.body["intervals"])
        if "priorities" in self.body:
            reason = _int_list(self.body["priorities"], -MAX_PRIORITY, MAX_PRIORITY)
            if reason:
                self.error("priorities", reason)
            elif retries is not None and len(self.body["priorities"]) != retries:
                self.error("priorities", f"must have exactly retries = {retries} entries{inherited}, "
                                         f"got {len(self.body['priorities'])}")
            else:
                self.fields["priorities"] = list(self.body["priorities"])

    def _retry_outcomes(self, agent):
        if "retryOutcomes" not in self.body:
            return
        value = self.body["retryOutcomes"]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.error("retryOutcomes", "must be a list of outcome names")
            return
        known = BUILT_IN_OUTCOMES | set(agent.outcomes if agent else ())
        for name in value:
            if name in NEVER_RETRIED:
                self.error("retryOutcomes", f"{name!r} is never retried")
            elif name not in known:
                self.error("retryOutcomes", f"{name!r} is not an outcome of the agent: use voicemail, silent "
                                            "or one of the agent's custom outcomes")
        self.fields["retry_outcomes"] = list(dict.fromkeys(value))

    def _context(self):
        if "context" not in self.body:
            return
        if not isinstance(self.body["context"], dict):
            self.error("context", "must be a JSON object of prompt variables")
        elif not _storable(self.body["context"]):
            self.error("context", "holds text that cannot be stored: the NUL character (\\u0000) or a lone "
                                  "UTF-16 surrogate")
        else:
            self.fields["context"] = self.body["context"]


def _storable(value):
    """Whether PostgreSQL's jsonb can hold `value`: no text in it has the NUL character or a lone
    surrogate (which has no UTF-8 form)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


def _build_task(body, fields, listed, now, first_attempts, policy):
    """An unsaved task; `first_attempts` memoises its first attempt per config and zones (a bulk
    request usually repeats one config a thousand times), under the workspace's legal hours
    (`policy`) as the dispatcher would judge them."""
    campaign = fields.pop("campaign")
    task = Task(campaign=campaign, submitted_config={k: body[k] for k in CONFIG_FIELDS if k in body}, **fields)
    # The zones the workspace's legal hours are judged in, decided once: the given timezone, else
    # the number's (its calling window stays in the campaign's timezone unless one is given).
    callee = explicit_zone(task.timezone) if task.timezone else callee_zones(task.phone)
    task.callee_timezones, task.callee_timezone_source = list(callee.zones), callee.source
    config = resolve_config(task, campaign)
    task.dispatch_rank = dispatch_rank(campaign.type, 0, config.priorities)
    key = (config, callee.zones)
    if key not in first_attempts:
        first_attempts[key] = first_legal_attempt(policy, config.window, callee.zones or (config.window.timezone,),
                                                  first_attempt_at(config, now), config.end_at)
    first_attempt, not_dialable, held_by = first_attempts[key]
    task.next_attempt_at = None if task.phone in listed else first_attempt
    if task.next_attempt_at is None:
        task.status = TaskStatus.ARCHIVED
        task.completion_reason = CompletionReason.DNC if task.phone in listed else not_dialable
        task.completed_at = now
        return task
    task.held_by = held_by
    if campaign.status == CampaignStatus.PAUSED:
        task.status = TaskStatus.PAUSED
    return task


def do_create_tasks(workspace, bodies):
    """Create one task per Create Task body, all or nothing; returns the tasks in body order.

    Raises `InvalidTasks` with every error found (indexed by position) and creates nothing then.
    Sends `tasks_changed` on commit when any task is dialable.
    """
    if not 1 <= len(bodies) <= MAX_TASKS_PER_REQUEST:
        raise InvalidTasks([{"index": None, "field": None,
                             "message": f"send between 1 and {MAX_TASKS_PER_REQUEST} tasks, got {len(bodies)}"}])
    lookups = _Lookups(workspace, bodies)
    validated, errors = [], []
    for index, body in enumerate(bodies):
        validator = _BodyValidator(index, body, lookups)
        validator.validate()
        errors.extend(validator.errors)
        validated.append(validator.fields)
    if errors:
        raise InvalidTasks(errors)

    organisation_id = workspace.organisation_id
    listed = listed_numbers(organisation_id, {fields["phone"] for fields in validated})
    now = django_timezone.now()
    first_attempts = {}
    policy = policy_from_json(workspace.compliance)
    tasks = [_build_task(body, fields, listed, now, first_attempts, policy)
             for body, fields in zip(bodies, validated, strict=True)]

    with transaction.atomic():
        insert_tasks(tasks)
        if any(task.status == TaskStatus.QUEUED for task in tasks):
            transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))
    return tasks
