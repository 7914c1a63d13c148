import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import Campaign, CampaignStatus, ContactImport
from tests.factories import (
    AgentFactory, CallingNumberFactory, CampaignFactory, OrganisationMemberFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

LONDON = "+442079460958"


@pytest.fixture
def workspace():
    return WorkspaceFactory(slots=8)


@pytest.fixture
def staff(client, workspace):
    member = OrganisationMemberFactory(organisation=workspace.organisation)
    member.user.user_permissions.add(*Permission.objects.filter(content_type__app_label="campaigns"))
    client.force_login(member.user)
    return member.user


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace, prompt="Hi ${name}", outcomes=["appointment-set"])


@pytest.fixture
def number(workspace):
    return CallingNumberFactory(workspace=workspace, number="+14155550100")


def form_data(workspace, agent, number, **overrides):
    data = {
        "workspace": workspace.id, "type": "batch", "name": "Renewals", "agent": agent.id, "calling_number": number.id,
        "priority": "high", "timezone": "Europe/London", "start_at_0": "2031-07-01", "start_at_1": "09:00:00",
        "end_at_0": "", "end_at_1": "", "calling_start": "10:00", "calling_end": "20:00",
        "calling_days": ["0", "1", "2", "3", "4"], "max_retries": "2", "retry_interval_minutes": "30",
        "retry_outcomes": ["voicemail", "appointment-set"], "slots": "4", "slot_mode": "soft",
    }
    data.update(overrides)
    return data


def upload_url(campaign):
    return f"/admin/campaigns/campaign/{campaign.id}/contacts/"


class TestCreateForm:
    def test_form_shows_every_setting_and_the_always_retried_outcomes(self, client, staff, workspace, agent, number):
        page = client.get("/admin/campaigns/campaign/add/").content.decode()
        for field in ("name", "agent", "calling_number", "priority", "timezone", "start_at_0", "end_at_0",
                      "calling_start", "calling_end", "calling_days", "max_retries", "retry_interval_minutes",
                      "retry_outcomes", "slots", "slot_mode"):
            assert f'name="{field}"' in page
        always = page[page.index('id="always-retried"'):]
        assert all(outcome in always for outcome in ("no-answer", "busy", "failed", "callback"))
        assert 'value="appointment-set"' in page and 'value="voicemail"' in page and 'value="silent"' in page

    def test_creating_a_batch_campaign_stores_it_and_leads_to_the_upload_page(self, client, staff, workspace,
                                                                             agent, number):
        response = client.post("/admin/campaigns/campaign/add/", form_data(workspace, agent, number))
        campaign = Campaign.objects.get()
        assert response.status_code == 302 and response["Location"] == upload_url(campaign)
        assert (campaign.status, campaign.workspace, campaign.agent, campaign.calling_number) == (
            CampaignStatus.SCHEDULED, workspace, agent, number)
        # 09:00 typed for a London campaign is 09:00 London time (BST).
        assert campaign.start_at == dt.datetime(2031, 7, 1, 8, 0, tzinfo=dt.timezone.utc)
        assert (campaign.calling_start, campaign.calling_end, campaign.calling_days) == (
            dt.time(10), dt.time(20), [0, 1, 2, 3, 4])
        assert (campaign.priority, campaign.max_retries, campaign.retry_interval_ms, campaign.retry_outcomes,
                campaign.slots, campaign.slot_mode) == ("high", 2, 1_800_000, ["voicemail", "appointment-set"], 4, "soft")

    def test_errors_of_the_shared_validation_are_shown_on_their_fields(self, client, staff, workspace, agent, number):
        data = form_data(workspace, agent, number, timezone="Mars/Olympus", slots="9", end_at_0="2031-06-01",
                         end_at_1="00:00:00")
        page = client.post("/admin/campaigns/campaign/add/", data).content.decode()
        assert "Mars/Olympus" in page and "is not an IANA timezone" in page
        assert "Must be at most 8, the workspace&#x27;s slots." in page
        assert not Campaign.objects.exists()

    def test_an_end_before_the_start_is_refused(self, client, staff, workspace, agent, number):
        data = form_data(workspace, agent, number, end_at_0="2031-06-01", end_at_1="00:00:00")
        assert "Must be after startAt." in client.post("/admin/campaigns/campaign/add/", data).content.decode()

    def test_a_batch_campaign_needs_a_calling_number(self, client, staff, workspace, agent, number):
        page = client.post("/admin/campaigns/campaign/add/", form_data(workspace, agent, number, calling_number=""))
        assert "A batch campaign needs a calling number." in page.content.decode()

    def test_another_organisations_agent_cannot_be_chosen(self, client, staff, workspace, agent, number):
        stranger = AgentFactory()
        page = client.post("/admin/campaigns/campaign/add/", form_data(workspace, stranger, number)).content.decode()
        assert "Select a valid choice" in page and not Campaign.objects.exists()

    def test_empty_calling_hours_mean_all_day(self, client, staff, workspace, agent, number):
        client.post("/admin/campaigns/campaign/add/",
                    form_data(workspace, agent, number, calling_start="", calling_end="", start_at_0="", start_at_1=""))
        campaign = Campaign.objects.get()
        assert (campaign.calling_start, campaign.calling_end) == (dt.time(0), dt.time(0))


class TestUploadPage:
    @pytest.fixture
    def campaign(self, workspace, agent, number):
        return CampaignFactory(workspace=workspace, agent=agent, calling_number=number)

    def post_file(self, client, campaign, text, skip_invalid=False):
        data = {"file": SimpleUploadedFile("list.csv", text.encode(), content_type="text/csv")}
        if skip_invalid:
            data["skip_invalid"] = "on"
        return client.post(upload_url(campaign), data)

    def test_change_page_links_to_the_upload_page(self, client, staff, campaign):
        assert upload_url(campaign) in client.get(f"/admin/campaigns/campaign/{campaign.id}/change/").content.decode()

    def test_a_good_file_is_imported_and_summarised(self, client, staff, campaign):
        response = self.post_file(client, campaign, f"phone,name\n{LONDON},Ada\n")
        contact_import = ContactImport.objects.get()
        assert response["Location"] == f"{upload_url(campaign)}?import={contact_import.id}"
        page = client.get(response["Location"]).content.decode()
        assert "1 imported" in page and campaign.tasks.count() == 1

    def test_row_errors_are_listed_with_a_download_link(self, client, staff, campaign):
        response = self.post_file(client, campaign, f"phone,name\n{LONDON},Ada\n12345,Bob\n")
        page = client.get(response["Location"]).content.decode()
        assert "Nothing was imported" in page and "has no country code" in page
        report = client.get(f"{upload_url(campaign)}{ContactImport.objects.get().id}/errors.csv")
        assert report["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(report.content.decode())))
        assert rows[0] == ["row", "column", "reason"] and rows[1][:2] == ["3", "phone"]
        assert not campaign.tasks.exists()

    def test_skip_invalid_imports_the_good_rows(self, client, staff, campaign):
        self.post_file(client, campaign, f"phone,name\n{LONDON},Ada\n12345,Bob\n", skip_invalid=True)
        assert campaign.tasks.count() == 1

    def test_a_refused_upload_says_why(self, client, staff, campaign):
        Campaign.objects.filter(id=campaign.id).update(status=CampaignStatus.RUNNING)
        page = self.post_file(client, campaign, f"phone,name\n{LONDON},Ada\n").content.decode()
        assert "The campaign is running: contacts can only be added before it starts calling." in page
        assert not ContactImport.objects.exists()

    def test_another_tenants_campaign_and_report_are_not_found(self, client, staff):
        theirs = CampaignFactory()
        contact_import = ContactImport.objects.create(campaign=theirs, errors=[])
        assert client.get(upload_url(theirs)).status_code == 404
        assert self.post_file(client, theirs, f"phone,name\n{LONDON},Ada\n").status_code == 404
        assert client.get(f"{upload_url(theirs)}{contact_import.id}/errors.csv").status_code == 404
        assert not theirs.tasks.exists()

    def test_a_report_of_another_campaign_is_not_found(self, client, staff, campaign, workspace):
        sibling = CampaignFactory(workspace=workspace)
        contact_import = ContactImport.objects.create(campaign=sibling, errors=[])
        assert client.get(f"{upload_url(campaign)}{contact_import.id}/errors.csv").status_code == 404
