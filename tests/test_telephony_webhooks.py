"""Inbound agent analysis (API key or HMAC) and outbound customer webhooks (signed, backed off)."""
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from telephony import webhooks_out
from telephony.events import handle_event
from telephony.models import Call, CallEvent, CallStatus, WebhookDeliveryStatus
from telephony.rules import EventKind, NormalizedEvent
from tests.factories import (
    AgentFactory, ApiKeyFactory, CallFactory, CampaignFactory, TaskFactory, UserFactory, WebhookDeliveryFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db

ANALYSIS_URL = "/webhooks/agent/analysis/"


def answered_and_completed_call(**task_kwargs):
    agent = AgentFactory(outcomes=["interested"], prompt="Hi ${name}")
    campaign = CampaignFactory(agent=agent, workspace=agent.workspace)
    call = CallFactory(task=TaskFactory(campaign=campaign, **task_kwargs), status=CallStatus.DIALING,
                       carrier_call_id="SIM-a", prompt="Hi Ada")
    now = timezone.now()
    for kind in (EventKind.ANSWERED, EventKind.COMPLETED):
        handle_event(NormalizedEvent(carrier="simulated", kind=kind, carrier_call_id="SIM-a", occurred_at=now,
                                     carrier_status="completed" if kind == EventKind.COMPLETED else ""), now=now)
    return call


def post_json(client, body, **headers):
    return client.post(ANALYSIS_URL, json.dumps(body), content_type="application/json", **headers)


def bearer(key):
    return {"HTTP_AUTHORIZATION": f"Bearer {key.raw_key}"}


def signed(secret, body):
    raw = json.dumps(body).encode()
    stamp = int(time.time())
    return raw, {"HTTP_X_DIALER_TIMESTAMP": str(stamp),
                 "HTTP_X_DIALER_SIGNATURE": webhooks_out.sign(secret, stamp, raw)}


class TestAgentAnalysis:
    def test_a_workspace_key_posts_a_callback_that_becomes_the_outcome(self, client):
        call = answered_and_completed_call()
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        body = {"callId": str(call.id), "outcome": "callback", "callbackAt": "2026-03-03T09:30:00+00:00",
                "transcript": "Agent: hi", "recordingUrl": "https://rec.example/1.wav", "summary": "Call later",
                "fields": {"budget": "10k"}}
        response = post_json(client, body, **bearer(key))
        assert response.status_code == 200
        assert response.json() | {"callId": None} == {"callId": None, "applied": True, "status": "ended",
                                                       "outcome": "callback"}
        call.refresh_from_db()
        assert call.callback_at == dt.datetime(2026, 3, 3, 9, 30, tzinfo=dt.UTC)
        assert (call.transcript, call.recording_url, call.analysis["fields"]) == (
            "Agent: hi", "https://rec.example/1.wav", {"budget": "10k"})

    def test_an_analysis_before_the_carriers_end_answers_the_call_still_answered(self, client):
        call = CallFactory(status=CallStatus.ANSWERED, carrier_call_id="SIM-b", answered_at=timezone.now())
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        response = post_json(client, {"callId": str(call.id), "outcome": "connected"}, **bearer(key))
        assert response.json() == {"callId": str(call.id), "applied": True, "status": "answered", "outcome": ""}

    def test_a_repeated_analysis_changes_nothing_and_answers_the_calls_end(self, client):
        call = answered_and_completed_call()
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        body = {"callId": str(call.id), "outcome": "connected"}
        post_json(client, body, **bearer(key))
        response = post_json(client, body, **bearer(key))
        assert response.json() == {"callId": str(call.id), "applied": False, "status": "ended",
                                   "outcome": "connected"}

    def test_callback_time_may_be_epoch_milliseconds(self, client):
        call = answered_and_completed_call()
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        body = {"callId": str(call.id), "outcome": "callback", "callbackAt": 1772530200000}
        assert post_json(client, body, **bearer(key)).status_code == 200
        assert Call.objects.get(id=call.id).callback_at == dt.datetime(2026, 3, 3, 9, 30, tzinfo=dt.UTC)

    def test_the_agents_custom_outcomes_are_accepted(self, client):
        call = answered_and_completed_call()
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        assert post_json(client, {"callId": str(call.id), "outcome": "interested"}, **bearer(key)).status_code == 200
        assert Call.objects.get(id=call.id).outcome == "interested"

    def test_another_workspaces_key_gets_404_and_changes_nothing(self, client):
        call = answered_and_completed_call()
        stranger = ApiKeyFactory(workspace=WorkspaceFactory())
        response = post_json(client, {"callId": str(call.id), "outcome": "opt-out"}, **bearer(stranger))
        assert response.status_code == 404
        assert Call.objects.get(id=call.id).status == CallStatus.WRAP_UP

    def test_an_unknown_key_or_no_credentials_is_401(self, client):
        call = answered_and_completed_call()
        body = {"callId": str(call.id), "outcome": "connected"}
        assert post_json(client, body, HTTP_AUTHORIZATION="Bearer dk_nope").status_code == 401
        assert post_json(client, body).status_code == 401

    def test_an_hmac_signature_with_the_workspace_secret_is_accepted(self, client):
        call = answered_and_completed_call()
        body = {"callId": str(call.id), "outcome": "opt-out"}
        raw, headers = signed(call.campaign.workspace.webhook_secret, body)
        response = client.post(ANALYSIS_URL, raw, content_type="application/json", **headers)
        assert response.status_code == 200
        assert Call.objects.get(id=call.id).outcome == "opt-out"

    def test_a_wrong_signature_is_403_and_changes_nothing(self, client):
        call = answered_and_completed_call()
        raw, headers = signed("not-the-secret", {"callId": str(call.id), "outcome": "opt-out"})
        response = client.post(ANALYSIS_URL, raw, content_type="application/json", **headers)
        assert response.status_code == 403
        assert not CallEvent.objects.filter(kind="analysis").exists()

    @pytest.mark.parametrize("body, field", [
        ({"outcome": "sold-a-car"}, "outcome"),
        ({"outcome": "callback"}, "callbackAt"),
        ({"outcome": "callback", "callbackAt": "tomorrow"}, "callbackAt"),
        ({"outcome": "connected", "fields": [1]}, "fields"),
    ])
    def test_an_invalid_analysis_is_a_400_naming_the_field(self, client, body, field):
        call = answered_and_completed_call()
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        response = post_json(client, {"callId": str(call.id), **body}, **bearer(key))
        assert response.status_code == 400 and field in response.json()

    def test_the_agent_runtime_reads_the_rendered_prompt_and_public_context(self, client):
        call = answered_and_completed_call(context={"name": "Ada", "_sim": "[]"})
        key = ApiKeyFactory(workspace=call.campaign.workspace)
        response = client.get(f"/webhooks/agent/calls/{call.id}/", **bearer(key))
        assert response.status_code == 200
        assert (response.json()["prompt"], response.json()["context"]) == ("Hi Ada", {"name": "Ada"})


class Receiver:
    """A local HTTP endpoint answering with queued status codes and recording what it got."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(*statuses):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for server in made:
        server.close()


NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


class TestOutboundWebhooks:
    @pytest.fixture(autouse=True)
    def local_receivers_allowed(self, settings):
        # The receivers here listen on loopback, which only OUTBOUND_ALLOW_PRIVATE lets us call.
        settings.OUTBOUND_ALLOW_PRIVATE = True

    def test_a_delivery_is_posted_json_signed_with_the_workspace_secret(self, receiver):
        hook = receiver(200)
        workspace = WorkspaceFactory(webhook_url=hook.url)
        delivery = webhooks_out.enqueue_webhook(workspace, "task.finished", {"task": 7}, now=NOW)
        assert webhooks_out.deliver_due_webhooks(now=NOW) == 1
        request = hook.received[0]
        assert json.loads(request["body"]) == {"event": "task.finished", "data": {"task": 7}}
        assert webhooks_out.verify_signature(workspace.webhook_secret, request["headers"]["X-Dialer-Timestamp"],
                                             request["body"], request["headers"]["X-Dialer-Signature"])
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_response_status) == ("delivered", 1, 200)

    def test_failures_back_off_exponentially_then_succeed(self, receiver):
        hook = receiver(500, 503, 200)
        delivery = WebhookDeliveryFactory(url=hook.url, next_attempt_at=NOW)
        webhooks_out.deliver_due_webhooks(now=NOW)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
            "pending", 1, NOW + dt.timedelta(seconds=10))
        assert webhooks_out.deliver_due_webhooks(now=NOW + dt.timedelta(seconds=9)) == 0
        webhooks_out.deliver_due_webhooks(now=NOW + dt.timedelta(seconds=10))
        delivery.refresh_from_db()
        assert delivery.next_attempt_at == NOW + dt.timedelta(seconds=30)
        webhooks_out.deliver_due_webhooks(now=NOW + dt.timedelta(seconds=30))
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, len(hook.received)) == ("delivered", 3, 3)

    def test_gives_up_after_the_configured_attempts(self, receiver, settings):
        settings.WEBHOOK_MAX_ATTEMPTS = 2
        hook = receiver(500, 500, 500)
        delivery = WebhookDeliveryFactory(url=hook.url, next_attempt_at=NOW)
        webhooks_out.deliver_due_webhooks(now=NOW)
        webhooks_out.deliver_due_webhooks(now=NOW + dt.timedelta(hours=1))
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.FAILED, 2)
        assert webhooks_out.deliver_due_webhooks(now=NOW + dt.timedelta(days=1)) == 0

    def test_an_unreachable_receiver_is_logged_and_retried(self):
        delivery = WebhookDeliveryFactory(url="http://127.0.0.1:9/hook", next_attempt_at=NOW)
        webhooks_out.deliver_due_webhooks(now=NOW)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.last_response_status) == ("pending", None)
        assert delivery.last_error == "connection refused or unreachable"

    def test_nothing_is_queued_without_a_url(self):
        assert webhooks_out.enqueue_webhook(WorkspaceFactory(webhook_url=""), "call.ended", {}) is None

    def test_signatures_older_than_five_minutes_are_refused(self):
        body = b"{}"
        old = int(time.time()) - 301
        assert not webhooks_out.verify_signature("s", old, body, webhooks_out.sign("s", old, body))

    def test_the_admin_shows_the_delivery_log_and_retries_given_up_deliveries(self, client):
        user = UserFactory(is_superuser=True)
        client.force_login(user)
        delivery = WebhookDeliveryFactory(status=WebhookDeliveryStatus.FAILED, attempts=8, last_error="boom")
        page = client.get("/admin/telephony/webhookdelivery/")
        assert page.status_code == 200 and str(delivery.id) in page.content.decode()
        client.post("/admin/telephony/webhookdelivery/", {"action": "retry_now", "_selected_action": [delivery.id]})
        delivery.refresh_from_db()
        assert delivery.status == WebhookDeliveryStatus.PENDING
