"""The contract every telephony provider keeps, run against each one (docs/architecture.md, Telephony)."""
from email.utils import format_datetime

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from telephony import simulator
from telephony.calls import place_call, status_callback_url
from telephony.models import Call, CallStatus
from telephony.registry import PROVIDERS, get_provider
from telephony.signals import call_ended
from tests.factories import CallFactory, CampaignFactory, IntegrationFactory, TaskFactory
from tests.fixtures import elevenlabs, retell, vapi
from tests.fixtures.elevenlabs.stub import ElevenLabsStub
from tests.fixtures.retell.stub import RetellStub
from tests.fixtures.twilio.stub import ACCOUNT_SID, AUTH_TOKEN, INVALID_NUMBER, TwilioStub, signed_post, status_params
from tests.fixtures.vapi.stub import VapiStub

pytestmark = pytest.mark.django_db

PUBLIC = "http://testserver.example"


class SimulatedHarness:
    carrier = "simulated"

    def __init__(self, redis):
        self.redis = redis

    def new_call(self, outcome="busy", refuse=False):
        script = [{"outcome": "refuse" if refuse else outcome, "ring_ms": 50, "talk_ms": 100}]
        task = TaskFactory(campaign=CampaignFactory(calling_number__carrier=self.carrier), context={"_sim": script})
        return CallFactory(task=task)

    def placements(self):
        return len(self.redis.keys(f"{simulator.CALL_KEY_PREFIX}*"))

    def report_outcome(self, call, client):
        simulator.process_due_events(now_ms=simulator.redis_now_ms(self.redis) + 60_000)

    def settle_after_hang_up(self, call):
        simulator.process_due_events(now_ms=simulator.redis_now_ms(self.redis) + 60_000)

    def unsigned_status(self, client, call):
        path = status_callback_url(self.carrier, call.id).removeprefix(PUBLIC)
        return client.post(path, status_params("status_busy.json", call.carrier_call_id))


class TwilioHarness:
    carrier = "twilio"

    def __init__(self, stub):
        self.stub = stub

    def new_call(self, outcome="busy", refuse=False):
        campaign = CampaignFactory(calling_number__carrier=self.carrier)
        task = TaskFactory(campaign=campaign, **({"phone": INVALID_NUMBER} if refuse else {}))
        call = CallFactory(task=task)
        self.outcomes = {**getattr(self, "outcomes", {}), str(call.id): outcome}
        return call

    def placements(self):
        return len(self.stub.created())

    def report_outcome(self, call, client):
        path = status_callback_url(self.carrier, call.id).removeprefix(PUBLIC)
        status = self.outcomes[str(call.id)]
        for fixture in ("status_ringing.json", f"status_{status.replace('-', '_')}.json"):
            params = status_params(fixture, call.carrier_call_id)
            params["Timestamp"] = format_datetime(timezone.now(), usegmt=True)
            assert signed_post(client, path, params, base_url=PUBLIC).status_code == 204

    def settle_after_hang_up(self, call):
        pass

    def unsigned_status(self, client, call):
        path = status_callback_url(self.carrier, call.id).removeprefix(PUBLIC)
        return client.post(path, status_params("status_busy.json", call.carrier_call_id))


class PlatformHarness:
    """A voice-AI platform: an agent on its runtime, the workspace's credentials pointing at the
    platform's stand-in, webhooks replayed from its recorded payloads and signed as it signs them."""

    def __init__(self, carrier, stub, module, runtime, secret, outcome_webhooks):
        self.carrier, self.stub, self.module, self.runtime = carrier, stub, module, runtime
        self.secret, self.outcome_webhooks = secret, outcome_webhooks
        self.outcomes = {}

    def new_call(self, outcome="busy", refuse=False):
        campaign = CampaignFactory()
        IntegrationFactory(workspace=campaign.workspace, platform=self.carrier, api_key=self.stub.api_key,
                           webhook_secret=self.secret, base_url=self.stub.base_url)
        campaign.agent.runtime = self.runtime
        campaign.agent.save(update_fields=["runtime"])
        task = TaskFactory(campaign=campaign, **({"phone": self.module.INVALID_NUMBER} if refuse else {}))
        call = CallFactory(task=task)
        self.outcomes[str(call.id)] = outcome
        return call

    def placements(self):
        return len(self.stub.created())

    def path(self, call):
        return status_callback_url(self.carrier, call.id).removeprefix(PUBLIC)

    def report_outcome(self, call, client):
        name, fields = self.outcome_webhooks[self.outcomes[str(call.id)]]
        body = self.module.webhook(name, call, **fields)
        assert self.module.signed_post(client, self.path(call), body, self.secret).status_code == 204

    def settle_after_hang_up(self, call):
        pass

    def unsigned_status(self, client, call):
        name, fields = self.outcome_webhooks["busy"]
        return client.post(self.path(call), self.module.webhook(name, call, **fields), content_type="application/json")


def platform_harness(carrier):
    if carrier == "vapi":
        return VapiStub(vapi.stub.API_KEY), lambda stub: PlatformHarness(
            "vapi", stub, vapi.stub, {"kind": "vapi", "assistantId": "asst_contract", "phoneNumberId": "pn_contract"},
            vapi.stub.WEBHOOK_SECRET,
            {"busy": ("end_of_call_report.json", {"endedReason": "customer-busy"}),
             "no-answer": ("end_of_call_report.json", {"endedReason": "customer-did-not-answer"})})
    if carrier == "retell":
        return RetellStub(retell.stub.API_KEY), lambda stub: PlatformHarness(
            "retell", stub, retell.stub, {"kind": "retell", "agentId": "agent_contract"}, retell.stub.API_KEY,
            {"busy": ("call_ended.json", {"disconnection_reason": "dial_busy"}),
             "no-answer": ("call_ended.json", {"disconnection_reason": "dial_no_answer"})})
    return ElevenLabsStub(elevenlabs.stub.API_KEY), lambda stub: PlatformHarness(
        "elevenlabs", stub, elevenlabs.stub,
        {"kind": "elevenlabs", "agentId": "agent_contract", "phoneNumberId": "phnum_contract"},
        elevenlabs.stub.WEBHOOK_SECRET,
        {"busy": ("call_initiation_failure.json", {"failure_reason": "busy"}),
         "no-answer": ("call_initiation_failure.json", {"failure_reason": "no-answer"})})


@pytest.fixture(params=sorted(PROVIDERS))
def harness(request, redis_client):
    if request.param == "simulated":
        yield SimulatedHarness(redis_client)
        return
    if request.param == "twilio":
        with TwilioStub(ACCOUNT_SID, AUTH_TOKEN) as stub:
            with override_settings(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                   TWILIO_API_BASE_URL=stub.base_url, PUBLIC_BASE_URL=PUBLIC):
                yield TwilioHarness(stub)
        return
    stub, make = platform_harness(request.param)
    with stub, override_settings(PUBLIC_BASE_URL=PUBLIC, OUTBOUND_ALLOW_PRIVATE=True):
        yield make(stub)


def placed(harness, **kwargs):
    call = harness.new_call(**kwargs)
    place_call(call.id)
    call.refresh_from_db()
    return call


def test_the_registry_serves_the_provider_under_its_own_name(harness):
    assert get_provider(harness.carrier).name == harness.carrier


def test_placing_records_the_carrier_call_and_moves_the_call_to_dialing(harness):
    call = placed(harness)
    assert (call.carrier, call.status) == (harness.carrier, CallStatus.DIALING)
    assert call.carrier_call_id and call.placed_at is not None


def test_a_redelivered_dial_job_places_no_second_call(harness):
    call = placed(harness)
    place_call(call.id)
    place_call(call.id)
    assert harness.placements() == 1


@pytest.mark.parametrize("outcome", ["busy", "no-answer"])
def test_an_unanswered_call_ends_with_the_carriers_outcome_exactly_once(harness, client, outcome):
    call = placed(harness, outcome=outcome)
    sent = []
    call_ended.connect(lambda **kw: sent.append(kw["outcome"]), weak=False, dispatch_uid="contract")
    try:
        harness.report_outcome(call, client)
        harness.report_outcome(call, client)
    finally:
        call_ended.disconnect(dispatch_uid="contract")
    call.refresh_from_db()
    assert (call.status, call.outcome, sent) == (CallStatus.ENDED, outcome, [outcome])


def test_a_refusal_ends_the_call_failed(harness):
    call = placed(harness, refuse=True)
    assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")


def test_the_status_of_a_live_call_is_not_terminal_and_an_unknown_call_has_none(harness):
    call = placed(harness)
    provider = get_provider(harness.carrier)
    assert not provider.fetch_status(call.carrier_call_id, call_id=str(call.id)).is_terminal
    # A platform's credentials are the call's workspace's: the reaper always names our call.
    assert provider.fetch_status("CA" + "f" * 32, call_id=str(call.id)) is None


def test_after_a_hang_up_the_carrier_reports_the_call_ended(harness):
    call = placed(harness)
    provider = get_provider(harness.carrier)
    provider.hang_up(call.carrier_call_id)
    harness.settle_after_hang_up(call)
    status = provider.fetch_status(call.carrier_call_id, call_id=str(call.id))
    # ElevenLabs has no request that ends a live conversation: its hang-up is a no-op.
    assert status.is_terminal or harness.carrier == "elevenlabs"


def test_an_unsigned_status_webhook_is_refused(harness, client):
    call = placed(harness)
    response = harness.unsigned_status(client, call)
    assert response.status_code == 403
    assert Call.objects.get(id=call.id).status == CallStatus.DIALING
