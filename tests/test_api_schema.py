"""The OpenAPI schema and docs, and a bounded schemathesis run that must find no server error."""
import socket

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.test import APIClient

from tests.factories import ApiKeyFactory, CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/api/v1/campaigns": {"get", "post"}, "/api/v1/campaigns/{campaign_id}": {"get", "patch"},
    "/api/v1/campaigns/{campaign_id}/pause": {"post"}, "/api/v1/campaigns/{campaign_id}/resume": {"post"},
    "/api/v1/campaigns/{campaign_id}/archive": {"post"}, "/api/v1/campaigns/{campaign_id}/contacts": {"post"},
    "/api/v1/campaigns/{campaign_id}/tasks": {"get"}, "/api/v1/campaigns/{campaign_id}/history": {"get"},
    "/api/v1/workspace": {"get", "patch"}, "/api/v1/tasks": {"post"}, "/api/v1/tasks/{task_id}": {"get"},
    "/api/v1/tasks/{task_id}/pause": {"post"}, "/api/v1/tasks/{task_id}/resume": {"post"},
    "/api/v1/tasks/{task_id}/archive": {"post"}, "/api/v1/calls/{call_id}": {"get"},
    "/api/v1/agents": {"get", "post"}, "/api/v1/numbers": {"get", "post"}, "/api/v1/slots": {"get"},
    "/api/v1/dnc": {"get", "post"}, "/api/v1/dnc/{number}": {"delete"},
}


def test_schema_documents_every_endpoint_with_auth_and_errors():
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    paths = {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items() if path.startswith("/api/v1/")}
    assert paths == ENDPOINTS
    for path, methods in ENDPOINTS.items():
        for method in methods:
            operation = schema["paths"][path][method]
            assert "401" in operation["responses"], (method, path)
            assert operation["security"] == [{"apiKey": []}], (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_docs_page_loads_swagger_ui_from_this_server_only():
    client = APIClient()
    page = client.get("/api/v1/docs/").content.decode()
    assert "https://" not in page and "/api/v1/schema/" in page
    asset = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and asset["Content-Type"] == "text/javascript"
    assert client.get("/api/v1/docs/assets/..%2Fsettings.py").status_code == 404


schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: the WSGI handler must not close the test's database connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def no_name_resolution(monkeypatch):
    """Generated webhook URLs must not send DNS queries past loopback: names do not resolve."""
    real = socket.getaddrinfo

    def numeric_only(host, *args, **kwargs):
        return real(host, *args, **{**kwargs, "flags": kwargs.get("flags", 0) | socket.AI_NUMERICHOST})

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


@pytest.fixture
def auth_header(keep_test_connection, no_name_resolution):
    workspace = WorkspaceFactory(organisation=OrganisationFactory(), slots=10)
    TaskFactory(campaign=CampaignFactory(workspace=workspace, type="realtime"))
    return {"Authorization": f"Bearer {ApiKeyFactory(workspace=workspace).raw_key}"}


@schema.parametrize()
@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, auth_header):
    response = case.call(headers=auth_header)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
