"""A developer's whole path through the REST API, with real workers, beat and the simulated carrier."""
import pytest
from rest_framework.test import APIClient

from campaigns.models import Task, TaskStatus
from tests.factories import ApiKeyFactory, OrganisationFactory, WorkspaceFactory
from bench.live_system import LiveSystem, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_realtime_tasks_pushed_over_the_api_are_dialed_retried_and_reported(redis_client):
    workspace = WorkspaceFactory(organisation=OrganisationFactory(total_slots=4), slots=4)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKeyFactory(workspace=workspace).raw_key}")
    agent = api.post("/api/v1/agents", {"name": "Reminder", "prompt": "Hi ${name}", "outcomes": ["rescheduled"]},
                     format="json").json()
    number = api.post("/api/v1/numbers", {"number": "+14155550100"}, format="json").json()
    campaign = api.post("/api/v1/campaigns", {
        "type": "realtime", "name": "Leads", "agent": agent["id"], "from": number["number"], "slots": 2,
        "maxRetries": 1, "retryInterval": 0}, format="json").json()
    body = {**campaign["sampleTask"], "retries": 2, "intervals": [0], "priorities": [10, 5],
            "context": {"name": "Tarun", "_sim": [{"outcome": "busy", "ring_ms": 100},
                                                  {"outcome": "connected", "talk_ms": 200}]}}
    created = api.post("/api/v1/tasks", [{**body, "phone": f"+4420718387{n:02d}"} for n in range(6)],
                       format="json")
    assert created.status_code == 201, created.json()
    task_ids = [task["id"] for task in created.json()["tasks"]]

    with LiveSystem(time_scale=0.01):
        wait_until(lambda: not Task.objects.exclude(status=TaskStatus.COMPLETED).exists(), timeout=90,
                   message="every task to complete")

    detail = api.get(f"/api/v1/tasks/{task_ids[0]}").json()
    assert (detail["status"], detail["attemptsMade"], detail["finalOutcome"]) == ("completed", 2, "connected")
    assert [(c["attempt"], c["outcome"]) for c in detail["calls"]] == [(1, "busy"), (2, "connected")]
    call = api.get(f"/api/v1/calls/{detail['calls'][1]['id']}").json()
    assert call["from"] == "+14155550100" and call["to"] == "+442071838700" and call["transcript"]
    summary = api.get(f"/api/v1/campaigns/{campaign['id']}").json()
    assert summary["taskCounts"]["completed"] == 6 and summary["callOutcomes"] == {"busy": 6, "connected": 6}
    assert api.get("/api/v1/slots").json()["organisation"]["used"] == 0
