"""Event handling: idempotent, monotonic, order-tolerant; the carrier/agent merge; call_ended once."""
import datetime as dt
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import override_settings
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from telephony.events import finalise_overdue_calls, handle_event
from telephony.models import Call, CallEvent, CallStatus, WebhookDelivery
from telephony.rules import EventKind, NormalizedEvent
from telephony.signals import call_ended
from tests.factories import CallFactory, CampaignFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
CALLBACK_AT = "2026-03-03T09:30:00+00:00"


@contextmanager
def ended_signals():
    """Collect call_ended sends, with whether each came inside an atomic block and the row's status."""
    sent = []

    def receiver(sender, call_id, outcome, ended_at, callback_at, **kwargs):
        status = Call.objects.filter(id=call_id).values_list("status", flat=True).get()
        sent.append({"call_id": call_id, "outcome": outcome, "ended_at": ended_at, "callback_at": callback_at,
                     "in_atomic": connection.in_atomic_block, "status": status})

    call_ended.connect(receiver, dispatch_uid="test-telephony-events")
    try:
        yield sent
    finally:
        call_ended.disconnect(dispatch_uid="test-telephony-events")


def dialing_call(**kwargs):
    return CallFactory(status=CallStatus.DIALING, carrier_call_id=f"SIM-{CallFactory._meta.model.objects.count()}",
                       placed_at=T0, **kwargs)


def event(call, kind, seconds=0, **fields):
    return NormalizedEvent(carrier=call.carrier, kind=kind, carrier_call_id=call.carrier_call_id,
                           occurred_at=T0 + dt.timedelta(seconds=seconds), raw={"kind": str(kind)}, **fields)


def completed(call, seconds, status="completed", **fields):
    return event(call, EventKind.COMPLETED, seconds, carrier_status=status, **fields)


def analysis(call, outcome, **fields):
    return event(call, EventKind.ANALYSIS, analysis={"outcome": outcome, **fields})


def at(seconds):
    return T0 + dt.timedelta(seconds=seconds)


class TestProgress:
    def test_ringing_then_answered_moves_the_call_forward_with_timestamps(self):
        call = dialing_call()
        assert handle_event(event(call, EventKind.RINGING, 1), now=at(1))
        assert handle_event(event(call, EventKind.ANSWERED, 4), now=at(4))
        call.refresh_from_db()
        assert (call.status, call.ringing_at, call.answered_at) == (CallStatus.ANSWERED, at(1), at(4))

    def test_late_ringing_after_completed_changes_nothing_but_is_stored(self):
        call = dialing_call()
        with ended_signals() as sent:
            handle_event(completed(call, 10, "no-answer"), now=at(10))
            assert not handle_event(event(call, EventKind.RINGING, 2), now=at(11))
        call.refresh_from_db()
        assert (call.status, call.outcome, call.ringing_at) == (CallStatus.ENDED, "no-answer", None)
        assert list(CallEvent.objects.filter(call=call).values_list("kind", "applied")) == [
            ("completed", True), ("ringing", False)]
        assert len(sent) == 1

    def test_late_ringing_after_answered_does_not_move_the_call_back(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        assert not handle_event(event(call, EventKind.RINGING, 1), now=at(4))
        call.refresh_from_db()
        assert call.status == CallStatus.ANSWERED

    def test_a_progress_event_costs_one_statement_and_a_duplicate_is_stored_unapplied(
            self, django_assert_num_queries):
        call = dialing_call()
        with django_assert_num_queries(1):
            assert handle_event(event(call, EventKind.RINGING, 1), now=at(1))
        with django_assert_num_queries(1):
            assert not handle_event(event(call, EventKind.RINGING, 2), now=at(2))
        call.refresh_from_db()
        assert (call.status, call.ringing_at) == (CallStatus.RINGING, at(1))
        assert list(CallEvent.objects.filter(call=call).values_list("kind", "applied")) == [
            ("ringing", True), ("ringing", False)]

    def test_answering_machine_detection_after_answered_takes_the_result_once(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        assert handle_event(event(call, EventKind.MACHINE_DETECTED, 5, answered_by="human"), now=at(5))
        assert not handle_event(event(call, EventKind.MACHINE_DETECTED, 6, answered_by="human"), now=at(6))
        call.refresh_from_db()
        assert (call.status, call.answered_at, call.answered_by) == (CallStatus.ANSWERED, at(3), "human")

    def test_an_event_naming_a_call_id_that_is_no_uuid_is_stored_unapplied(self):
        stray = NormalizedEvent(carrier="twilio", kind=EventKind.RINGING, call_id="not-a-uuid")
        assert not handle_event(stray)
        assert CallEvent.objects.get().call is None

    def test_an_event_for_an_unknown_call_is_stored_unapplied(self):
        stray = NormalizedEvent(carrier="simulated", kind=EventKind.RINGING, carrier_call_id="SIM-nobody")
        assert not handle_event(stray)
        assert CallEvent.objects.get().call is None

    def test_an_event_that_overtakes_the_dial_job_finds_its_call_by_our_id_and_links_the_carrier_id(self):
        call = CallFactory(status=CallStatus.ADMITTED)
        ringing = NormalizedEvent(carrier="simulated", kind=EventKind.RINGING, carrier_call_id="SIM-early",
                                  call_id=str(call.id), occurred_at=at(1))
        assert handle_event(ringing, now=at(1))
        call.refresh_from_db()
        assert (call.status, call.carrier_call_id) == (CallStatus.RINGING, "SIM-early")


class TestTerminal:
    @pytest.mark.parametrize("carrier_status, outcome", [
        ("no-answer", "no-answer"), ("busy", "busy"), ("failed", "failed"), ("canceled", "no-answer")])
    def test_unanswered_carrier_statuses_map_to_outcomes(self, carrier_status, outcome):
        call = dialing_call()
        with ended_signals() as sent:
            handle_event(completed(call, 20, carrier_status), now=at(20))
        call.refresh_from_db()
        assert (call.status, call.outcome, call.carrier_status, call.ended_at) == (
            CallStatus.ENDED, outcome, carrier_status, at(20))
        assert [s["outcome"] for s in sent] == [outcome]

    def test_duplicate_completed_finishes_the_attempt_once(self):
        call = dialing_call()
        with ended_signals() as sent:
            assert handle_event(completed(call, 20, "busy"), now=at(20))
            assert not handle_event(completed(call, 20, "busy"), now=at(21))
        assert len(sent) == 1
        assert CallEvent.objects.filter(call=call, applied=False).count() == 1

    def test_call_ended_is_sent_inside_the_transaction_with_the_call_already_ended(self):
        call = dialing_call()
        with ended_signals() as sent:
            handle_event(completed(call, 5, "failed"), now=at(5))
        assert sent == [{"call_id": call.id, "outcome": "failed", "ended_at": at(5), "callback_at": None,
                         "in_atomic": True, "status": CallStatus.ENDED}]

    def test_a_machine_answering_ends_as_voicemail_without_waiting_for_analysis(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(event(call, EventKind.MACHINE_DETECTED, 5, answered_by="machine_end_beep"), now=at(5))
        handle_event(completed(call, 40, duration_seconds=37, cost="-0.0140"), now=at(40))
        call.refresh_from_db()
        assert (call.status, call.outcome, call.duration_seconds, str(call.cost)) == (
            CallStatus.ENDED, "voicemail", 37, "0.0140")

    def test_a_failure_of_an_answered_call_is_failed(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(completed(call, 9, "failed"), now=at(9))
        call.refresh_from_db()
        assert call.outcome == "failed"


class TestAnalysisMerge:
    def test_carrier_completes_then_agent_says_callback_at_t_gives_callback_at_t(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        with ended_signals() as sent:
            handle_event(completed(call, 60, duration_seconds=57), now=at(60))
            call.refresh_from_db()
            assert (call.status, call.carrier_ended_at) == (CallStatus.WRAP_UP, at(60))
            assert sent == []
            handle_event(analysis(call, "callback", callback_at=CALLBACK_AT, transcript="Agent: hi"), now=at(65))
        call.refresh_from_db()
        callback_at = dt.datetime.fromisoformat(CALLBACK_AT)
        assert (call.status, call.outcome, call.callback_at, call.ended_at) == (
            CallStatus.ENDED, "callback", callback_at, at(60))
        assert call.transcript == "Agent: hi" and "transcript" not in call.analysis
        assert [(s["outcome"], s["callback_at"]) for s in sent] == [("callback", callback_at)]

    def test_analysis_that_arrives_first_is_used_when_the_carrier_completes(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(analysis(call, "opt-out"), now=at(59))
        with ended_signals() as sent:
            handle_event(completed(call, 60), now=at(60))
        assert [s["outcome"] for s in sent] == ["opt-out"]

    def test_completed_answered_call_without_analysis_waits_then_finishes_connected(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(completed(call, 60), now=at(60))
        with ended_signals() as sent:
            assert finalise_overdue_calls(now=at(89)) == 0
            assert finalise_overdue_calls(now=at(90)) == 1
            assert finalise_overdue_calls(now=at(91)) == 0
        call.refresh_from_db()
        assert (call.status, call.outcome, call.ended_at) == (CallStatus.ENDED, "connected", at(60))
        assert len(sent) == 1

    @override_settings(ANALYSIS_WAIT_SECONDS=0)
    def test_with_no_analysis_wait_an_answered_call_finishes_connected_at_once(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(completed(call, 60), now=at(60))
        call.refresh_from_db()
        assert call.outcome == "connected"

    def test_late_analysis_fills_in_transcript_but_never_changes_the_outcome(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(completed(call, 60), now=at(60))
        finalise_overdue_calls(now=at(120))
        assert handle_event(analysis(call, "callback", callback_at=CALLBACK_AT, transcript="late"), now=at(130))
        call.refresh_from_db()
        assert (call.outcome, call.callback_at, call.transcript) == ("connected", None, "late")

    def test_duplicate_analysis_keeps_the_first(self):
        call = dialing_call()
        handle_event(event(call, EventKind.ANSWERED, 3), now=at(3))
        handle_event(analysis(call, "silent"), now=at(50))
        handle_event(analysis(call, "opt-out"), now=at(51))
        handle_event(completed(call, 60), now=at(60))
        call.refresh_from_db()
        assert call.outcome == "silent"


class TestOrderTolerance:
    SEQUENCE = ["initiated", "ringing", "answered", "analysis", "completed"]

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(order=st.permutations(SEQUENCE), duplicates=st.lists(st.sampled_from(SEQUENCE), max_size=4))
    def test_any_order_with_duplicates_ends_the_call_once_with_the_same_outcome(self, order, duplicates):
        call = dialing_call()
        events = {
            "initiated": event(call, EventKind.INITIATED, 0),
            "ringing": event(call, EventKind.RINGING, 1),
            "answered": event(call, EventKind.ANSWERED, 4),
            "analysis": analysis(call, "callback", callback_at=CALLBACK_AT),
            "completed": completed(call, 60, duration_seconds=56),
        }
        with ended_signals() as sent:
            for name in [*order, *duplicates]:
                handle_event(events[name], now=at(61))
        call.refresh_from_db()
        assert (call.status, call.outcome, call.ended_at) == (CallStatus.ENDED, "callback", at(60))
        assert len(sent) == 1


class TestCallEndedWebhook:
    def test_call_ended_is_queued_for_a_workspace_with_a_webhook_url(self):
        workspace = WorkspaceFactory(webhook_url="https://example.com/hooks")
        call = dialing_call(task=TaskFactory(campaign=CampaignFactory(workspace=workspace)))
        handle_event(completed(call, 20, "busy"), now=at(20))
        delivery = WebhookDelivery.objects.get()
        assert (delivery.event, delivery.url) == ("call.ended", "https://example.com/hooks")
        assert delivery.payload["event"] == "call.ended"
        assert (delivery.payload["data"]["callId"], delivery.payload["data"]["outcome"]) == (str(call.id), "busy")

    def test_no_webhook_is_queued_without_a_url(self):
        call = dialing_call()
        handle_event(completed(call, 20, "busy"), now=at(20))
        assert not WebhookDelivery.objects.exists()
