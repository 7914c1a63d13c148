"""The Twilio provider end to end: the real SDK against a local stub, webhooks signed by the SDK."""
import datetime as dt
from email.utils import format_datetime

import pytest
import requests.utils
from django.utils import timezone
from django.test.utils import override_settings

from telephony.calls import check_call_with_carrier, place_call, status_callback_url
from telephony.models import Call, CallEvent, CallStatus
from telephony.providers.twilio import normalise
from tests.factories import AgentFactory, CallFactory, CampaignFactory, TaskFactory
from tests.fixtures.twilio.stub import ACCOUNT_SID, AUTH_TOKEN, TwilioStub, signed_post, status_params

pytestmark = pytest.mark.django_db

PUBLIC = "http://testserver.example"


@pytest.fixture
def stub():
    with TwilioStub(ACCOUNT_SID, AUTH_TOKEN) as server:
        with override_settings(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                               TWILIO_API_BASE_URL=server.base_url, PUBLIC_BASE_URL=PUBLIC,
                               AGENT_MEDIA_STREAM_URL="wss://agent.example/media"):
            yield server


def twilio_call(to=None):
    campaign = CampaignFactory(calling_number__carrier="twilio")
    task = TaskFactory(campaign=campaign, **({"phone": to} if to else {}))
    return CallFactory(task=task)


def placed_call(stub):
    call = twilio_call()
    place_call(call.id)
    call.refresh_from_db()
    return call


def webhook_path(call):
    return status_callback_url("twilio", call.id).removeprefix(PUBLIC)


def post(client, call, fixture):
    """Replay a recorded callback for this call, stamped now (as Twilio stamps a live callback)."""
    params = status_params(fixture, call.carrier_call_id)
    if "Timestamp" in params:
        params["Timestamp"] = format_datetime(timezone.now(), usegmt=True)
    return signed_post(client, webhook_path(call), params, base_url=PUBLIC)


class TestPlacing:
    def test_creates_the_call_with_status_callbacks_machine_detection_and_the_agent_stream(self, stub):
        call = placed_call(stub)
        assert (call.carrier, call.status) == ("twilio", CallStatus.DIALING)
        assert call.carrier_call_id in stub.calls
        form = stub.created()[0]["form"]
        assert form["To"] == [call.to_number] and form["From"] == [call.from_number]
        assert form["StatusCallback"] == [f"{PUBLIC}/webhooks/twilio/status/?call={call.id}"]
        assert form["StatusCallbackEvent"] == ["ringing", "answered", "completed"]
        assert (form["MachineDetection"], form["AsyncAmd"]) == (["Enable"], ["true"])
        assert form["AsyncAmdStatusCallback"] == form["StatusCallback"]
        assert "wss://agent.example/media" in form["Twiml"][0] and str(call.id) in form["Twiml"][0]

    @pytest.mark.parametrize("stream_url", ["wss://agent.example/media", 'wss://a.example/m?x=1&y="<>\'\r\n\t'])
    @pytest.mark.parametrize(("call_id", "agent_id"), [("5b2c3d4e-0000-4000-8000-000000000001", 7),
                                                      ('odd & <"id">\r\n\t', None)])
    def test_the_twiml_is_what_the_sdk_renders_for_the_stream(self, stream_url, call_id, agent_id):
        from twilio.twiml.voice_response import Connect, VoiceResponse

        from telephony.providers.base import PlaceCallRequest
        from telephony.providers.twilio import agent_twiml

        expected = VoiceResponse()
        connect = Connect()
        stream = connect.stream(url=stream_url)
        stream.parameter(name="callId", value=call_id)
        stream.parameter(name="agentId", value=str(agent_id or ""))
        stream.parameter(name="attempt", value="2")
        expected.append(connect)
        request = PlaceCallRequest(idempotency_key=call_id, to_number="+14155550100", from_number="+14155550199",
                                   agent_id=agent_id, prompt="", context={}, attempt=2, status_callback_url="",
                                   extra={"stream_url": stream_url})
        assert agent_twiml(request) == str(expected)

    def test_the_prompt_is_the_calls_agents_else_the_tasks_else_the_campaigns(self, stub):
        campaign = CampaignFactory(calling_number__carrier="twilio", agent__prompt="Campaign ${name}")
        tasks_agent = AgentFactory(workspace=campaign.workspace, prompt="Task ${name}")
        calls = [
            CallFactory(task=TaskFactory(campaign=campaign, agent=tasks_agent, context={"name": "Ada"})),
            CallFactory(task=TaskFactory(campaign=campaign, agent=tasks_agent, context={"name": "Bo"}), agent=None),
            CallFactory(task=TaskFactory(campaign=campaign, context={"name": "Cy"}), agent=None),
        ]
        for call in calls:
            place_call(call.id)
        assert [Call.objects.get(id=call.id).prompt for call in calls] == ["Campaign Ada", "Task Bo", "Campaign Cy"]

    def test_a_redelivered_dial_job_creates_no_second_twilio_call(self, stub):
        call = placed_call(stub)
        place_call(call.id)
        assert len(stub.created()) == 1

    def test_a_refused_number_ends_the_call_failed(self, stub):
        call = twilio_call(to="+15005550001")
        place_call(call.id)
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")
        assert "21217" in CallEvent.objects.get(call=call).payload["reason"]


class TestWebhooks:
    def test_progress_then_completed_without_analysis_waits_for_the_agent_in_wrap_up(self, stub, client):
        call = placed_call(stub)
        for fixture in ("status_initiated.json", "status_ringing.json", "status_in_progress.json",
                        "amd_human.json", "status_completed.json"):
            assert post(client, call, fixture).status_code == 204
        call.refresh_from_db()
        assert (call.status, call.answered_by, call.duration_seconds, call.carrier_status) == (
            CallStatus.WRAP_UP, "human", 47, "completed")
        assert call.carrier_ended_at is not None

    @pytest.mark.parametrize("fixture, outcome", [
        ("status_no_answer.json", "no-answer"), ("status_busy.json", "busy"),
        ("status_failed.json", "failed"), ("status_canceled.json", "no-answer")])
    def test_recorded_terminal_statuses_map_to_outcomes(self, stub, client, fixture, outcome):
        call = placed_call(stub)
        post(client, call, "status_ringing.json")
        assert post(client, call, fixture).status_code == 204
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, outcome)

    def test_a_machine_answering_ends_as_voicemail(self, stub, client):
        call = placed_call(stub)
        for fixture in ("status_in_progress.json", "amd_machine.json", "status_completed.json"):
            post(client, call, fixture)
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "voicemail")

    def test_a_replayed_completed_webhook_finishes_once(self, stub, client):
        call = placed_call(stub)
        for _ in range(2):
            post(client, call, "status_busy.json")
        assert list(CallEvent.objects.filter(call=call).values_list("applied", flat=True)) == [True, False]

    def test_a_forged_signature_is_refused_and_changes_nothing(self, stub, client):
        call = placed_call(stub)
        response = signed_post(client, webhook_path(call), status_params("status_busy.json", call.carrier_call_id),
                               token="not-the-token", base_url=PUBLIC)
        assert response.status_code == 403
        assert not CallEvent.objects.exists()
        assert Call.objects.get(id=call.id).status == CallStatus.DIALING

    def test_a_missing_signature_is_refused(self, stub, client):
        call = placed_call(stub)
        response = client.post(webhook_path(call), status_params("status_busy.json", call.carrier_call_id))
        assert response.status_code == 403 and not CallEvent.objects.exists()

    def test_a_signed_request_replayed_against_another_call_is_refused(self, stub, client):
        call, other = placed_call(stub), placed_call(stub)
        params = status_params("status_busy.json", call.carrier_call_id)
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + webhook_path(call), params)
        response = client.post(webhook_path(other), params, HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 403

    def test_a_request_signed_with_the_default_port_in_its_url_is_accepted(self, stub, client):
        call = placed_call(stub)
        params = status_params("status_busy.json", call.carrier_call_id)
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC.replace(".example", ".example:80") + webhook_path(call), params)
        response = client.post(webhook_path(call), params, HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 204
        assert Call.objects.get(id=call.id).status == CallStatus.ENDED


    def test_a_callback_with_non_ascii_values_is_verified_and_stored_as_sent(self, stub, client):
        call = placed_call(stub)
        params = {**status_params("status_busy.json", call.carrier_call_id), "CallerName": "José Ñúñez 東京"}
        assert post_params(client, call, params).status_code == 204
        event = CallEvent.objects.get(call=call)
        assert event.applied and event.payload["CallerName"] == "José Ñúñez 東京"

    def test_a_callback_with_more_fields_than_allowed_is_a_400_and_stores_nothing(self, stub, client, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
        call = placed_call(stub)
        params = {**status_params("status_busy.json", call.carrier_call_id), **{f"Extra{n}": "x" for n in range(20)}}
        assert post_params(client, call, params).status_code == 400
        assert not CallEvent.objects.exists() and Call.objects.get(id=call.id).status == CallStatus.DIALING

    def test_a_multipart_callback_is_read_as_django_reads_it(self, stub, client):
        call = placed_call(stub)
        params = status_params("status_busy.json", call.carrier_call_id)
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + webhook_path(call), params)
        assert client.post(webhook_path(call), params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 204
        assert Call.objects.get(id=call.id).status == CallStatus.ENDED

    def test_a_body_that_is_not_a_form_is_refused(self, stub, client):
        call = placed_call(stub)
        params = status_params("status_busy.json", call.carrier_call_id)
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + webhook_path(call), params)
        response = client.post(webhook_path(call), params, content_type="application/json",
                               HTTP_X_TWILIO_SIGNATURE=signature)
        assert response.status_code == 403 and not CallEvent.objects.exists()


def post_params(client, call, params):
    return signed_post(client, webhook_path(call), params, base_url=PUBLIC)


class TestStatusChecks:
    def test_a_call_twilio_reports_completed_is_finished(self, stub):
        call = placed_call(stub)
        stub.set_status(call.carrier_call_id, "busy", duration="0", end_time="Thu, 26 Nov 2026 23:20:42 +0000")
        assert check_call_with_carrier(call.id) is False
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "busy")

    def test_a_call_twilio_reports_in_progress_is_live(self, stub):
        call = placed_call(stub)
        stub.set_status(call.carrier_call_id, "in-progress")
        assert check_call_with_carrier(call.id) is True
        assert Call.objects.get(id=call.id).status == CallStatus.ANSWERED

    def test_a_call_twilio_never_heard_of_is_ended_failed(self, stub):
        call = placed_call(stub)
        stub.calls.clear()
        assert check_call_with_carrier(call.id) is False
        assert Call.objects.get(id=call.id).outcome == "failed"

    @override_settings(MAX_CALL_SECONDS=60)
    def test_a_call_live_too_long_is_hung_up_at_twilio(self, stub):
        call = placed_call(stub)
        stub.set_status(call.carrier_call_id, "in-progress")
        later = call.placed_at + dt.timedelta(seconds=61)
        assert check_call_with_carrier(call.id, now=later) is False
        assert stub.calls[call.carrier_call_id]["status"] == "completed"
        assert Call.objects.get(id=call.id).outcome == "failed"


class TestNormalisation:
    @pytest.mark.parametrize("status, kind", [
        ("queued", "initiated"), ("initiated", "initiated"), ("ringing", "ringing"), ("in-progress", "answered"),
        ("completed", "completed"), ("busy", "completed"), ("no-answer", "completed"), ("failed", "completed"),
        ("canceled", "completed")])
    def test_every_call_status_normalises(self, status, kind):
        assert normalise({"CallSid": "CA1", "CallStatus": status}).kind == kind

    def test_a_callback_without_status_or_amd_result_is_ignored(self):
        assert normalise({"CallSid": "CA1"}) is None

    def test_price_and_duration_are_read(self):
        event = normalise({"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "12", "Price": "-0.013"})
        assert (event.duration_seconds, event.cost, event.carrier_status) == (12, "-0.013", "completed")


class TestHttpClient:
    def test_the_proxy_for_the_api_host_is_taken_from_the_environment_when_made(self, monkeypatch, settings):
        from telephony.providers.twilio import HttpClient

        settings.TWILIO_API_BASE_URL = ""
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = HttpClient()
        assert client.proxy["https"] == "http://proxy.example:3128"
        assert str(client.pool.proxy) == "http://proxy.example:3128"
        monkeypatch.setenv("NO_PROXY", "api.twilio.com")
        client = HttpClient()
        assert client.proxy == {}
        assert client.pool.proxy is None

    def test_a_proxys_credentials_are_sent_to_the_proxy(self, monkeypatch, settings):
        from telephony.providers.twilio import HttpClient

        settings.TWILIO_API_BASE_URL = ""
        monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert HttpClient().pool.proxy_headers["Proxy-Authorization"] == "Basic dXNlcjpzZWNyZXQ="

    def test_a_ca_bundle_named_in_the_environment_is_verified_against(self, monkeypatch):
        from telephony.providers.twilio import HttpClient

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
        assert HttpClient().pool.connection_pool_kw["ca_certs"] == "/etc/ssl/corporate.pem"
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        tls = HttpClient().pool.connection_pool_kw
        assert (tls["cert_reqs"], tls["ca_certs"]) == ("CERT_REQUIRED", requests.utils.DEFAULT_CA_BUNDLE_PATH)
