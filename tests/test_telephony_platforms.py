"""Agents on Vapi, Retell and ElevenLabs end to end: a realtime task is admitted by the dispatcher,
placed through the platform's official SDK against its local stand-in, and finished by the
platform's recorded webhooks, signed as the platform signs them; forged and stale signatures are
refused; the platform's concurrency limit is no attempt; a simulated integration needs no account.
"""
import datetime as dt
import time

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from campaigns.actions.realtime import do_create_tasks
from campaigns.models import CampaignStatus, CampaignType, TaskStatus
from dialer import dispatcher, slots
from dialer.maintenance import place_admitted_calls
from telephony import simulator
from telephony.calls import check_call_with_carrier, status_callback_url
from telephony.models import Call, CallEvent, CallStatus
from tests.factories import AgentFactory, CallFactory, CampaignFactory, IntegrationFactory, TaskFactory
from tests.fixtures import elevenlabs, retell, vapi
from tests.fixtures.elevenlabs.stub import ElevenLabsStub
from tests.fixtures.platform_stub import load
from tests.fixtures.retell.stub import RetellStub
from tests.fixtures.twilio.stub import ACCOUNT_SID, AUTH_TOKEN, TwilioStub
from tests.fixtures.vapi.stub import VapiStub

pytestmark = pytest.mark.django_db

PUBLIC = "http://testserver.example"


class Platform:
    def __init__(self, name, stub_class, module, runtime, secret, answered, busy, concurrency=None, unknown=None):
        self.name, self.stub_class, self.module, self.runtime, self.secret = name, stub_class, module, runtime, secret
        self.answered, self.busy, self.concurrency, self.unknown = answered, busy, concurrency, unknown

    def __repr__(self):
        return self.name


PLATFORMS = [
    Platform("vapi", VapiStub, vapi.stub,
             {"kind": "vapi", "assistantId": "5f1a6a1c-asst", "phoneNumberId": "b2d5c0de-pn"}, vapi.stub.WEBHOOK_SECRET,
             answered=[("status_update.json", {"status": "ringing"}), ("status_update.json", {"status": "in-progress"}),
                       ("end_of_call_report.json", {})],
             busy=[("end_of_call_report.json", {"endedReason": "customer-busy"})],
             concurrency=("end_of_call_report.json",
                          {"endedReason": "call.start.error-subscription-concurrency-limit-reached"}),
             unknown=("end_of_call_report.json", {"endedReason": "call.start.error-brand-new-reason"})),
    Platform("retell", RetellStub, retell.stub, {"kind": "retell", "agentId": "agent_4f1c2a9b7d"}, retell.stub.API_KEY,
             answered=[("call_started.json", {}), ("call_ended.json", {}), ("call_analyzed.json", {})],
             busy=[("call_ended.json", {"disconnection_reason": "dial_busy"})],
             concurrency=("call_ended.json", {"disconnection_reason": "concurrency_limit_reached"}),
             unknown=("call_ended.json", {"disconnection_reason": "brand_new_reason"})),
    Platform("elevenlabs", ElevenLabsStub, elevenlabs.stub,
             {"kind": "elevenlabs", "agentId": "agent_8f3b1c0d2e", "phoneNumberId": "phnum_0a1b2c3d"},
             elevenlabs.stub.WEBHOOK_SECRET,
             answered=[("post_call_transcription.json", {})],
             busy=[("call_initiation_failure.json", {"failure_reason": "busy"})],
             unknown=("call_initiation_failure.json", {"failure_reason": "carrier-exploded"})),
]


@pytest.fixture(params=PLATFORMS, ids=repr)
def platform(request):
    with request.param.stub_class(request.param.module.API_KEY) as stub:
        with override_settings(PUBLIC_BASE_URL=PUBLIC, OUTBOUND_ALLOW_PRIVATE=True, CARRIER_TIMEOUT_SECONDS=2,
                               ANALYSIS_WAIT_SECONDS=300):
            request.param.stub = stub
            yield request.param


@pytest.fixture
def flow(django_capture_on_commit_callbacks):
    """Dispatcher passes and dial jobs with their commit hooks."""
    class Flow:
        def admit(self, organisation_id):
            with django_capture_on_commit_callbacks(execute=True):
                return dispatcher._dispatch_pass(organisation_id, timezone.now())

        def dial(self):
            call_ids = [str(i) for i in Call.objects.filter(status=CallStatus.ADMITTED, placed_at__isnull=True)
                        .values_list("id", flat=True)]
            with django_capture_on_commit_callbacks(execute=True):
                place_admitted_calls(call_ids)

        def post(self, client, platform, call, name, fields, secret=None, **signing):
            body = platform.module.webhook(name, call, **fields)
            path = status_callback_url(platform.name, call.id).removeprefix(PUBLIC)
            with django_capture_on_commit_callbacks(execute=True):
                return platform.module.signed_post(client, path, body, secret or platform.secret, **signing)
    return Flow()


def realtime_task(platform, simulate=False, context=None, **body):
    campaign = CampaignFactory(type=CampaignType.REALTIME, status=CampaignStatus.RUNNING, slots=5,
                               workspace__slots=10, max_retries=2, retry_interval_ms=60_000)
    IntegrationFactory(workspace=campaign.workspace, platform=platform.name, api_key=platform.module.API_KEY,
                       webhook_secret=platform.secret, base_url=platform.stub.base_url, simulate=simulate)
    campaign.agent.runtime = platform.runtime
    campaign.agent.outcomes = ["interested"]
    campaign.agent.save(update_fields=["runtime", "outcomes"])
    task, = do_create_tasks(campaign.workspace, [{
        "campaign": str(campaign.id), "phone": "+14155550123", "context": context or {"name": "Asha", "plan": 3},
        **body}])
    return task


def placed(platform, flow, **kwargs):
    task = realtime_task(platform, **kwargs)
    assert flow.admit(task.campaign.workspace.organisation_id).admitted == 1
    flow.dial()
    return task, Call.objects.get(task=task)


def used_slots(task):
    return slots.usage(task.campaign.workspace.organisation_id)["organisation"]["used"]


def test_the_call_is_placed_with_the_context_as_dynamic_variables_and_our_call_id(platform, flow):
    task, call = placed(platform, flow)
    assert (call.carrier, call.status) == (platform.name, CallStatus.DIALING)
    request = platform.stub.created()[0]["body"]
    if platform.name == "vapi":
        overrides = request["assistantOverrides"]
        assert (request["assistantId"], request["phoneNumberId"]) == ("5f1a6a1c-asst", "b2d5c0de-pn")
        assert overrides["variableValues"] == {"name": "Asha", "plan": "3"}
        assert overrides["metadata"] == {"callId": str(call.id), "attempt": 1}
        assert overrides["server"]["url"] == f"{PUBLIC}/webhooks/vapi/status/?call={call.id}"
    elif platform.name == "retell":
        assert (request["from_number"], request["override_agent_id"]) == (call.from_number, "agent_4f1c2a9b7d")
        assert request["retell_llm_dynamic_variables"] == {"name": "Asha", "plan": "3"}
        assert request["metadata"] == {"callId": str(call.id), "attempt": 1}
    else:
        assert (request["agent_id"], request["agent_phone_number_id"]) == ("agent_8f3b1c0d2e", "phnum_0a1b2c3d")
        assert request["conversation_initiation_client_data"]["dynamic_variables"] == {
            "name": "Asha", "plan": "3", "dialer_call_id": str(call.id), "dialer_attempt": "1"}
    assert used_slots(task) == 1


def test_an_answered_call_ends_with_the_platforms_report_as_its_analysis(platform, flow, client):
    task, call = placed(platform, flow)
    for name, fields in platform.answered:
        assert flow.post(client, platform, call, name, fields).status_code == 204
    call.refresh_from_db()
    task.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "callback")
    assert call.callback_at == dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
    assert "Call me back tomorrow at ten." in call.transcript
    assert call.analysis["summary"] == "The customer asked to be called back tomorrow at ten."
    assert call.analysis["fields"]["plan" if platform.name != "elevenlabs" else "outcome"]
    assert call.cost is not None and call.duration_seconds is not None
    if platform.name != "elevenlabs":
        assert call.recording_url.startswith("https://")
    assert (task.status, task.callback_at) == (TaskStatus.QUEUED, call.callback_at)
    assert used_slots(task) == 0


def test_a_busy_callee_is_an_attempt_retried_later_and_its_slot_released(platform, flow, client):
    task, call = placed(platform, flow)
    for name, fields in platform.busy:
        assert flow.post(client, platform, call, name, fields).status_code == 204
    call.refresh_from_db()
    task.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "busy")
    assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 1)
    assert task.next_attempt_at > timezone.now() + dt.timedelta(seconds=50)
    assert used_slots(task) == 0


def test_an_unknown_end_reason_is_failed_and_kept_verbatim(platform, flow, client):
    task, call = placed(platform, flow)
    name, fields = platform.unknown
    assert flow.post(client, platform, call, name, fields).status_code == 204
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")
    assert call.analysis["platformReason"] == next(iter(fields.values()))


def test_the_platforms_concurrency_limit_is_not_an_attempt(platform, flow, client):
    if platform.concurrency is None:  # ElevenLabs refuses at once with a 429
        platform.stub.refusal = (429, platform.stub.load("outbound_call_rate_limited.json"), {"Retry-After": "3"})
        task = realtime_task(platform)
        flow.admit(task.campaign.workspace.organisation_id)
        flow.dial()
    else:
        task, call = placed(platform, flow)
        name, fields = platform.concurrency
        assert flow.post(client, platform, call, name, fields).status_code == 204
    task.refresh_from_db()
    assert not Call.objects.filter(task=task).exists()
    assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0)
    assert task.next_attempt_at <= timezone.now() + dt.timedelta(seconds=61)
    assert used_slots(task) == 0


@pytest.mark.parametrize("forgery", ["wrong secret", "stale", "unsigned"])
def test_a_forged_or_stale_webhook_is_refused_and_nothing_is_stored(platform, flow, client, forgery):
    task, call = placed(platform, flow)
    name, fields = platform.busy[0]
    if forgery == "wrong secret":
        response = flow.post(client, platform, call, name, fields, secret="not-the-secret")
    elif forgery == "stale":
        stale = int(time.time()) - 3600
        response = flow.post(client, platform, call, name, fields,
                             timestamp=stale * 1000 if platform.name != "elevenlabs" else stale)
    else:
        response = client.post(status_callback_url(platform.name, call.id).removeprefix(PUBLIC),
                               platform.module.webhook(name, call, **fields), content_type="application/json")
    assert response.status_code == 403
    call.refresh_from_db()
    assert call.status == CallStatus.DIALING and not CallEvent.objects.filter(call=call).exists()
    assert used_slots(task) == 1


def test_a_webhook_signed_with_another_workspaces_secret_is_refused(platform, flow, client):
    task, call = placed(platform, flow)
    realtime_task(platform)  # another workspace, whose secret signs the webhook below
    ours = IntegrationFactory.build(api_key="ours-only", webhook_secret="ours-only")
    task.campaign.workspace.integrations.update(api_key_encrypted=ours.api_key_encrypted,
                                                webhook_secret_encrypted=ours.webhook_secret_encrypted)
    name, fields = platform.busy[0]
    assert flow.post(client, platform, call, name, fields).status_code == 403
    assert Call.objects.get(id=call.id).status == CallStatus.DIALING


def test_the_reaper_asks_the_platform_with_the_calls_own_workspace_credentials(
        platform, flow, django_capture_on_commit_callbacks):
    task, call = placed(platform, flow)
    assert check_call_with_carrier(call.id) is True
    platform.stub.calls.clear()  # the platform no longer knows the call: ended failed, lease released
    with django_capture_on_commit_callbacks(execute=True):
        assert check_call_with_carrier(call.id) is False
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")
    assert used_slots(task) == 0


def test_a_simulated_integration_places_on_the_simulated_carrier(platform, flow, redis_client):
    task, call = placed(platform, flow, simulate=True,
                        context={"name": "Asha", "_sim": [{"outcome": "no-answer", "ring_ms": 50}]})
    assert call.carrier == simulator.NAME and not platform.stub.created()
    simulator.process_due_events(now_ms=simulator.redis_now_ms(redis_client) + 60_000)
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, "no-answer")


def test_a_stream_agent_streams_to_its_own_url_with_its_attempt():
    campaign = CampaignFactory(calling_number__carrier="twilio", agent__runtime={
        "kind": "stream", "url": "wss://agents.example.com/media"})
    call = CallFactory(task=TaskFactory(campaign=campaign), attempt=2)
    with TwilioStub(ACCOUNT_SID, AUTH_TOKEN) as stub, override_settings(
            TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=stub.base_url,
            PUBLIC_BASE_URL=PUBLIC, AGENT_MEDIA_STREAM_URL="wss://default.example/media"):
        place_admitted_calls([str(call.id)])
        twiml = stub.created()[0]["form"]["Twiml"][0]
    assert 'url="wss://agents.example.com/media"' in twiml and "default.example" not in twiml
    assert 'name="attempt" value="2"' in twiml and f'value="{call.id}"' in twiml


def test_the_dispatcher_never_has_more_calls_on_a_platform_than_its_concurrency(platform, flow, client):
    first = realtime_task(platform)
    workspace = first.campaign.workspace
    workspace.integrations.update(concurrency=2)
    do_create_tasks(workspace, [{"campaign": str(first.campaign_id), "phone": f"+1415555020{n}"} for n in range(3)])
    organisation_id = workspace.organisation_id
    assert flow.admit(organisation_id).admitted == 2
    assert flow.admit(organisation_id).admitted == 0  # two live on the platform: the others wait
    flow.dial()
    call = Call.objects.filter(status=CallStatus.DIALING).first()
    for name, fields in platform.busy:
        flow.post(client, platform, call, name, fields)
    assert flow.admit(organisation_id).admitted == 1
    assert Call.objects.filter(status__in=[CallStatus.ADMITTED, CallStatus.DIALING]).count() == 2


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_VAPI_SECRET"])
def test_vapi_messages_from_a_bearer_credential_are_accepted_and_a_wrong_token_refused(
        flow, client, header, django_capture_on_commit_callbacks):
    vapi_platform = PLATFORMS[0]
    with VapiStub(vapi.stub.API_KEY) as stub, override_settings(PUBLIC_BASE_URL=PUBLIC, OUTBOUND_ALLOW_PRIVATE=True):
        vapi_platform.stub = stub
        task, call = placed(vapi_platform, flow)
        path = status_callback_url("vapi", call.id).removeprefix(PUBLIC)
        body = vapi.stub.webhook("end_of_call_report.json", call, endedReason="customer-busy")
        token = vapi.stub.WEBHOOK_SECRET

        def value(secret):
            return f"Bearer {secret}" if header == "HTTP_AUTHORIZATION" else secret
        assert client.post(path, body, content_type="application/json", **{header: value("guess")}).status_code == 403
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(path, body, content_type="application/json", **{header: value(token)}).status_code == 204
    call.refresh_from_db()
    assert call.outcome == "busy" and used_slots(task) == 0


@pytest.mark.parametrize(("structured", "outcome"), [
    ({"outcome": "interested"}, "interested"),  # the agent's custom outcome
    ({"outcome": "callback"}, "connected"),  # a callback without its time is not one
    ({"outcome": "sold-a-car"}, "connected"),  # not an outcome this agent may report
    ({}, "connected"),
])
def test_the_reports_structured_outcome_counts_when_the_agent_may_report_it(flow, client, structured, outcome):
    vapi_platform = PLATFORMS[0]
    with VapiStub(vapi.stub.API_KEY) as stub, override_settings(PUBLIC_BASE_URL=PUBLIC, OUTBOUND_ALLOW_PRIVATE=True):
        vapi_platform.stub = stub
        _, call = placed(vapi_platform, flow)
        report = load("vapi", "end_of_call_report.json")["message"]["analysis"]
        assert flow.post(client, vapi_platform, call, "end_of_call_report.json",
                         {"analysis": {**report, "structuredData": structured}}).status_code == 204
    call.refresh_from_db()
    assert (call.status, call.outcome) == (CallStatus.ENDED, outcome)


def test_a_base_url_that_now_points_at_a_private_address_is_never_called(platform, flow):
    task = realtime_task(platform)  # saved while the stand-in's address was allowed
    flow.admit(task.campaign.workspace.organisation_id)
    with override_settings(OUTBOUND_ALLOW_PRIVATE=False):
        flow.dial()
    task.refresh_from_db()
    assert not platform.stub.requests and not Call.objects.filter(task=task).exists()
    assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0)  # not an attempt: retried soon


def test_the_reaper_gives_back_a_call_the_platform_says_it_never_placed(flow, django_capture_on_commit_callbacks):
    vapi_platform = PLATFORMS[0]
    with VapiStub(vapi.stub.API_KEY) as stub, override_settings(PUBLIC_BASE_URL=PUBLIC, OUTBOUND_ALLOW_PRIVATE=True):
        vapi_platform.stub = stub
        task, call = placed(vapi_platform, flow)
        stub.calls[call.carrier_call_id].update(
            status="ended", endedReason="call.start.error-subscription-concurrency-limit-reached")
        with django_capture_on_commit_callbacks(execute=True):
            assert check_call_with_carrier(call.id) is False
    task.refresh_from_db()
    assert not Call.objects.filter(id=call.id).exists()
    assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0) and used_slots(task) == 0


def test_a_tasks_own_agent_picks_the_runtime(platform, flow):
    campaign = CampaignFactory(type=CampaignType.REALTIME, status=CampaignStatus.RUNNING, slots=5, workspace__slots=10)
    IntegrationFactory(workspace=campaign.workspace, platform=platform.name, api_key=platform.module.API_KEY,
                       webhook_secret=platform.secret, base_url=platform.stub.base_url)
    on_platform = AgentFactory(workspace=campaign.workspace, runtime=platform.runtime)
    streamed, own = do_create_tasks(campaign.workspace, [
        {"campaign": str(campaign.id), "phone": "+14155550123"},
        {"campaign": str(campaign.id), "phone": "+14155550124", "agent": str(on_platform.id)}])
    assert flow.admit(campaign.workspace.organisation_id).admitted == 2
    flow.dial()
    assert Call.objects.get(task=streamed).carrier == simulator.NAME
    assert Call.objects.get(task=own).carrier == platform.name and len(platform.stub.created()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_starting_loads_the_sdks_of_platforms_a_workspace_places_calls_with(monkeypatch):
    """Not the others (importing Vapi's SDK takes seconds); and it leaves no connection for a forked child."""
    from django.db import connection

    from telephony import calls

    warmed = []

    class Recording:
        def __init__(self, name):
            self.name = name

        def warm_up(self):
            warmed.append(self.name)

    monkeypatch.setattr(calls, "get_provider", Recording)
    IntegrationFactory(platform="retell")
    IntegrationFactory(platform="vapi", simulate=True)
    calls.warm_up()
    assert warmed == ["simulated", "twilio", "retell"]
    assert connection.connection is None


@pytest.mark.parametrize("platform", ["vapi", "retell", "elevenlabs"])
def test_a_platforms_warm_up_reads_the_sdk_resource_it_places_calls_through(platform):
    from telephony.registry import get_provider

    provider = get_provider(platform)
    provider.warm_up()  # sends no request: a resource is only built
    assert provider.PLACING_RESOURCE
