"""The operator dashboard in the admin: campaigns list, campaign page, task page, live slots."""
import datetime as dt
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import CampaignStatus, CampaignType, CompletionReason, TaskStatus
from dialer import slots
from telephony.models import CallStatus
from tests.factories import (
    AgentFactory, CallFactory, CallingNumberFactory, CampaignFactory, OrganisationMemberFactory, TaskFactory,
    UserFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/campaigns/campaign/"


@pytest.fixture
def workspace():
    return WorkspaceFactory(slots=8, name="Sales")


@pytest.fixture
def staff(client, workspace):
    member = OrganisationMemberFactory(organisation=workspace.organisation)
    member.user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["campaigns", "telephony"]))
    client.force_login(member.user)
    return member.user


@pytest.fixture
def campaign(workspace):
    agent = AgentFactory(workspace=workspace, prompt="Hi ${name}", outcomes=["appointment-set"])
    number = CallingNumberFactory(workspace=workspace, number="+14155550100")
    return CampaignFactory(workspace=workspace, agent=agent, calling_number=number, name="Renewals", slots=4,
                           status=CampaignStatus.RUNNING)


def tasks(campaign, count, status=TaskStatus.QUEUED, **fields):
    if status in (TaskStatus.COMPLETED, TaskStatus.ARCHIVED):
        fields.setdefault("completion_reason", CompletionReason.CONNECTED)
    return TaskFactory.create_batch(count, campaign=campaign, status=status, **fields)


def ended_call(task, outcome="connected", attempt=1, **fields):
    now = timezone.now()
    return CallFactory(task=task, attempt=attempt, status=CallStatus.ENDED, outcome=outcome, placed_at=now,
                       ended_at=now, duration_seconds=42, cost="0.0140",
                       recording_url="https://recordings.example.com/r.wav", transcript="Agent: Hello Ada",
                       analysis={"summary": "Spoke with Ada", "fields": {"plan": "gold"}}, **fields)


def queries_for(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), response.content.decode()


class TestCampaignList:
    def test_rows_show_status_progress_counts_and_live_calls(self, client, staff, campaign):
        tasks(campaign, 3)
        tasks(campaign, 1, TaskStatus.COMPLETED)
        tasks(campaign, 1, TaskStatus.ARCHIVED)
        page = client.get(LIST_URL).content.decode()
        assert 'class="dash-badge dash-status-running"' in page
        assert "2 / 5" in page  # completed + archived of all tasks
        assert 'style="width: 40.0%"' in page
        assert f'data-live-campaign="{campaign.id}"' in page and 'borrowed in brackets">0 / 4<' in page
        assert 'id="slots-panel"' in page and "Sales" in page

    def test_list_queries_do_not_grow_with_campaigns_or_tasks(self, client, staff, campaign, workspace):
        tasks(campaign, 2)
        few, _ = queries_for(client, LIST_URL)
        for _ in range(6):
            tasks(CampaignFactory(workspace=workspace), 5, TaskStatus.COMPLETED)
        many, page = queries_for(client, LIST_URL)
        assert many == few and page.count("dash-progress-bar") == 7

    def test_filters_and_search(self, client, staff, campaign, workspace):
        CampaignFactory(workspace=workspace, name="Winback", type=CampaignType.REALTIME, priority="high")
        assert "Winback" not in client.get(LIST_URL + "?q=renew").content.decode()
        page = client.get(LIST_URL + "?type__exact=realtime&priority__exact=high").content.decode()
        assert "Winback" in page and "Renewals" not in page
        assert "Renewals" in client.get(LIST_URL + "?status__exact=running").content.decode()

    def test_another_organisations_campaigns_are_not_listed(self, client, staff, campaign):
        CampaignFactory(name="Not ours")
        assert "Not ours" not in client.get(LIST_URL).content.decode()


class TestControls:
    def action(self, client, name, campaigns, confirm=False):
        data = {"action": name, "_selected_action": [c.id for c in campaigns]}
        if confirm:
            data["post"] = "yes"
        return client.post(LIST_URL, data)

    def test_pause_confirmation_says_how_many_tasks_change_and_changes_nothing(self, client, staff, campaign):
        tasks(campaign, 3)
        tasks(campaign, 2, TaskStatus.IN_PROGRESS)
        page = self.action(client, "pause_campaigns", [campaign]).content.decode()
        assert "<strong>3 tasks</strong> will change" in page
        assert campaign.tasks.filter(status=TaskStatus.QUEUED).count() == 3

    def test_confirmed_pause_then_resume_go_through_the_controls(self, client, staff, campaign):
        tasks(campaign, 3)
        response = self.action(client, "pause_campaigns", [campaign], confirm=True)
        assert response.status_code == 302
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.PAUSED
        assert campaign.tasks.filter(status=TaskStatus.PAUSED).count() == 3
        messages = client.get(LIST_URL).content.decode()
        assert "1 campaign paused; 3 tasks changed." in messages
        url = f"{LIST_URL}{campaign.id}/control/resume/"
        assert "<strong>3 tasks</strong> will change (paused → queued)" in client.get(url).content.decode()
        assert client.post(url, {"post": "yes"})["Location"] == f"{LIST_URL}{campaign.id}/change/"
        assert campaign.tasks.filter(status=TaskStatus.QUEUED).count() == 3

    def test_archive_counts_queued_and_paused_and_skips_finished_campaigns(self, client, staff, campaign, workspace):
        tasks(campaign, 2)
        tasks(campaign, 1, TaskStatus.PAUSED)
        done = CampaignFactory(workspace=workspace, name="Old one", status=CampaignStatus.ARCHIVED)
        page = self.action(client, "archive_campaigns", [campaign, done]).content.decode()
        assert "<strong>3 tasks</strong> will change" in page and "Cannot archive “Old one” (archived)" in page
        self.action(client, "archive_campaigns", [campaign, done], confirm=True)
        assert campaign.tasks.filter(status=TaskStatus.ARCHIVED).count() == 3
        assert "cannot archive a campaign that is archived" in client.get(LIST_URL).content.decode()

    def test_confirmation_counts_tasks_in_one_query(self, client, staff, campaign, workspace):
        others = [CampaignFactory(workspace=workspace) for _ in range(4)]
        for other in [campaign, *others]:
            tasks(other, 2)
        with CaptureQueriesContext(connection) as one:
            self.action(client, "pause_campaigns", [campaign])
        with CaptureQueriesContext(connection) as five:
            page = self.action(client, "pause_campaigns", [campaign, *others]).content.decode()
        assert len(five) == len(one) and "<strong>10 tasks</strong> will change" in page


class TestCampaignPage:
    def url(self, campaign):
        return f"{LIST_URL}{campaign.id}/change/"

    def settings_data(self, campaign, **overrides):
        data = {
            "name": campaign.name, "agent": campaign.agent_id, "calling_number": campaign.calling_number_id,
            "priority": campaign.priority, "timezone": campaign.timezone,
            "start_at_0": "", "start_at_1": "", "end_at_0": "", "end_at_1": "",
            "calling_start": "00:00", "calling_end": "00:00", "calling_days": [str(d) for d in campaign.calling_days],
            "max_retries": campaign.max_retries, "retry_interval_minutes": campaign.retry_interval_ms // 60_000,
            "slots": campaign.slots, "slot_mode": campaign.slot_mode,
        }
        data.update(overrides)
        return data

    def test_page_shows_progress_charts_and_tasks(self, client, staff, campaign):
        done = tasks(campaign, 2, TaskStatus.COMPLETED)
        tasks(campaign, 2)
        ended_call(done[0], "connected")
        ended_call(done[1], "voicemail")
        page = client.get(self.url(campaign)).content.decode()
        assert '<strong data-stat="done">2</strong> of <strong data-stat="total">4</strong>' in page
        assert 'id="outcome-chart"' in page and "<svg" in page and "voicemail" in page
        assert 'class="dash-timeline-bar"' in page
        table = page[page.index('id="task-table"'):page.index('id="campaign_form"')]
        assert table.count('href="/admin/campaigns/task/') == 4

    def test_page_queries_do_not_grow_with_tasks_or_calls(self, client, staff, campaign):
        for task in tasks(campaign, 2, TaskStatus.COMPLETED):
            ended_call(task)
        few, _ = queries_for(client, self.url(campaign))
        for task in tasks(campaign, 60, TaskStatus.COMPLETED):
            ended_call(task, "busy")
        tasks(campaign, 30)
        many, page = queries_for(client, self.url(campaign))
        assert many == few and 'id="tasks-next"' in page

    def test_tasks_table_filters_by_status_and_pages_by_id(self, client, staff, campaign):
        queued = tasks(campaign, 55)
        paused = tasks(campaign, 1, TaskStatus.PAUSED)
        page = client.get(self.url(campaign) + "?task_status=paused").content.decode()
        assert f"#{paused[0].id}<" in page and f"#{queued[0].id}<" not in page
        first = client.get(self.url(campaign) + "?task_status=queued").content.decode()
        assert f"#{queued[49].id}<" in first and f"#{queued[50].id}<" not in first
        second = client.get(self.url(campaign) + f"?task_status=queued&after={queued[49].id}").content.decode()
        assert f"#{queued[50].id}<" in second and f"#{queued[49].id}<" not in second

    def test_settings_change_goes_through_the_validation_and_update_action(self, client, staff, campaign):
        tasks(campaign, 2)
        response = client.post(self.url(campaign), self.settings_data(
            campaign, calling_start="10:00", calling_end="20:00", slots="6", max_retries="2"))
        assert response.status_code == 302
        campaign.refresh_from_db()
        assert (campaign.calling_start, campaign.calling_end, campaign.slots, campaign.max_retries) == (
            dt.time(10), dt.time(20), 6, 2)
        assert "Settings saved (calling_end, calling_start, max_retries, slots)" in client.get(
            self.url(campaign)).content.decode()

    def test_unchanged_settings_change_nothing(self, client, staff, campaign):
        before = campaign.start_at
        client.post(self.url(campaign), self.settings_data(campaign))
        campaign.refresh_from_db()
        assert campaign.start_at == before
        assert "No setting changed." in client.get(self.url(campaign)).content.decode()

    def test_invalid_settings_show_the_api_validation_errors(self, client, staff, campaign):
        page = client.post(self.url(campaign), self.settings_data(
            campaign, slots="9", timezone="Mars/Olympus")).content.decode()
        assert "Must be at most 8, the workspace&#x27;s slots." in page and "is not an IANA timezone" in page
        campaign.refresh_from_db()
        assert campaign.slots == 4

    def test_a_completed_campaign_is_shown_read_only(self, client, staff, campaign):
        campaign.status = CampaignStatus.COMPLETED
        campaign.save(update_fields=["status"])
        page = client.get(self.url(campaign)).content.decode()
        assert 'id="settings-readonly"' in page and 'id="campaign_form"' not in page
        assert client.post(self.url(campaign), self.settings_data(campaign, slots="2")).status_code == 403

    def test_realtime_campaign_shows_the_sample_body_with_a_copy_button(self, client, staff, campaign, workspace):
        realtime = CampaignFactory(workspace=workspace, agent=campaign.agent, type=CampaignType.REALTIME)
        page = client.get(self.url(realtime)).content.decode()
        start = page.index('id="sample-json"')
        body = json.loads(page[page.index(">", start) + 1:page.index("</pre>", start)].replace("&quot;", '"'))
        assert body["campaign"] == str(realtime.id) and body["context"] == {"name": ""}
        assert 'data-copy-target="sample-json"' in page

    def test_stats_json_reports_counts_and_live_calls(self, client, staff, campaign):
        tasks(campaign, 1)
        tasks(campaign, 3, TaskStatus.COMPLETED)
        data = client.get(f"{LIST_URL}{campaign.id}/stats.json").json()
        assert (data["status"], data["total"], data["done"], data["percent"]) == ("running", 4, 3, 75.0)
        assert data["counts"]["queued"] == 1 and data["live"]["allocation"] == 4

    def test_another_tenants_campaign_is_not_found(self, client, staff):
        theirs = CampaignFactory()
        assert client.get(self.url(theirs))["Location"] == "/admin/"
        assert client.get(f"{LIST_URL}{theirs.id}/stats.json").status_code == 404
        assert client.post(f"{LIST_URL}{theirs.id}/control/pause/", {"post": "yes"}).status_code == 404


class TestTaskPage:
    def test_calls_tab_lists_attempts_with_their_full_details(self, client, staff, campaign):
        task = tasks(campaign, 1, TaskStatus.COMPLETED)[0]
        first = ended_call(task, "no-answer", attempt=1)
        second = ended_call(task, "connected", attempt=2)
        page = client.get(f"/admin/campaigns/task/{task.id}/change/").content.decode()
        assert page.index(str(first.id)) < page.index(str(second.id))
        assert '<audio controls preload="none" src="https://recordings.example.com/r.wav">' in page
        assert "Agent: Hello Ada" in page and "&quot;plan&quot;: &quot;gold&quot;" in page
        assert "+14155550100 → " + task.phone in page and "42 s" in page and "0.0140" in page

    def test_details_tab_shows_config_as_submitted_and_resolved(self, client, staff, campaign, workspace):
        realtime = CampaignFactory(workspace=workspace, agent=campaign.agent, type=CampaignType.REALTIME,
                                   retry_interval_ms=600_000)
        task = TaskFactory(campaign=realtime, max_attempts=3, intervals_ms=[180_000, 5400], priorities=[100, 50, 10],
                           retry_outcomes=["voicemail"], timezone="Asia/Kolkata", calling_start=dt.time(10),
                           calling_end=dt.time(18), submitted_config={"phone": "+919876543210", "retries": 3})
        page = client.get(f"/admin/campaigns/task/{task.id}/change/").content.decode()
        resolved = page[page.index('id="resolved-config"'):]
        for text in ("1000–1800", "Asia/Kolkata", "3 min, 5.4 s", "100, 50, 10", "voicemail",
                     "<th scope=\"row\">Max attempts</th><td>3</td>"):
            assert text in resolved
        assert "&quot;retries&quot;: 3" in page and "&quot;name&quot;: &quot;Ada&quot;" in page

    def test_task_page_queries_do_not_grow_with_calls(self, client, staff, campaign):
        task = tasks(campaign, 1, TaskStatus.COMPLETED)[0]
        ended_call(task, attempt=1)
        few, _ = queries_for(client, f"/admin/campaigns/task/{task.id}/change/")
        for attempt in range(2, 6):
            ended_call(task, attempt=attempt)
        assert queries_for(client, f"/admin/campaigns/task/{task.id}/change/")[0] == few

    def test_task_list_searches_by_part_of_the_phone_within_the_organisation(self, client, staff, campaign):
        mine = TaskFactory(campaign=campaign, phone="+442071234567")
        TaskFactory(campaign=campaign, phone="+14155550199")
        TaskFactory(phone="+442071234568")
        page = client.get("/admin/campaigns/task/", {"q": "2071234"}).content.decode()
        assert re.findall(r'href="/admin/campaigns/task/(\d+)/change/', page) == [str(mine.id)]

    def test_another_tenants_task_is_not_found(self, client, staff):
        theirs = TaskFactory()
        assert client.get(f"/admin/campaigns/task/{theirs.id}/change/")["Location"] == "/admin/"
        assert client.post(f"/admin/campaigns/task/{theirs.id}/control/pause/").status_code == 404
        theirs.refresh_from_db()
        assert theirs.status == TaskStatus.QUEUED

    def test_task_controls_pause_and_resume_one_task(self, client, staff, campaign):
        task = tasks(campaign, 1)[0]
        client.post(f"/admin/campaigns/task/{task.id}/control/pause/")
        task.refresh_from_db()
        assert task.status == TaskStatus.PAUSED
        client.post(f"/admin/campaigns/task/{task.id}/control/resume/")
        task.refresh_from_db()
        assert task.status == TaskStatus.QUEUED


class TestSlotsPanel:
    def test_json_reports_organisation_and_workspace_use_from_redis(self, client, staff, campaign, workspace):
        organisation = workspace.organisation
        slots.sync_allocations(organisation.id)
        call = CallFactory(task=tasks(campaign, 1, TaskStatus.IN_PROGRESS)[0], status=CallStatus.ANSWERED)
        assert slots.acquire(organisation.id, campaign.id, call.id).admitted
        data = client.get(f"{LIST_URL}slots.json").json()
        [org] = data["organisations"]
        assert (org["name"], org["used"], org["allocation"]) == (organisation.name, 1, organisation.total_slots)
        assert org["workspaces"] == [{"id": workspace.id, "name": "Sales", "used": 1, "allocation": 8,
                                      "mode": "hard", "borrowed": 0}]
        assert org["campaigns"][str(campaign.id)] == {"used": 1, "allocation": 4}
        page = client.get(f"{LIST_URL}slots/").content.decode()
        assert f'data-slot-workspace="{workspace.id}"' in page and "campaigns/dashboard.js" in page

    def test_superuser_sees_every_organisation(self, client, workspace):
        other = WorkspaceFactory()
        client.force_login(UserFactory(is_superuser=True))
        names = {org["name"] for org in client.get(f"{LIST_URL}slots.json").json()["organisations"]}
        assert {workspace.organisation.name, other.organisation.name} <= names



class TestCallAdmin:
    def test_calls_are_read_only_and_link_to_their_task_page(self, client, staff, campaign):
        call = ended_call(tasks(campaign, 1, TaskStatus.COMPLETED)[0])
        page = client.get("/admin/telephony/call/").content.decode()
        assert f'href="/admin/campaigns/task/{call.task_id}/change/#tab-calls"' in page
        assert client.get("/admin/telephony/call/add/").status_code == 403
        change = client.post(f"/admin/telephony/call/{call.id}/change/", {"outcome": "busy"})
        assert change.status_code == 403
        call.refresh_from_db()
        assert call.outcome == "connected"
