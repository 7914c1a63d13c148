"""The Create Task API: the seed body to the letter, every validation rule, bulk, DNC, idempotency."""
import copy
import json
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import CampaignStatus, IdempotencyRecord, Task, TaskStatus
from campaigns.signals import tasks_changed
from tests.factories import AgentFactory, CallFactory, CallingNumberFactory, CampaignFactory, DoNotCallFactory
from tests.test_api_auth import (  # noqa: F401  (fixtures)
    agent, api, api_key, client_for, number, other_api, other_workspace, realtime, workspace,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def seed(realtime, agent, number):
    """the Create Task body of docs/product.md §1, with this workspace's ids."""
    return {"phone": "+919876543210", "from": number.number, "agent": str(agent.id),
            "start": 1000, "end": 1800, "timezone": "Asia/Kolkata",
            "startAfter": 1748629800000, "endAfter": 4102444800000,
            "priorities": [100, 50], "retries": 2, "intervals": [180000],
            "retryOutcomes": ["voicemail"], "context": {"name": "Tarun"}, "campaign": str(realtime.id)}


def post(api, body, **headers):
    return api.post("/api/v1/tasks", body, format="json", **headers)


def test_seed_body_is_accepted_exactly_and_stored_as_submitted(api, seed, realtime):
    response = post(api, seed)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["phone"] == "+919876543210" and body["campaign"] == str(realtime.id)
    assert body["nextAttemptAt"].endswith("Z")
    task = Task.objects.get(id=int(body["id"]))
    assert task.max_attempts == 2 and task.intervals_ms == [180000] and task.priorities == [100, 50]
    assert task.timezone == "Asia/Kolkata" and task.calling_start.hour == 10 and task.calling_end.hour == 18
    assert task.dispatch_rank == -100
    assert task.submitted_config == {k: v for k, v in seed.items() if k not in ("phone", "campaign", "context")}


def test_only_phone_and_campaign_are_required_and_the_rest_inherits(api, realtime):
    response = post(api, {"phone": "+442071838750", "campaign": realtime.id})
    assert response.status_code == 201, response.json()
    task = Task.objects.get(id=int(response.json()["id"]))
    assert (task.agent_id, task.calling_number_id, task.max_attempts, task.intervals_ms, task.timezone) == \
        (None, None, None, None, "")
    detail = api.get(f"/api/v1/tasks/{task.id}").json()
    assert detail["config"]["submitted"] == {}
    resolved = detail["config"]["resolved"]
    assert resolved["retries"] == 2 and resolved["intervals"] == [60000] and resolved["from"] == "+14155550123"
    assert resolved["agent"] == str(realtime.agent_id)


def error_pairs(response):
    return {(e["field"], e["message"]) for e in response.json()["errors"]}


def fields_of(response):
    return {e["field"] for e in response.json()["errors"]}


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"phone": "9876543210"}, "phone", "must start with +"),
    ({"phone": "+91123"}, "phone", "not a valid phone number"),
    ({"phone": 919876543210}, "phone", "must be a string"),
    ({"phone": None}, "phone", "must be a string"),
    ({"from": "+14155559999"}, "from", "not a calling number of this workspace"),
    ({"from": "nope"}, "from", "E.164"),
    ({"agent": "999999"}, "agent", "no such agent"),
    ({"agent": "abc"}, "agent", "no such agent"),
    ({"start": 1260}, "start", "not a time of day"),
    ({"end": 2401}, "end", "not a time of day"),
    ({"start": 2400}, "start", "only as an end"),
    ({"start": "1000"}, "start", "must be an integer"),
    ({"start": 10.5}, "start", "must be an integer"),
    ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
    ({"timezone": 5}, "timezone", "IANA"),
    ({"retries": 0}, "retries", "from 1 to 100"),
    ({"retries": 10**30}, "retries", "from 1 to 100"),
    ({"retries": True}, "retries", "from 1 to 100"),
    ({"intervals": [1, 2]}, "intervals", "must have exactly retries - 1 = 1 entries, got 2"),
    ({"intervals": [-1]}, "intervals", "between 0"),
    ({"intervals": "180000"}, "intervals", "list of integers"),
    ({"priorities": [1]}, "priorities", "must have exactly retries = 2 entries, got 1"),
    ({"priorities": [1, 2**40]}, "priorities", "entry 1 must be between"),
    ({"startAfter": -1}, "startAfter", "epoch milliseconds"),
    ({"endAfter": 10**20}, "endAfter", "epoch milliseconds"),
    ({"startAfter": 1748716200000, "endAfter": 1748629800000}, "endAfter", "after startAfter"),
    ({"retryOutcomes": ["connected"]}, "retryOutcomes", "never retried"),
    ({"retryOutcomes": ["opt-out"]}, "retryOutcomes", "never retried"),
    ({"retryOutcomes": ["angry"]}, "retryOutcomes", "not an outcome of the agent"),
    ({"retryOutcomes": "voicemail"}, "retryOutcomes", "list of outcome names"),
    ({"context": ["Tarun"]}, "context", "JSON object"),
    ({"colour": "red"}, "colour", "not a field"),
    ({"campaign": "999999"}, "campaign", "no such campaign"),
    ({"campaign": "1" * 40}, "campaign", "no such campaign"),
    ({"campaign": {"id": 1}}, "campaign", "no such campaign"),
])
def test_each_invalid_field_is_a_400_naming_field_and_reason(api, seed, change, field, reason):
    response = post(api, {**seed, **change})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(e["field"] == field and reason in e["message"] for e in errors), errors
    assert all("index" not in e for e in errors)
    assert Task.objects.count() == 0


@pytest.mark.parametrize("missing", ["phone", "campaign"])
def test_phone_and_campaign_are_required(api, seed, missing):
    del seed[missing]
    response = post(api, seed)
    assert response.status_code == 400 and (missing, "is required") in error_pairs(response)


def test_intervals_and_priorities_are_checked_against_inherited_retries(api, realtime):
    response = post(api, {"phone": "+442071838750", "campaign": str(realtime.id), "intervals": [1, 2, 3]})
    assert ("intervals", "must have exactly retries - 1 = 1 entries (inherited from the campaign), got 3") \
        in error_pairs(response)


def test_agents_custom_outcomes_and_auto_retried_ones_are_accepted(api, seed):
    response = post(api, {**seed, "retryOutcomes": ["voicemail", "silent", "interested", "busy"]})
    assert response.status_code == 201, response.json()


def test_custom_outcome_is_judged_against_the_submitted_agent(api, seed, workspace):
    other_agent = AgentFactory(workspace=workspace, outcomes=["callback-later"])
    response = post(api, {**seed, "agent": str(other_agent.id), "retryOutcomes": ["interested"]})
    assert fields_of(response) == {"retryOutcomes"}


@pytest.mark.parametrize(("campaign_kwargs", "reason"), [
    ({"type": "batch"}, "is a batch campaign"),
    ({"type": "realtime", "status": CampaignStatus.ARCHIVED}, "is archived"),
    ({"type": "realtime", "status": CampaignStatus.COMPLETED}, "is completed"),
])
def test_campaign_must_be_realtime_and_open(api, seed, workspace, campaign_kwargs, reason):
    campaign = CampaignFactory(workspace=workspace, **campaign_kwargs)
    response = post(api, {**seed, "campaign": str(campaign.id)})
    assert any(f == "campaign" and reason in m for f, m in error_pairs(response))


def test_another_workspaces_campaign_agent_and_number_are_unknown(api, seed, other_workspace):
    theirs = CampaignFactory(workspace=other_workspace, type="realtime")
    response = post(api, {**seed, "campaign": str(theirs.id), "agent": str(theirs.agent_id),
                          "from": theirs.calling_number.number})
    assert fields_of(response) == {"campaign", "agent", "from"}
    assert "no such campaign in this workspace" in str(response.json())


@pytest.mark.parametrize("body", ["just a string", 42, None, True])
def test_a_body_that_is_neither_object_nor_array_is_400(api, body):
    response = api.post("/api/v1/tasks", body, format="json")
    assert response.status_code == 400


def test_bulk_creates_all_in_body_order(api, seed):
    bodies = [{**seed, "phone": f"+4420718{i:05d}"} for i in range(50)]
    response = post(api, bodies)
    assert response.status_code == 201, response.json()
    tasks = response.json()["tasks"]
    assert [t["phone"] for t in tasks] == [b["phone"] for b in bodies]
    assert Task.objects.count() == 50


def test_bulk_is_all_or_nothing_with_errors_indexed(api, seed):
    bodies = [seed, {**seed, "retries": 3}, seed, {**seed, "phone": "x", "timezone": "Nowhere"}, "not an object"]
    response = post(api, bodies)
    assert response.status_code == 400
    indexed = {(e["index"], e["field"]) for e in response.json()["errors"]}
    assert indexed == {(1, "intervals"), (1, "priorities"), (3, "phone"), (3, "timezone"), (4, None)}
    assert Task.objects.count() == 0


@pytest.mark.parametrize("size", [0, 1001])
def test_bulk_takes_one_to_a_thousand(api, seed, size):
    response = post(api, [seed] * size)
    assert response.status_code == 400 and "between 1 and 1000" in response.json()["errors"][0]["message"]


def test_thousand_tasks_are_created_in_a_bounded_number_of_queries(api, seed, django_assert_max_num_queries):
    bodies = [{**seed, "phone": f"+4420718{i:05d}"} for i in range(1000)]
    with django_assert_max_num_queries(12):
        assert post(api, bodies).status_code == 201


def test_single_create_is_a_handful_of_queries(api, seed, django_assert_max_num_queries):
    post(api, {**seed, "phone": "+442071800000"})  # stamps last_used_at
    with django_assert_max_num_queries(8):
        assert post(api, seed).status_code == 201


def test_number_on_do_not_call_list_is_accepted_but_archived_as_dnc(api, seed, workspace):
    DoNotCallFactory(organisation=workspace.organisation, phone="+919876543210")
    response = post(api, [seed, {**seed, "phone": "+442071838750"}])
    first, second = response.json()["tasks"]
    assert (first["status"], first["completionReason"], first["nextAttemptAt"]) == ("archived", "dnc", None)
    assert second["status"] == "queued"


def test_task_ending_before_any_window_opens_is_archived_as_ended(api, seed):
    response = post(api, {**seed, "startAfter": 1000, "endAfter": 2000})
    assert (response.json()["status"], response.json()["completionReason"]) == ("archived", "ended")


def test_task_of_paused_campaign_is_created_paused(api, seed, realtime):
    realtime.status = CampaignStatus.PAUSED
    realtime.save(update_fields=["status"])
    assert post(api, seed).json()["status"] == "paused"


def test_tasks_changed_is_sent_once_on_commit(api, seed, workspace, django_capture_on_commit_callbacks):
    received = []

    def listener(sender, organisation_id, **kwargs):
        received.append(organisation_id)

    tasks_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post(api, [seed, {**seed, "phone": "+442071838750"}])
    finally:
        tasks_changed.disconnect(listener)
    assert received == [workspace.organisation_id]


def test_idempotency_key_replays_the_first_response_and_creates_nothing_more(api, seed):
    first = post(api, seed, HTTP_IDEMPOTENCY_KEY="order-17")
    again = post(api, copy.deepcopy(seed), HTTP_IDEMPOTENCY_KEY="order-17")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Task.objects.count() == 1


def test_idempotency_key_with_another_body_is_422(api, seed):
    post(api, seed, HTTP_IDEMPOTENCY_KEY="order-17")
    response = post(api, {**seed, "phone": "+442071838750"}, HTTP_IDEMPOTENCY_KEY="order-17")
    assert response.status_code == 422 and fields_of(response) == {"Idempotency-Key"}
    assert Task.objects.count() == 1


def test_idempotency_keys_are_per_workspace(api, seed, other_api):
    post(api, seed, HTTP_IDEMPOTENCY_KEY="k")
    response = post(other_api, seed, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 400  # their own request, judged afresh: our campaign is unknown to them


def test_first_error_response_is_replayed_too(api, seed):
    bad = {**seed, "retries": 0}
    assert post(api, bad, HTTP_IDEMPOTENCY_KEY="k").status_code == 400
    assert post(api, bad, HTTP_IDEMPOTENCY_KEY="k")["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_with_one_key_create_once(workspace, api_key, seed):
    statuses, barrier = [], threading.Barrier(4)

    def send():
        barrier.wait()
        statuses.append(post(client_for(api_key), seed, HTTP_IDEMPOTENCY_KEY="race").status_code)
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 4
    assert Task.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_task_detail_lists_its_calls_in_attempt_order(api, seed):
    task = Task.objects.get(id=int(post(api, seed).json()["id"]))
    Task.objects.filter(id=task.id).update(attempts_made=2, status=TaskStatus.COMPLETED, completion_reason="connected")
    CallFactory(task=task, attempt=2, status="ended", outcome="connected")
    CallFactory(task=task, attempt=1, status="ended", outcome="no-answer")
    with CaptureQueriesContext(connection) as queries:
        detail = api.get(f"/api/v1/tasks/{task.id}").json()
    assert len(queries) <= 4
    assert [(c["attempt"], c["outcome"]) for c in detail["calls"]] == [(1, "no-answer"), (2, "connected")]
    assert set(detail["calls"][0]) == {"id", "attempt", "status", "outcome", "startedAt", "endedAt"}
    assert detail["attemptsMade"] == 2 and detail["completionReason"] == "connected"


def test_call_detail_is_complete(api, seed):
    task = Task.objects.get(id=int(post(api, seed).json()["id"]))
    call = CallFactory(task=task, status="ended", outcome="connected", transcript="hello", duration_seconds=42,
                       analysis={"sentiment": "warm"}, cost="0.0120")
    body = api.get(f"/api/v1/calls/{call.id}").json()
    assert body["id"] == str(call.id) and body["task"] == str(task.id) and body["to"] == task.phone
    assert (body["durationSeconds"], body["cost"], body["transcript"], body["analysis"]) == \
        (42, "0.0120", "hello", {"sentiment": "warm"})
    assert body["admittedAt"].endswith("Z")


def test_calling_number_from_is_normalised_to_e164(api, seed, workspace):
    CallingNumberFactory(workspace=workspace, number="+442071838750")
    response = post(api, {**seed, "from": "+44 20 7183 8750"})
    assert response.status_code == 201, response.json()


def test_from_is_required_when_the_campaign_has_no_calling_number(api, realtime):
    realtime.calling_number = None
    realtime.save(update_fields=["calling_number"])
    response = post(api, {"phone": "+442071838750", "campaign": realtime.id})
    assert response.status_code == 400
    assert fields_of(response) == {"from"}


@pytest.mark.parametrize("context", [{"name": "Ada\u0000"}, {"na\u0000me": "Ada"}, {"notes": ["ok", "\ud83d"]}])
def test_a_context_holding_text_postgresql_cannot_store_is_a_400_on_context(api, realtime, context):
    body = json.dumps({"phone": "+442071838750", "campaign": str(realtime.id), "context": context})  # escaped
    response = api.post("/api/v1/tasks", body, content_type="application/json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"context"}
    assert not Task.objects.exists()
