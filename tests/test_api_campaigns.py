"""Campaigns over the API: create (with sampleTask), list and detail with counts, update, controls,
contacts upload and the campaign's task list."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Campaign, CampaignStatus, Task, TaskStatus
from tests.factories import CallFactory, CampaignFactory, TaskFactory
from tests.test_api_auth import agent, api, api_key, number, realtime, workspace  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_creating_a_realtime_campaign_returns_a_sample_task_that_works_as_is(api, agent, number):
    response = api.post("/api/v1/campaigns", {"type": "realtime", "name": "Leads", "agent": str(agent.id),
                                              "slots": 3, "slotMode": "soft", "maxRetries": 2,
                                              "callingHours": {"start": 900, "end": 2000}}, format="json")
    assert response.status_code == 201, response.json()
    campaign = response.json()
    assert campaign["id"] == str(Campaign.objects.get().id) and campaign["status"] == "scheduled"
    assert campaign["callingHours"] == {"start": 900, "end": 2000} and campaign["startAt"].endswith("Z")
    sample = campaign["sampleTask"]
    assert sample["retries"] == 3 and len(sample["intervals"]) == 2 and sample["context"] == {"name": ""}
    assert sample["from"] == number.number
    assert api.post("/api/v1/tasks", sample, format="json").status_code == 201


def test_a_sample_task_of_a_campaign_started_before_1970_still_works_as_is(api, agent, number):
    response = api.post("/api/v1/campaigns", {"type": "realtime", "name": "Old", "agent": str(agent.id),
                                              "from": number.number, "startAt": "1960-01-01T00:00:00Z"},
                        format="json")
    assert response.status_code == 201, response.json()
    sample = response.json()["sampleTask"]
    assert sample["startAfter"] == 0
    assert api.post("/api/v1/tasks", sample, format="json").status_code == 201


def test_batch_campaign_has_no_sample_task(api, agent, number):
    response = api.post("/api/v1/campaigns", {"type": "batch", "name": "List", "agent": agent.id,
                                              "from": number.number}, format="json")
    assert response.status_code == 201 and "sampleTask" not in response.json()


def test_invalid_campaign_body_names_every_field(api):
    response = api.post("/api/v1/campaigns", {"type": "realtime", "name": "", "slots": 0, "colour": 1},
                        format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} >= {"name", "agent", "slots", "colour"}


def test_an_update_that_changes_the_type_is_a_conflict_naming_the_field(api, realtime):
    response = api.patch(f"/api/v1/campaigns/{realtime.id}", {"type": "batch", "name": "Renamed"}, format="json")
    assert response.status_code == 409 and [e["field"] for e in response.json()["errors"]] == ["type"]
    realtime.refresh_from_db()
    assert realtime.type == "realtime" and realtime.name != "Renamed"
    assert api.patch(f"/api/v1/campaigns/{realtime.id}", {"type": "realtime"}, format="json").status_code == 200


def test_campaign_body_must_be_an_object(api):
    assert api.post("/api/v1/campaigns", [1, 2], format="json").status_code == 400


def test_detail_counts_tasks_per_status_and_calls_per_outcome(api, realtime, django_assert_max_num_queries):
    TaskFactory.create_batch(3, campaign=realtime)
    TaskFactory(campaign=realtime, status=TaskStatus.PAUSED)
    done = TaskFactory(campaign=realtime, status=TaskStatus.COMPLETED, completion_reason="connected")
    CallFactory(task=done, status="ended", outcome="no-answer")
    CallFactory(task=done, attempt=2, status="ended", outcome="connected")
    api.get("/api/v1/agents")  # stamps last_used_at
    # key, campaign, task counts, call outcomes, running control
    with django_assert_max_num_queries(5):
        body = api.get(f"/api/v1/campaigns/{realtime.id}").json()
    assert body["taskCounts"] == {"queued": 3, "in_progress": 0, "completed": 1, "paused": 1, "archived": 0}
    assert body["callOutcomes"] == {"connected": 1, "no-answer": 1}
    assert body["control"] is None


def test_list_pages_newest_first_in_constant_queries(api, workspace, django_assert_max_num_queries):
    campaigns = CampaignFactory.create_batch(5, workspace=workspace)
    for campaign in campaigns:
        TaskFactory(campaign=campaign)
    api.get("/api/v1/campaigns")
    with django_assert_max_num_queries(5):
        first = api.get("/api/v1/campaigns?limit=3").json()
    second = api.get(f"/api/v1/campaigns?limit=3&cursor={first['nextCursor']}").json()
    ids = [c["id"] for c in first["results"] + second["results"]]
    assert ids == [str(c.id) for c in reversed(campaigns)] and second["nextCursor"] is None
    assert all(c["taskCounts"]["queued"] == 1 for c in first["results"])


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=501", "cursor=%%%", "cursor=LTE"])
def test_bad_paging_parameters_are_400(api, query):
    response = api.get(f"/api/v1/campaigns?{query}")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] in {"limit", "cursor"}


def test_patch_updates_settings(api, realtime):
    response = api.patch(f"/api/v1/campaigns/{realtime.id}", {"name": "Renamed", "maxRetries": 3}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Renamed" and response.json()["maxRetries"] == 3


def test_patch_answers_without_counting_the_campaigns_tasks_and_calls(api, realtime):
    TaskFactory.create_batch(2, campaign=realtime)
    with CaptureQueriesContext(connection) as queries:
        response = api.patch(f"/api/v1/campaigns/{realtime.id}", {"name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert "taskCounts" not in response.json() and "callOutcomes" not in response.json()
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert api.get(f"/api/v1/campaigns/{realtime.id}").json()["taskCounts"]["queued"] == 2


@pytest.mark.parametrize("status", [CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED])
def test_patch_is_refused_for_a_finished_campaign_with_the_reason(api, realtime, status):
    Campaign.objects.filter(id=realtime.id).update(status=status)
    response = api.patch(f"/api/v1/campaigns/{realtime.id}", {"name": "x"}, format="json")
    assert response.status_code == 409 and status in response.json()["errors"][0]["message"]


def test_pause_resume_archive_report_how_many_tasks_changed(api, realtime):
    TaskFactory.create_batch(3, campaign=realtime)
    TaskFactory(campaign=realtime, status=TaskStatus.IN_PROGRESS)
    TaskFactory(campaign=realtime, status=TaskStatus.COMPLETED, completion_reason="connected")
    url = f"/api/v1/campaigns/{realtime.id}"
    assert api.post(f"{url}/pause").json() == {"changed": 3, "status": "paused", "control": None}
    assert api.post(f"{url}/resume").json() == {"changed": 3, "status": "scheduled", "control": None}
    assert api.post(f"{url}/archive").json() == {"changed": 3, "status": "archived", "control": None}
    assert Task.objects.filter(status=TaskStatus.ARCHIVED, completion_reason="archived").count() == 3
    refused = api.post(f"{url}/resume")
    assert refused.status_code == 409 and "archived" in refused.json()["errors"][0]["message"]


def test_a_large_campaign_answers_at_once_and_shows_the_pause_in_progress(api, realtime, settings):
    settings.CONTROL_INLINE_TASKS = 2
    TaskFactory.create_batch(5, campaign=realtime)
    url = f"/api/v1/campaigns/{realtime.id}"
    body = api.post(f"{url}/pause").json()
    assert body == {"changed": 2, "status": "paused", "control": {"action": "pause", "done": 2, "total": None}}
    assert api.get(url).json()["control"] == {"action": "pause", "done": 2, "total": None}
    assert realtime.tasks.filter(status=TaskStatus.QUEUED).count() == 3


def test_task_controls_report_changes_and_refuse_with_the_reason(api, realtime):
    task = TaskFactory(campaign=realtime)
    assert api.post(f"/api/v1/tasks/{task.id}/pause").json() == {"changed": 1, "status": "paused"}
    assert api.post(f"/api/v1/tasks/{task.id}/resume").json() == {"changed": 1, "status": "queued"}
    assert api.post(f"/api/v1/tasks/{task.id}/archive").json() == {"changed": 1, "status": "archived"}
    refused = api.post(f"/api/v1/tasks/{task.id}/pause")
    assert refused.status_code == 409 and "archived" in refused.json()["errors"][0]["message"]


def test_campaign_tasks_filter_by_status_and_page_by_cursor(api, realtime):
    queued = TaskFactory.create_batch(5, campaign=realtime)
    TaskFactory(campaign=realtime, status=TaskStatus.PAUSED)
    first = api.get(f"/api/v1/campaigns/{realtime.id}/tasks?status=queued&limit=3").json()
    second = api.get(f"/api/v1/campaigns/{realtime.id}/tasks?status=queued&limit=3"
                     f"&cursor={first['nextCursor']}").json()
    assert [t["id"] for t in first["results"] + second["results"]] == [str(t.id) for t in queued]
    assert api.get(f"/api/v1/campaigns/{realtime.id}/tasks?status=done").status_code == 400


def test_campaign_tasks_page_is_constant_queries(api, realtime, django_assert_max_num_queries):
    TaskFactory.create_batch(30, campaign=realtime)
    api.get("/api/v1/campaigns")
    with django_assert_max_num_queries(3):
        assert len(api.get(f"/api/v1/campaigns/{realtime.id}/tasks").json()["results"]) == 30


def csv_file(text):
    return SimpleUploadedFile("contacts.csv", text.encode(), content_type="text/csv")


@pytest.fixture
def batch(workspace, agent, number):
    return CampaignFactory(workspace=workspace, agent=agent, calling_number=number)


def test_contacts_upload_imports_rows(api, batch):
    response = api.post(f"/api/v1/campaigns/{batch.id}/contacts",
                        {"file": csv_file("phone,name\n+442071838750,Ada\n+442071838751,Bo\n")}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["rowsImported"] == 2 and Task.objects.filter(campaign=batch).count() == 2


def test_contacts_with_errors_import_nothing_unless_skipping(api, batch):
    text = "phone,name\n+442071838750,Ada\nnot-a-phone,Bo\n"
    refused = api.post(f"/api/v1/campaigns/{batch.id}/contacts", {"file": csv_file(text)}, format="multipart")
    assert refused.status_code == 400
    assert refused.json()["import"]["rowsImported"] == 0 and refused.json()["errors"][0]["row"] is not None
    skipped = api.post(f"/api/v1/campaigns/{batch.id}/contacts?skip_invalid=true", {"file": csv_file(text)},
                       format="multipart")
    assert skipped.status_code == 201 and skipped.json()["rowsImported"] == 1


def test_contacts_need_a_file_and_a_batch_campaign(api, batch, realtime):
    assert api.post(f"/api/v1/campaigns/{batch.id}/contacts", {}, format="multipart").status_code == 400
    response = api.post(f"/api/v1/campaigns/{realtime.id}/contacts", {"file": csv_file("phone\n+442071838750\n")},
                        format="multipart")
    assert response.status_code == 409 and "realtime" in response.json()["errors"][0]["message"]
