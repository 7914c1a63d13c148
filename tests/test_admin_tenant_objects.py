"""Agents, calling numbers, API keys and do-not-call entries edited in the admin go through the
same validation and actions as the API."""
import pytest
from django.contrib.messages import get_messages

from campaigns.models import Agent, ApiKey, CallingNumber, DoNotCall, Integration
from campaigns.actions.tenancy import authenticate_api_key
from tests.factories import AgentFactory, ApiKeyFactory, IntegrationFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    user = UserFactory(is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def workspace():
    return WorkspaceFactory()


def test_an_api_key_added_in_the_admin_is_shown_once_and_stored_hashed(client, superuser, workspace):
    response = client.post("/admin/campaigns/apikey/add/", {"workspace": workspace.id, "name": "crm"}, follow=True)
    assert response.status_code == 200
    key = ApiKey.objects.get(name="crm")
    shown = [str(message) for message in get_messages(response.wsgi_request)] or \
        [str(message) for message in response.context["messages"]]
    raw = next(text.split("<code>")[1].split("</code>")[0] for text in shown if "<code>" in text)
    assert key.key_hash and raw not in key.key_hash and key.prefix == raw[:10]
    assert authenticate_api_key(raw) == key


def test_an_api_key_in_the_admin_can_be_revoked_but_not_edited(client, superuser):
    key = ApiKeyFactory()
    page = client.get(f"/admin/campaigns/apikey/{key.id}/change/")
    assert page.status_code == 200 and b"key_hash" not in page.content
    client.post("/admin/campaigns/apikey/", {"action": "revoke_keys", "_selected_action": [key.id]})
    key.refresh_from_db()
    assert key.revoked_at is not None and authenticate_api_key(key.raw_key) is None


def test_an_agent_added_in_the_admin_is_validated_like_the_api(client, superuser, workspace):
    response = client.post("/admin/campaigns/agent/add/", {
        "workspace": workspace.id, "name": "Booker", "prompt": "Hi", "outcomes": "Not An Outcome"})
    assert response.status_code == 200 and not Agent.objects.filter(name="Booker").exists()
    assert "lowercase letters" in str(response.context["adminform"].form.errors["outcomes"])

    client.post("/admin/campaigns/agent/add/", {
        "workspace": workspace.id, "name": "Booker", "prompt": "Hi", "outcomes": "appointment-set, appointment-set"})
    assert Agent.objects.get(name="Booker").outcomes == ["appointment-set"]


def test_an_agent_changed_in_the_admin_keeps_the_rules(client, superuser):
    agent = AgentFactory(outcomes=["sale"])
    response = client.post(f"/admin/campaigns/agent/{agent.id}/change/", {
        "workspace": agent.workspace_id, "name": "", "prompt": "Hi", "outcomes": "sale"})
    assert response.status_code == 200 and "name" in response.context["adminform"].form.errors
    client.post(f"/admin/campaigns/agent/{agent.id}/change/", {
        "workspace": agent.workspace_id, "name": "Closer", "prompt": "Hi ${name}", "outcomes": "sale, lead"})
    agent.refresh_from_db()
    assert (agent.name, agent.outcomes) == ("Closer", ["sale", "lead"])


def test_a_calling_number_added_in_the_admin_is_stored_in_e164_and_invalid_ones_are_refused(
        client, superuser, workspace):
    response = client.post("/admin/campaigns/callingnumber/add/", {
        "workspace": workspace.id, "number": "+1 415 555", "carrier": "simulated", "calls_per_second": 5})
    assert response.status_code == 200 and not CallingNumber.objects.exists()
    client.post("/admin/campaigns/callingnumber/add/", {
        "workspace": workspace.id, "number": "+1 (415) 555-0100", "carrier": "simulated", "calls_per_second": 5})
    assert CallingNumber.objects.get().number == "+14155550100"


def test_a_do_not_call_entry_added_in_the_admin_is_stored_in_e164(client, superuser, workspace):
    organisation = workspace.organisation
    client.post("/admin/campaigns/donotcall/add/", {
        "organisation": organisation.id, "phone": "+44 20 7183 8750", "reason": "asked by phone"})
    assert DoNotCall.objects.get(organisation=organisation).phone == "+442071838750"
    response = client.post("/admin/campaigns/donotcall/add/", {
        "organisation": organisation.id, "phone": "020 7183 8750", "reason": ""})
    assert response.status_code == 200 and "country code" in str(response.context["adminform"].form.errors["phone"])


def test_platform_credentials_added_in_the_admin_are_stored_encrypted_and_never_shown(client, superuser, workspace):
    client.post("/admin/campaigns/integration/add/", {
        "workspace": workspace.id, "platform": "retell", "api_key": "key_admin_secret", "webhook_secret": "key_admin_secret",
        "base_url": "", "concurrency": "5"})
    integration = Integration.objects.get(workspace=workspace, platform="retell")
    assert integration.api_key == "key_admin_secret" and "key_admin_secret" not in integration.api_key_encrypted
    page = client.get(f"/admin/campaigns/integration/{integration.id}/change/")
    assert page.status_code == 200 and b"key_admin_secret" not in page.content
    client.post(f"/admin/campaigns/integration/{integration.id}/change/", {"base_url": "", "concurrency": "7"})
    integration.refresh_from_db()
    assert (integration.concurrency, integration.api_key) == (7, "key_admin_secret")


def test_an_agent_on_a_platform_without_credentials_is_refused_in_the_admin(client, superuser, workspace):
    response = client.post("/admin/campaigns/agent/add/", {
        "workspace": workspace.id, "name": "Caller", "prompt": "Hi", "outcomes": "",
        "runtime": '{"kind": "vapi", "assistantId": "a1", "phoneNumberId": "p1"}'})
    assert response.status_code == 200 and not Agent.objects.filter(name="Caller").exists()
    assert "integrations/vapi" in str(response.context["adminform"].form.errors["runtime"])


def test_platform_credentials_in_use_are_refused_deletion_in_the_admin_with_the_reason(client, superuser, workspace):
    integration = IntegrationFactory(workspace=workspace, platform="retell")
    AgentFactory(workspace=workspace, name="Rita", runtime={"kind": "retell", "agentId": "agent_1"})
    url = f"/admin/campaigns/integration/{integration.id}/delete/"
    page = client.get(url)
    assert b"Rita" in page.content
    client.post(url, {"post": "yes"})
    assert Integration.objects.filter(id=integration.id).exists()
    Agent.objects.filter(workspace=workspace).update(runtime={})
    client.post(url, {"post": "yes"})
    assert not Integration.objects.filter(id=integration.id).exists()
