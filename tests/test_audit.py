"""The audit trail of controls: every pause, resume, archive and update — from the API, the admin
or a management command — is recorded with who made it and how many tasks it changed, and shown
newest first by GET /api/v1/campaigns/{id}/history and on the admin's campaign page."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from campaigns.models import CampaignStatus, ControlRecord, TaskStatus
from tests.factories import (
    ApiKeyFactory, CampaignFactory, ControlRecordFactory, TaskFactory, UserFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/campaigns/campaign/"


@pytest.fixture
def key():
    return ApiKeyFactory(workspace=WorkspaceFactory(), name="crm sync")


@pytest.fixture
def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    return client


@pytest.fixture
def campaign(key):
    campaign = CampaignFactory(workspace=key.workspace, status=CampaignStatus.RUNNING, name="Renewals")
    TaskFactory.create_batch(3, campaign=campaign)
    return campaign


@pytest.fixture
def operator(client):
    user = UserFactory(is_superuser=True, username="ops-ada")
    client.force_login(user)
    return user


def history(api, campaign, **params):
    response = api.get(f"/api/v1/campaigns/{campaign.id}/history", params)
    assert response.status_code == 200
    return response.json()


class TestApiControls:
    def test_a_pause_by_api_key_is_recorded_with_the_keys_prefix_and_name_and_the_tasks_changed(
            self, api, key, campaign):
        assert api.post(f"/api/v1/campaigns/{campaign.id}/pause").status_code == 200
        [entry] = history(api, campaign)["results"]
        assert entry["action"] == "pause" and entry["source"] == "api" and entry["task"] is None
        assert entry["actor"] == {"kind": "api_key", "name": "crm sync", "prefix": key.prefix}
        assert entry["tasksChanged"] == 3 and entry["createdAt"].endswith("Z")

    def test_history_is_newest_first_and_paged_like_the_other_lists(self, api, campaign):
        for verb in ("pause", "resume", "archive"):
            assert api.post(f"/api/v1/campaigns/{campaign.id}/{verb}").status_code == 200
        page = history(api, campaign, limit=2)
        assert [e["action"] for e in page["results"]] == ["archive", "resume"]
        rest = history(api, campaign, limit=2, cursor=page["nextCursor"])
        assert [e["action"] for e in rest["results"]] == ["pause"] and rest["nextCursor"] is None

    def test_an_update_records_the_settings_it_set(self, api, campaign):
        response = api.patch(f"/api/v1/campaigns/{campaign.id}", {"name": "Winback", "slots": 2}, format="json")
        assert response.status_code == 200
        [entry] = history(api, campaign)["results"]
        assert (entry["action"], entry["fields"]) == ("update", ["name", "slots"])

    def test_a_task_control_is_in_its_campaigns_history_naming_the_task(self, api, campaign):
        task = campaign.tasks.first()
        assert api.post(f"/api/v1/tasks/{task.id}/archive").status_code == 200
        [entry] = history(api, campaign)["results"]
        assert (entry["action"], entry["task"], entry["tasksChanged"]) == ("archive", str(task.id), 1)

    def test_a_refused_control_leaves_no_record(self, api, campaign):
        assert api.post(f"/api/v1/campaigns/{campaign.id}/resume").status_code == 409
        assert history(api, campaign)["results"] == []
        assert not ControlRecord.objects.exists()

    def test_another_workspaces_campaign_history_is_404(self, api):
        theirs = CampaignFactory()
        ControlRecordFactory(campaign=theirs)
        assert api.get(f"/api/v1/campaigns/{theirs.id}/history").status_code == 404

    def test_the_history_endpoint_is_in_the_openapi_schema(self, client):
        schema = client.get("/api/v1/schema/?format=json").json()
        operation = schema["paths"]["/api/v1/campaigns/{campaign_id}/history"]["get"]
        assert operation["operationId"] == "campaigns_history"


class TestAdminControls:
    def test_a_pause_from_the_campaign_page_is_recorded_with_the_user_and_shown_there(
            self, client, operator, campaign):
        client.post(f"{LIST_URL}{campaign.id}/control/pause/", {"post": "yes"})
        record = ControlRecord.objects.get()
        assert (record.action, record.source, record.actor_name, record.user, record.tasks_changed) == (
            "pause", "admin", "ops-ada", operator, 3)
        page = client.get(f"{LIST_URL}{campaign.id}/change/").content.decode()
        table = page[page.index('id="control-table"'):]
        assert "pause" in table and "ops-ada" in table and "Admin" in table

    def test_a_bulk_action_records_each_campaign_it_changed(self, client, operator, campaign):
        other = CampaignFactory(workspace=campaign.workspace, status=CampaignStatus.RUNNING)
        TaskFactory(campaign=other)
        done = CampaignFactory(workspace=campaign.workspace, status=CampaignStatus.ARCHIVED)
        client.post(LIST_URL, {"action": "archive_campaigns", "_selected_action": [campaign.id, other.id, done.id],
                               "post": "yes"})
        assert sorted(ControlRecord.objects.values_list("campaign_id", "action", "tasks_changed")) == sorted(
            [(campaign.id, "archive", 3), (other.id, "archive", 1)])

    def test_a_settings_update_and_a_task_control_from_the_admin_are_recorded(self, client, operator, campaign):
        task = campaign.tasks.first()
        client.post(f"/admin/campaigns/task/{task.id}/control/pause/")
        task.refresh_from_db(fields=["status"])
        assert task.status == TaskStatus.PAUSED
        data = {"name": "Winback", "agent": campaign.agent_id, "calling_number": campaign.calling_number_id,
                "priority": campaign.priority, "timezone": campaign.timezone, "start_at_0": "", "start_at_1": "",
                "end_at_0": "", "end_at_1": "", "calling_start": "00:00", "calling_end": "00:00",
                "calling_days": [str(d) for d in campaign.calling_days], "max_retries": campaign.max_retries,
                "retry_interval_minutes": campaign.retry_interval_ms // 60_000, "slots": campaign.slots,
                "slot_mode": campaign.slot_mode}
        assert client.post(f"{LIST_URL}{campaign.id}/change/", data).status_code == 302
        records = list(ControlRecord.objects.order_by("id").values_list("action", "task_id", "details"))
        assert records == [("pause", task.id, {}), ("update", None, {"fields": ["name"]})]


class TestCommand:
    def test_a_pause_from_the_command_is_recorded_with_the_operator(self, api, campaign):
        out = io.StringIO()
        call_command("control_campaign", "pause", str(campaign.id), "--operator", "on-call bob", stdout=out)
        assert '"changed": 3' in out.getvalue()
        [entry] = history(api, campaign)["results"]
        assert entry["source"] == "command" and entry["actor"] == {"kind": "command", "name": "on-call bob",
                                                                   "prefix": None}

    def test_a_refused_command_says_why_and_records_nothing(self, campaign):
        with pytest.raises(CommandError, match="cannot resume"):
            call_command("control_campaign", "resume", str(campaign.id), stdout=io.StringIO())
        assert not ControlRecord.objects.exists()
