"""The OpenAPI schema and docs, and a bounded schemathesis run (every check, the stateful phase
included) against a live server that must find nothing."""
import json
import socket
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from campaigns.actions.realtime import MAX_EPOCH_MS
from tests.factories import (
    AgentFactory, ApiKeyFactory, CallingNumberFactory, CampaignFactory, OrganisationFactory, TaskFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent

ENDPOINTS = {
    "/api/v1/campaigns": {"get", "post"}, "/api/v1/campaigns/{campaign_id}": {"get", "patch"},
    "/api/v1/campaigns/{campaign_id}/pause": {"post"}, "/api/v1/campaigns/{campaign_id}/resume": {"post"},
    "/api/v1/campaigns/{campaign_id}/archive": {"post"}, "/api/v1/campaigns/{campaign_id}/contacts": {"post"},
    "/api/v1/campaigns/{campaign_id}/tasks": {"get"}, "/api/v1/campaigns/{campaign_id}/history": {"get"},
    "/api/v1/workspace": {"get", "patch"},
    "/api/v1/workspace/compliance": {"get", "patch"}, "/api/v1/tasks": {"post"}, "/api/v1/tasks/{task_id}": {"get"},
    "/api/v1/tasks/{task_id}/pause": {"post"}, "/api/v1/tasks/{task_id}/resume": {"post"},
    "/api/v1/tasks/{task_id}/archive": {"post"}, "/api/v1/calls/{call_id}": {"get"},
    "/api/v1/agents": {"get", "post"}, "/api/v1/numbers": {"get", "post"}, "/api/v1/slots": {"get"},
    "/api/v1/integrations": {"get"}, "/api/v1/integrations/{platform}": {"put", "delete"},
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


def test_each_create_links_its_id_to_the_operations_that_take_it():
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    operations = {op["operationId"]: (path, op) for path, ops in schema["paths"].items() for op in ops.values()
                  if isinstance(op, dict) and "operationId" in op}
    for creator in ("campaigns_create", "tasks_create", "dnc_add"):
        links = operations[creator][1]["responses"]["201"]["links"]
        assert links, creator
        for target, link in links.items():
            path, _ = operations[link["operationId"]]
            (parameter,) = link["parameters"]
            assert f"{{{parameter}}}" in path, (creator, target)
    taking_campaign_id = {op_id for op_id, (path, _) in operations.items() if "{campaign_id}" in path}
    assert set(operations["campaigns_create"][1]["responses"]["201"]["links"]) == taking_campaign_id


def test_the_schema_states_the_limits_the_server_enforces():
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    limit = next(p for p in schema["paths"]["/api/v1/agents"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 500)
    campaign = schema["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = campaign["properties"]
    assert fields["name"]["minLength"] == 1 and fields["callingDays"]["minItems"] == 1
    assert fields["timezone"] == {"$ref": "#/components/schemas/Timezone"}
    assert "Asia/Kolkata" in schema["components"]["schemas"]["Timezone"]["enum"]
    agent = schema["paths"]["/api/v1/agents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert agent["properties"]["outcomes"]["items"]["pattern"]


SEED = 20  # fixed, so CI judges the same requests every run
MAX_EXAMPLES = 5  # per operation in the fuzzing phase: the whole run stays under a minute
# The coverage phase enumerates every value a field allows at its boundaries: for these bodies,
# every IANA zone name and each hour's range of the HHMM fields, thousands of requests and
# minutes of run. The fuzzing and stateful phases still send them; every other operation runs
# the coverage phase too.
NO_COVERAGE_PHASE = ("campaigns_create", "campaigns_update", "tasks_create")


@pytest.fixture
def no_name_resolution(monkeypatch):
    """Generated webhook URLs must not send DNS queries past loopback: names do not resolve
    (the live server runs in this process, so it sees the same resolver)."""
    real = socket.getaddrinfo

    def numeric_only(host, *args, **kwargs):
        return real(host, *args, **{**kwargs, "flags": kwargs.get("flags", 0) | socket.AI_NUMERICHOST})

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


def toml_table(values):
    """An inline TOML table; strings, integers and lists of them are spelled as in JSON."""
    return "{ " + ", ".join(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items()) + " }"


def pinned_parameters(agent, number, realtime, cursor):
    """Per operation id, realistic values for the fields the schema cannot fully describe, so most
    requests get past validation to the API's logic. Where a phase does not use them (examples,
    coverage), `tests/schemathesis_hooks.py` excludes exactly those rules, by field, from the findings.
    """
    def both(values):
        return {**{f"body.{k}": v for k, v in values.items()}, **{f"body.[*].{k}": v for k, v in values.items()}}

    campaign_settings = {"body.agent": str(agent.id), "body.from": number.number, "body.retryOutcomes": ["voicemail"],
                         "body.slots": 1, "body.startAt": "2025-01-01T00:00:00Z", "body.endAt": "9999-12-31T00:00:00Z"}
    return {
        "campaigns_create": campaign_settings,
        "campaigns_update": campaign_settings,
        "numbers_create": {"body.number": "+14155550123"},
        "tasks_create": both({"phone": "+14155550124", "campaign": str(realtime.id), "from": number.number,
                              "agent": str(agent.id), "retryOutcomes": ["voicemail"], "startAfter": 0,
                              "endAfter": MAX_EPOCH_MS, "retries": 2, "intervals": [60000],
                              "priorities": [100, 50]}),
        "dnc_add": both({"phone": "+14155550125"}),
        "dnc_list": {"query.phone": "+14155550125", "query.cursor": cursor},
        "campaigns_contacts_upload": {"body.file": "phone,name\n+14155550126,Ada\n"},
        **{op: {"query.cursor": cursor} for op in ("agents_list", "numbers_list", "campaigns_list",
                                                     "campaigns_tasks_list")},
    }


def schemathesis_config(parameters):
    blocks = []
    for operation_id, values in parameters.items():
        block = (f"[[operations]]\ninclude-operation-id = {json.dumps(operation_id)}\n"
                 f"parameters = {toml_table(values)}\n")
        if operation_id in NO_COVERAGE_PHASE:
            block += "phases.coverage.enabled = false\n"
        blocks.append(block)
    return "\n".join(blocks)


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_nothing_with_every_check_and_the_stateful_phase(live_server, tmp_path, no_name_resolution):
    """Every schemathesis check, in the examples, coverage, fuzzing and stateful phases, against the
    live test server: any finding fails, but for the rules tests/schemathesis_hooks.py names."""
    workspace = WorkspaceFactory(organisation=OrganisationFactory(total_slots=50), slots=10)
    agent = AgentFactory(workspace=workspace, prompt="Hi ${name}", outcomes=["interested"])
    number = CallingNumberFactory(workspace=workspace, number="+14155550100")
    realtime = CampaignFactory(workspace=workspace, type="realtime", agent=agent, calling_number=number)
    TaskFactory(campaign=realtime)
    AgentFactory(workspace=workspace)
    key = ApiKeyFactory(workspace=workspace).raw_key
    cursor = APIClient().get("/api/v1/agents?limit=1", HTTP_AUTHORIZATION=f"Bearer {key}").json()["nextCursor"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(pinned_parameters(agent, number, realtime, cursor)))
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "--no-color",
        "run", f"{live_server.url}/api/v1/schema/?format=json", "--url", live_server.url,
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--header", f"Authorization: Bearer {key}", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--suppress-health-check", "all", "--generation-database", "none",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
