"""Security: tenant isolation on every API endpoint and admin page, key storage, webhook signatures,
CSV export neutralisation, bounded uploads, per-key throttling, admin login with CSRF, no secrets in
logs, and a fuzz of the CSV parser."""
import io
import logging
import re

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, reverse
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from rest_framework.test import APIClient

from campaigns import api_keys
from campaigns.api import urls as api_urls
from campaigns.api.auth import ApiKeyRateThrottle
from campaigns.actions.csv_import import ImportRefused, do_import_contacts, error_report_csv
from campaigns.models import ApiKey, Campaign, ContactImport, DoNotCall, Task
from campaigns.actions.tenancy import do_create_api_key
from tests.factories import (
    ApiKeyFactory, CallEventFactory, CallFactory, CampaignFactory, ContactImportFactory, DoNotCallFactory,
    OrganisationMemberFactory, TaskFactory, WebhookDeliveryFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

PUBLIC_API_ROUTES = {"api-schema", "api-docs", "api-docs-asset"}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(autouse=True)
def fresh_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def victim():
    """Organisation A's world: every kind of object an API route or admin page can show."""
    workspace = WorkspaceFactory()
    campaign = CampaignFactory(workspace=workspace, type="realtime", name="Victim campaign")
    task = TaskFactory(campaign=campaign, phone="+442079460001")
    call = CallFactory(task=task)
    dnc = DoNotCallFactory(organisation=workspace.organisation, phone="+442079460002")
    return {"workspace": workspace, "campaign": campaign, "task": task, "call": call, "dnc": dnc,
            "agent": campaign.agent, "number": campaign.calling_number}


def attacker_client():
    """A client holding organisation B's key."""
    key = ApiKeyFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    return client


def api_routes():
    return [p for p in api_urls.urlpatterns if isinstance(p, URLPattern) and p.name not in PUBLIC_API_ROUTES]


def fill(route, victim):
    values = {"campaign_id": victim["campaign"].id, "task_id": victim["task"].id, "call_id": victim["call"].id,
              "number": victim["dnc"].phone}
    return "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), "anything")), str(route.pattern))


def test_every_api_endpoint_with_another_tenants_key_reaches_nothing(victim):
    api = attacker_client()
    secrets = [victim["campaign"].name, victim["task"].phone, victim["dnc"].phone, victim["agent"].name,
               victim["number"].number, str(victim["call"].id)]
    body = {"campaign": str(victim["campaign"].id), "phone": "+442079460003", "agent": str(victim["agent"].id),
            "from": victim["number"].number, "name": "taken over", "number": victim["dnc"].phone}
    walked = 0
    for route in api_routes():
        path = fill(route, victim)
        for method in METHODS:
            response = getattr(api, method)(path, body, format="json")
            walked += 1
            assert response.status_code < 500, (method, path, response.status_code)
            if "<" in str(route.pattern):
                assert response.status_code in (404, 405), (method, path, response.status_code)
            else:
                assert response.status_code not in (200, 201) or not any(
                    s in response.content.decode() for s in secrets), (method, path)
                assert response.status_code != 201 or method != "post" or path.endswith("dnc"), (method, path)
    assert walked == len(api_routes()) * len(METHODS) >= 5 * 20
    campaign = Campaign.objects.get(id=victim["campaign"].id)
    assert (campaign.status, campaign.name) == ("scheduled", "Victim campaign")
    assert Task.objects.filter(campaign=campaign).count() == 1
    assert Task.objects.get(id=victim["task"].id).status == "queued"
    assert DoNotCall.objects.filter(id=victim["dnc"].id).exists()


def admin_objects(victim):
    member = OrganisationMemberFactory(organisation=victim["workspace"].organisation)
    return [victim["workspace"].organisation, victim["workspace"], victim["agent"], victim["number"],
            victim["campaign"], victim["task"], victim["call"], victim["dnc"], member,
            ApiKeyFactory(workspace=victim["workspace"]), ContactImportFactory(campaign=victim["campaign"]),
            CallEventFactory(call=victim["call"]), WebhookDeliveryFactory(workspace=victim["workspace"])]


def test_every_admin_page_with_another_organisations_staff_login_shows_none_of_its_rows(victim):
    objects = admin_objects(victim)
    intruder = OrganisationMemberFactory().user
    browser = Client()
    browser.force_login(intruder)
    scoped = {obj._meta.model for obj in objects}
    for model in scoped:
        assert model in admin.site._registry, model
        changelist = browser.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        assert changelist.status_code in (200, 403), model
        if changelist.status_code == 200:
            assert changelist.context["cl"].result_count == 0, model
    for obj in objects:
        opts = obj._meta
        change = browser.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code in (302, 403, 404), (opts.model_name, change.status_code)
    upload = browser.get(reverse("admin:campaigns_campaign_changelist") + f"{victim['campaign'].id}/contacts/")
    assert upload.status_code in (302, 403, 404)


def test_admin_requires_a_login_and_a_csrf_token():
    assert Client().get("/admin/").status_code == 302
    user = OrganisationMemberFactory().user
    strict = Client(enforce_csrf_checks=True)
    refused = strict.post("/admin/login/", {"username": user.username, "password": "pass-word-123"})
    assert refused.status_code == 403
    strict.get("/admin/login/")
    token = strict.cookies["csrftoken"].value
    accepted = strict.post("/admin/login/?next=/admin/", {"username": user.username, "password": "pass-word-123",
                                                         "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/"


def test_api_keys_are_stored_hashed_and_never_in_clear():
    api_key, raw = do_create_api_key(WorkspaceFactory(), name="ci")
    stored = ApiKey.objects.filter(id=api_key.id).values().get()
    assert stored["key_hash"] == api_keys.hash_key(raw) and len(stored["key_hash"]) == 64
    assert not any(raw in str(value) for value in stored.values())


def test_api_keys_are_compared_in_constant_time(monkeypatch):
    key = ApiKeyFactory()
    compared = []
    real = api_keys.hmac.compare_digest
    monkeypatch.setattr(api_keys.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    assert client.get("/api/v1/campaigns").status_code == 200
    assert compared and compared[-1][1] == key.key_hash


def test_carrier_and_agent_webhooks_without_a_valid_signature_are_refused(victim):
    call = victim["call"]
    twilio = Client().post("/webhooks/twilio/status/", {"CallSid": "CA1", "CallStatus": "completed"})
    assert twilio.status_code == 403
    forged = Client().post("/webhooks/twilio/status/", {"CallSid": "CA1", "CallStatus": "completed"},
                           HTTP_X_TWILIO_SIGNATURE="bm90LWEtc2lnbmF0dXJl")
    assert forged.status_code == 403
    body = {"callId": str(call.id), "outcome": "connected"}
    anonymous = Client().post("/webhooks/agent/analysis/", body, content_type="application/json")
    assert anonymous.status_code == 401
    bad = Client().post("/webhooks/agent/analysis/", body, content_type="application/json",
                        HTTP_X_DIALER_SIGNATURE="v1=deadbeef", HTTP_X_DIALER_TIMESTAMP="1")
    assert bad.status_code == 403
    assert Client().get(f"/webhooks/agent/calls/{call.id}/").status_code == 401
    call.refresh_from_db()
    assert call.status == "admitted" and call.analysis == {}


def test_csv_error_reports_neutralise_spreadsheet_formulas():
    report = ContactImportFactory(errors=[
        {"row": 2, "column": "=HYPERLINK(\"http://x\")", "reason": "+1+1"},
        {"row": 3, "column": "@SUM(A1)", "reason": "-2"},
        {"row": None, "column": "\tname", "reason": "plain"},
    ])
    cells = [cell for line in error_report_csv(report).splitlines()[1:] for cell in line.split(",")]
    for cell in cells:
        assert cell.lstrip('"')[:1] not in ("=", "+", "-", "@", "\t"), cell


@pytest.fixture
def batch_campaign():
    return CampaignFactory(agent__prompt="Hello ${name}.")


def test_uploads_are_bounded_in_bytes_before_the_file_is_read_whole(batch_campaign, settings):
    settings.CSV_MAX_BYTES = 1000

    class CountingFile:
        """A binary upload that counts the bytes the importer takes from it."""

        def __init__(self, data):
            self.inner, self.taken = io.BytesIO(data), 0

        def readline(self, limit=-1):
            line = self.inner.readline(limit)
            self.taken += len(line)
            return line

    huge = CountingFile(b"phone,name\n" + b"+442079460100,Ada\n" * 100_000)
    one_line = CountingFile(b"phone" + b"x" * 10_000_000)
    result = do_import_contacts(batch_campaign, huge, "huge.csv")
    assert result.rows_imported == 0 and "larger than the limit" in result.errors[0]["reason"]
    assert huge.taken < 2000
    result = do_import_contacts(batch_campaign, one_line, "one-line.csv")
    assert "larger than the limit" in result.errors[0]["reason"] and one_line.taken <= 1001
    assert not Task.objects.filter(campaign=batch_campaign).exists()


def test_uploads_are_bounded_in_rows(batch_campaign, settings):
    settings.CSV_MAX_ROWS = 3
    rows = "".join(f"+4420794601{n:02d},Ada\n" for n in range(10))
    result = do_import_contacts(batch_campaign, io.BytesIO(f"phone,name\n{rows}".encode()), "rows.csv")
    assert result.rows_imported == 0 and "more than 3 contacts" in " ".join(e["reason"] for e in result.errors)


def test_requests_are_throttled_per_key(monkeypatch):
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    first, second = attacker_client(), attacker_client()
    assert [first.get("/api/v1/campaigns").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert second.get("/api/v1/campaigns").status_code == 200


def test_no_api_key_reaches_the_logs(caplog, victim):
    key = ApiKeyFactory(workspace=victim["workspace"])
    with caplog.at_level(logging.DEBUG):
        ok = APIClient()
        ok.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
        ok.get("/api/v1/campaigns")
        bad = APIClient()
        bad.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}x")
        assert bad.get("/api/v1/campaigns").status_code == 401
        Client().post("/webhooks/agent/analysis/", {"callId": str(victim["call"].id)},
                      content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert key.raw_key not in logged and key.raw_key[3:] not in logged


CSV_TEXT = st.lists(st.lists(st.one_of(
    st.sampled_from(["phone", "name", "timezone", "+442079460123", "+1 415 555 0100", "=cmd", '"', "\ufeff", ""]),
    st.text(max_size=12)), max_size=4), max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows))


@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=600), CSV_TEXT.map(lambda text: text.encode("utf-8"))))
def test_the_csv_parser_survives_arbitrary_bytes(batch_campaign, data):
    try:
        result = do_import_contacts(batch_campaign, io.BytesIO(data), "fuzz.csv", skip_invalid=True)
    except ImportRefused:
        return
    assert isinstance(result, ContactImport)
    assert result.rows_imported <= result.rows_total
