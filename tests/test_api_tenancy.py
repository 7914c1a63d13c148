"""Invariant 10: a workspace's key reaches only its own data. Another workspace's objects are 404
(never 403) on every endpoint, and never appear in lists."""
import pytest

from campaigns.models import Campaign, CampaignStatus, Task, TaskStatus
from tests.factories import (
    AgentFactory, CallFactory, CallingNumberFactory, CampaignFactory, DoNotCallFactory, TaskFactory,
)
from tests.test_api_auth import (  # noqa: F401  (fixtures)
    agent, api, api_key, number, other_api, other_workspace, realtime, workspace,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(other_workspace):
    """Workspace B's objects, reached with workspace A's key (`api`)."""
    campaign = CampaignFactory(workspace=other_workspace, type="realtime")
    task = TaskFactory(campaign=campaign)
    call = CallFactory(task=task)
    return {"campaign": campaign.id, "task": task.id, "call": call.id}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/v1/campaigns/{campaign}", None),
    ("patch", "/api/v1/campaigns/{campaign}", {"name": "mine now"}),
    ("post", "/api/v1/campaigns/{campaign}/pause", None),
    ("post", "/api/v1/campaigns/{campaign}/resume", None),
    ("post", "/api/v1/campaigns/{campaign}/archive", None),
    ("get", "/api/v1/campaigns/{campaign}/tasks", None),
    ("get", "/api/v1/tasks/{task}", None),
    ("post", "/api/v1/tasks/{task}/pause", None),
    ("post", "/api/v1/tasks/{task}/resume", None),
    ("post", "/api/v1/tasks/{task}/archive", None),
    ("get", "/api/v1/calls/{call}", None),
])
def test_other_workspaces_objects_are_404_and_untouched(api, theirs, method, path, body):
    response = getattr(api, method)(path.format(**theirs), body, format="json")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"field": None, "message": response.json()["errors"][0]["message"]}]}
    campaign = Campaign.objects.get(id=theirs["campaign"])
    assert campaign.status == CampaignStatus.SCHEDULED and campaign.name != "mine now"
    assert Task.objects.get(id=theirs["task"]).status == TaskStatus.QUEUED


@pytest.mark.parametrize(("path", "same_as_missing"), [
    ("/api/v1/campaigns/{campaign}", "/api/v1/campaigns/987654321"),
    ("/api/v1/tasks/{task}", "/api/v1/tasks/987654321"),
    ("/api/v1/calls/{call}", "/api/v1/calls/00000000-0000-0000-0000-000000000000"),
])
def test_someone_elses_object_is_indistinguishable_from_a_missing_one(api, theirs, path, same_as_missing):
    assert api.get(path.format(**theirs)).json() == api.get(same_as_missing).json()


def test_contacts_upload_to_another_workspaces_campaign_is_404(api, other_workspace):
    campaign = CampaignFactory(workspace=other_workspace)
    assert api.post(f"/api/v1/campaigns/{campaign.id}/contacts", {}, format="multipart").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/campaigns/abc", "/api/v1/tasks/99999999999999999999999",
                                  "/api/v1/calls/not-a-uuid", "/api/v1/tasks/-1"])
def test_malformed_ids_are_404(api, path):
    assert api.get(path).status_code == 404


def test_lists_never_show_another_workspaces_objects(api, theirs, other_workspace, workspace):
    AgentFactory(workspace=other_workspace)
    CallingNumberFactory(workspace=other_workspace)
    DoNotCallFactory(organisation=other_workspace.organisation, phone="+442071838750")
    for path in ("/api/v1/campaigns", "/api/v1/agents", "/api/v1/numbers", "/api/v1/dnc"):
        assert api.get(path).json()["results"] == [], path
    slots = api.get("/api/v1/slots").json()
    assert slots["campaigns"] == [] and slots["workspace"]["id"] == str(workspace.id)


def test_create_task_cannot_target_another_workspaces_campaign(api, theirs):
    response = api.post("/api/v1/tasks", {"phone": "+442071838750", "campaign": str(theirs["campaign"])},
                        format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "campaign"
    assert Task.objects.filter(campaign_id=theirs["campaign"]).count() == 1


def test_dnc_list_is_per_organisation(api, other_api, other_workspace):
    DoNotCallFactory(organisation=other_workspace.organisation, phone="+442071838750")
    assert api.delete("/api/v1/dnc/+442071838750").status_code == 404
    assert other_api.get("/api/v1/dnc").json()["results"][0]["phone"] == "+442071838750"


def test_campaign_create_cannot_use_another_workspaces_agent(api, other_workspace):
    theirs = AgentFactory(workspace=other_workspace)
    response = api.post("/api/v1/campaigns", {"type": "realtime", "name": "x", "agent": str(theirs.id)},
                        format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "agent"
