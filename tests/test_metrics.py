"""GET /metrics: live calls per scope, outcomes, admissions, dispatcher run time, queue depth;
and structured logs with ids and without secrets."""
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.logging import ContextFilter, JsonFormatter, log_context
from dialer.metrics import record_dispatch
from dialer import slots
from telephony.models import CallStatus
from tests.factories import CallFactory, CampaignFactory

pytestmark = pytest.mark.django_db


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_live_calls_and_allocations_are_exposed_per_scope(client):
    campaign = CampaignFactory(slots=3)
    org = campaign.workspace.organisation_id
    slots.sync_allocations(org)
    for call in CallFactory.create_batch(2, task__campaign=campaign):
        assert slots.acquire(org, campaign.id, call.id).admitted
    samples = scrape(client)
    assert samples[("dialer_live_calls", (("node", str(org)), ("organisation", str(org)),
                                          ("scope", "organisation")))] == 2
    assert samples[("dialer_live_calls", (("node", str(campaign.id)), ("organisation", str(org)),
                                          ("scope", "campaign")))] == 2
    assert samples[("dialer_slot_allocation", (("mode", "hard"), ("node", str(campaign.id)),
                                               ("organisation", str(org)), ("scope", "campaign")))] == 3


def test_outcomes_are_counted_per_campaign_from_ended_calls(client):
    campaign = CampaignFactory()
    CallFactory.create_batch(2, task__campaign=campaign, status=CallStatus.ENDED, outcome="busy")
    CallFactory(task__campaign=campaign, status=CallStatus.RINGING)
    samples = scrape(client)
    labels = (("campaign", str(campaign.id)), ("organisation", str(campaign.workspace.organisation_id)),
              ("outcome", "busy"))
    assert samples[("dialer_call_outcomes_total", labels)] == 2


def test_recorded_dispatch_runs_feed_admissions_and_the_run_time_histogram(client):
    record_dispatch(7, admitted=5, seconds=0.02)
    record_dispatch(7, admitted=3, seconds=0.3)
    samples = scrape(client)
    assert samples[("dialer_admissions_total", (("organisation", "7"),))] == 8
    assert samples[("dialer_dispatch_runs_total", (("organisation", "7"),))] == 2
    assert samples[("dialer_dispatch_seconds_bucket", (("le", "0.025"), ("organisation", "7")))] == 1
    assert samples[("dialer_dispatch_seconds_bucket", (("le", "+Inf"), ("organisation", "7")))] == 2
    assert samples[("dialer_dispatch_seconds_count", (("organisation", "7"),))] == 2


def test_queue_depth_counts_messages_waiting_in_each_celery_queue(client, redis_client):
    redis_client.lpush("dial.normal", "a", "b", "c")
    samples = scrape(client)
    assert samples[("dialer_queue_depth", (("queue", "dial.normal"),))] == 3
    assert samples[("dialer_queue_depth", (("queue", "dial.callback"),))] == 0


def test_a_metrics_token_when_set_is_required(client, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "scrape-secret")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def format_record(message, *args, **extra):
    record = logging.LogRecord("dialer.test", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_log_lines_are_json_with_the_call_id_found_in_the_message():
    entry = format_record("placing call %s failed", "0b5c3a52-1d7e-4c1a-9d65-3f1e2a8b9c01")
    assert entry["message"] == "placing call 0b5c3a52-1d7e-4c1a-9d65-3f1e2a8b9c01 failed"
    assert entry["call_id"] == "0b5c3a52-1d7e-4c1a-9d65-3f1e2a8b9c01"
    assert entry["level"] == "INFO" and entry["logger"] == "dialer.test"


def test_log_context_attaches_call_and_task_ids():
    with log_context(call_id="c-1", task_id=42):
        entry = format_record("attempt finished")
    assert (entry["call_id"], entry["task_id"]) == ("c-1", "42")
    assert "call_id" not in format_record("outside any context")


def test_api_keys_and_bearer_tokens_are_redacted_from_log_lines():
    entry = format_record("auth header %s for key %s", "Bearer dk_abcdefghijklmnop", "dk_0123456789abcdef")
    assert "dk_abcdefghijklmnop" not in entry["message"] and "dk_0123456789abcdef" not in entry["message"]
    assert "[redacted]" in entry["message"]
