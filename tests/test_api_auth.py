"""API keys: Bearer auth, revocation, last-used stamping, per-key throttling, the error body.

The fixtures here are shared by the other tests/test_api_*.py modules, which import them.
"""
import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.api.auth import ApiKeyRateThrottle
from campaigns.models import ApiKey, CampaignType
from campaigns.actions.tenancy import do_revoke_api_key
from tests.factories import (
    AgentFactory, ApiKeyFactory, CallingNumberFactory, CampaignFactory, OrganisationFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


def client_for(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
    return client


@pytest.fixture
def workspace():
    return WorkspaceFactory(organisation=OrganisationFactory(total_slots=100), slots=20)


@pytest.fixture
def api_key(workspace):
    return ApiKeyFactory(workspace=workspace)


@pytest.fixture
def api(api_key):
    return client_for(api_key)


@pytest.fixture
def other_workspace():
    return WorkspaceFactory(organisation=OrganisationFactory(total_slots=100), slots=20)


@pytest.fixture
def other_api(other_workspace):
    return client_for(ApiKeyFactory(workspace=other_workspace))


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace, prompt="Hi ${name}", outcomes=["interested"])


@pytest.fixture
def number(workspace):
    return CallingNumberFactory(workspace=workspace, number="+14155550123")


@pytest.fixture
def realtime(workspace, agent, number):
    return CampaignFactory(workspace=workspace, type=CampaignType.REALTIME, agent=agent, calling_number=number,
                           max_retries=1, retry_interval_ms=60_000)


def test_request_without_key_is_401_with_bearer_challenge(workspace):
    response = APIClient().get("/api/v1/campaigns")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"errors": [{"field": None, "message": response.json()["errors"][0]["message"]}]}


@pytest.mark.parametrize("header", ["Bearer dk_not-a-real-key", "Basic Zm9vOmJhcg==", "Bearer", "Token x y"])
def test_invalid_key_or_scheme_is_401(workspace, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/campaigns").status_code == 401


def test_revoked_key_is_401(api, api_key):
    assert api.get("/api/v1/campaigns").status_code == 200
    do_revoke_api_key(api_key)
    assert api.get("/api/v1/campaigns").status_code == 401


def test_last_used_is_stamped_at_most_once_a_minute(api, api_key):
    api.get("/api/v1/campaigns")
    first = ApiKey.objects.get(id=api_key.id).last_used_at
    assert first is not None
    api.get("/api/v1/campaigns")
    assert ApiKey.objects.get(id=api_key.id).last_used_at == first
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    api.get("/api/v1/campaigns")
    assert ApiKey.objects.get(id=api_key.id).last_used_at > first


def test_throttle_counts_per_key_and_answers_429_with_retry_after(api, other_api, monkeypatch):
    from django.core.cache import cache
    cache.clear()
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/min"})
    assert [api.get("/api/v1/agents").status_code for _ in range(3)] == [200, 200, 429]
    throttled = api.get("/api/v1/agents")
    assert throttled.json()["errors"][0]["field"] is None
    assert int(throttled["Retry-After"]) > 0
    assert other_api.get("/api/v1/agents").status_code == 200
    cache.clear()


def test_malformed_json_is_400_in_the_error_format(api):
    response = api.generic("POST", "/api/v1/tasks", '{"phone": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] is None


def test_unsupported_media_type_is_415(api):
    response = api.generic("POST", "/api/v1/tasks", "phone=1", content_type="text/plain")
    assert response.status_code == 415


def test_unknown_method_is_405(api):
    assert api.put("/api/v1/tasks", {}, format="json").status_code == 405
