"""Platform credentials over the API and agents' runtimes: validation, encryption at rest, no secret
ever echoed, and an agent refused for a platform the workspace has no credentials for."""
import pytest
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from campaigns import encryption
from campaigns.models import Agent, Integration
from telephony.models import CallStatus
from tests.factories import AgentFactory, CallFactory, IntegrationFactory
from tests.test_api_auth import api, api_key, workspace  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

VAPI_RUNTIME = {"kind": "vapi", "assistantId": "5f1a6a1c-0000-4000-8000-00000000a001",
                "phoneNumberId": "b2d5c0de-0000-4000-8000-00000000a002"}


def fields_of(response):
    return {e["field"] for e in response.json()["errors"]}


def put(api, platform, body):
    return api.put(f"/api/v1/integrations/{platform}", body, format="json")


def test_credentials_are_stored_encrypted_and_never_shown(api, workspace):
    response = put(api, "vapi", {"apiKey": "vapi-private-key-123", "webhookSecret": "hmac-secret-456"})
    assert response.status_code == 201, response.json()
    assert response.json() == {**response.json(), "platform": "vapi", "hasApiKey": True, "hasWebhookSecret": True,
                               "simulate": False, "concurrency": None}
    listed = api.get("/api/v1/integrations")
    for text in (response.content, listed.content):
        assert b"vapi-private-key-123" not in text and b"hmac-secret-456" not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted || webhook_secret_encrypted FROM campaigns_integration")
        (stored,), = cursor.fetchall()
    assert "vapi-private-key-123" not in stored and "hmac-secret-456" not in stored
    integration = Integration.objects.get(workspace=workspace)
    assert (integration.api_key, integration.webhook_secret) == ("vapi-private-key-123", "hmac-secret-456")


def test_a_replacement_keeps_the_secrets_it_leaves_out(api, workspace):
    put(api, "retell", {"apiKey": "key_one", "webhookSecret": "secret_one"})
    response = put(api, "retell", {"concurrency": 20})
    assert response.status_code == 200, response.json()
    integration = Integration.objects.get(workspace=workspace, platform="retell")
    assert (integration.api_key, integration.concurrency) == ("key_one", 20)


def test_a_simulated_integration_needs_no_account(api):
    response = put(api, "elevenlabs", {"simulate": True})
    assert response.status_code == 201, response.json()
    assert response.json()["hasApiKey"] is False and response.json()["simulate"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({}, "apiKey"), ({"apiKey": "k"}, "webhookSecret"), ({"apiKey": " ", "webhookSecret": "s"}, "apiKey"),
    ({"apiKey": "k", "webhookSecret": "s", "concurrency": 0}, "concurrency"),
    ({"apiKey": "k", "webhookSecret": "s", "simulate": "yes"}, "simulate"),
    ({"apiKey": "k", "webhookSecret": "s", "baseUrl": "ftp://api.vapi.ai"}, "baseUrl"),
    ({"apiKey": "k", "webhookSecret": "s", "baseUrl": "http://127.0.0.1:9/"}, "baseUrl"),
    ({"apiKey": "k", "webhookSecret": "s", "region": "eu"}, "region"),
])
def test_invalid_credentials_are_400_naming_the_field_and_store_nothing(api, body, field):
    response = put(api, "vapi", body)
    assert response.status_code == 400 and field in fields_of(response), response.json()
    assert not Integration.objects.exists()


def test_an_unknown_platform_is_404(api):
    assert put(api, "bland", {"apiKey": "k", "webhookSecret": "s"}).status_code == 404


def test_without_an_encryption_key_credentials_are_refused_clearly(api):
    with override_settings(INTEGRATIONS_ENCRYPTION_KEY=""):
        response = put(api, "vapi", {"apiKey": "k", "webhookSecret": "s"})
    assert response.status_code == 400 and "INTEGRATIONS_ENCRYPTION_KEY" in response.json()["errors"][0]["message"]
    assert not Integration.objects.exists()


def test_a_rotated_key_still_opens_what_the_old_one_sealed(workspace):
    old = encryption.Fernet.generate_key().decode()
    with override_settings(INTEGRATIONS_ENCRYPTION_KEY=old):
        token = encryption.encrypt("secret")
    with override_settings(INTEGRATIONS_ENCRYPTION_KEY=f"{encryption.Fernet.generate_key().decode()},{old}"):
        assert encryption.decrypt(token) == "secret"


def test_an_agent_on_a_platform_with_credentials_is_created(api, workspace):
    IntegrationFactory(workspace=workspace, platform="vapi")
    response = api.post("/api/v1/agents", {"name": "Ava", "runtime": VAPI_RUNTIME}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["runtime"] == VAPI_RUNTIME
    assert Agent.objects.get().runtime == VAPI_RUNTIME


def test_an_agent_without_a_runtime_streams_to_the_default(api):
    response = api.post("/api/v1/agents", {"name": "Ava"}, format="json")
    assert response.json()["runtime"] == {"kind": "stream"}
    assert Agent.objects.get().runtime == {}


def test_an_agent_on_a_platform_without_credentials_is_refused(api):
    response = api.post("/api/v1/agents", {"name": "Ava", "runtime": VAPI_RUNTIME}, format="json")
    assert response.status_code == 400 and fields_of(response) == {"runtime.kind"}
    assert "PUT /api/v1/integrations/vapi" in response.json()["errors"][0]["message"]
    assert not Agent.objects.exists()


@pytest.mark.parametrize(("runtime", "field"), [
    ({"kind": "retell"}, "runtime.agentId"),
    ({"kind": "retell", "agentId": "agent 1"}, "runtime.agentId"),
    ({"kind": "elevenlabs", "agentId": "agent_1"}, "runtime.phoneNumberId"),
    ({"kind": "vapi", "assistantId": "a", "phoneNumberId": "p", "squadId": "s"}, "runtime.squadId"),
    ({"kind": "stream", "url": "https://agent.example/media"}, "runtime.url"),
    ({"kind": "stream", "url": "wss://"}, "runtime.url"),
    ({"kind": "stream"}, "runtime.url"),
    ({"kind": "bland"}, "runtime.kind"),
    ("vapi", "runtime"), (None, "runtime"), ({}, "runtime.kind"),
])
def test_a_malformed_runtime_is_400_naming_its_field(api, workspace, runtime, field):
    for platform in ("vapi", "retell", "elevenlabs"):
        IntegrationFactory(workspace=workspace, platform=platform)
    response = api.post("/api/v1/agents", {"name": "Ava", "runtime": runtime}, format="json")
    assert response.status_code == 400 and field in fields_of(response), response.json()


def test_a_stream_agent_names_its_own_wss_url(api):
    runtime = {"kind": "stream", "url": "wss://agents.example.com/media?team=7"}
    response = api.post("/api/v1/agents", {"name": "Ava", "runtime": runtime}, format="json")
    assert response.status_code == 201 and response.json()["runtime"] == runtime


def test_unused_credentials_are_removed(api, workspace):
    IntegrationFactory(workspace=workspace, platform="retell")
    response = api.delete("/api/v1/integrations/retell")
    assert response.status_code == 204
    assert not Integration.objects.exists()
    assert api.delete("/api/v1/integrations/retell").status_code == 404


def test_credentials_an_agent_runs_on_are_kept_and_the_agent_named(api, workspace):
    IntegrationFactory(workspace=workspace, platform="vapi")
    AgentFactory(workspace=workspace, name="Ava", runtime=VAPI_RUNTIME)
    AgentFactory(workspace=workspace, name="Bea")
    response = api.delete("/api/v1/integrations/vapi")
    assert response.status_code == 409 and "Ava" in response.json()["errors"][0]["message"]
    assert "Bea" not in response.json()["errors"][0]["message"]
    assert Integration.objects.filter(workspace=workspace, platform="vapi").exists()


def test_credentials_a_live_call_was_placed_through_are_kept_until_it_ends(api, workspace):
    IntegrationFactory(workspace=workspace, platform="vapi")
    call = CallFactory(task__campaign__workspace=workspace, carrier="vapi", status=CallStatus.ANSWERED)
    response = api.delete("/api/v1/integrations/vapi")
    assert response.status_code == 409 and "1 call(s)" in response.json()["errors"][0]["message"]
    call.status, call.outcome, call.ended_at = CallStatus.ENDED, "connected", timezone.now()
    call.save(update_fields=["status", "outcome", "ended_at"])
    assert api.delete("/api/v1/integrations/vapi").status_code == 204


def test_another_workspaces_credentials_are_not_removed(api, workspace):
    elsewhere = IntegrationFactory(platform="retell")
    assert api.delete("/api/v1/integrations/retell").status_code == 404
    assert Integration.objects.filter(id=elsewhere.id).exists()
