"""The simulated carrier and place_call/check_call_with_carrier driven through it, on real Redis."""
import datetime as dt
import json
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test.utils import override_settings

from telephony import simulator
from telephony.calls import check_call_with_carrier, place_call
from telephony.models import Call, CallEvent, CallStatus
from telephony.tasks import simulator_tick
from tests.factories import AgentFactory, CallFactory, CampaignFactory, TaskFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "simulated"
EXAMPLE_SCRIPT = json.loads((FIXTURES / "three_attempts.json").read_text())


def admitted_call(context=None, attempt=1, **kwargs):
    agent = AgentFactory(prompt="Hello ${name}, about ${plan}.")
    campaign = CampaignFactory(agent=agent, workspace=agent.workspace)
    task = TaskFactory(campaign=campaign, context=context if context is not None else {"name": "Ada", "plan": "gold"})
    return CallFactory(task=task, attempt=attempt, **kwargs)


def placed(context=None, attempt=1):
    call = admitted_call(context, attempt)
    place_call(call.id)
    call.refresh_from_db()
    return call, placed_at_ms(call)


def placed_at_ms(call):
    state = simulator.get_redis().hgetall(simulator.call_key(call.carrier_call_id))
    return json.loads(state["last"])["at_ms"]


def run_until(ms):
    total = 0
    while count := simulator.process_due_events(now_ms=ms):
        total += count
    return total


class TestPlaceCall:
    def test_placing_renders_the_prompt_and_records_the_carrier_call(self):
        call, _ = placed({"name": "Ada", "plan": "gold", "_sim": "[]"})
        assert call.status == CallStatus.DIALING
        assert call.carrier_call_id.startswith("SIM") and call.placed_at is not None
        assert call.prompt == "Hello Ada, about gold."

    def test_a_redelivered_dial_job_places_no_second_call(self, redis_client):
        call, _ = placed()
        events_before = redis_client.zcard(simulator.DUE_KEY)
        place_call(call.id)
        place_call(call.id)
        assert redis_client.zcard(simulator.DUE_KEY) == events_before
        assert Call.objects.get(id=call.id).carrier_call_id == call.carrier_call_id

    def test_a_call_claimed_by_a_job_that_crashed_mid_request_is_not_placed_again(self, redis_client):
        call = admitted_call()
        Call.objects.filter(id=call.id).update(placed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        place_call(call.id)
        assert redis_client.zcard(simulator.DUE_KEY) == 0
        assert Call.objects.get(id=call.id).status == CallStatus.ADMITTED

    def test_a_call_no_longer_admitted_is_left_alone(self, redis_client):
        call = admitted_call(status=CallStatus.ENDED, outcome="busy")
        place_call(call.id)
        assert redis_client.zcard(simulator.DUE_KEY) == 0

    def test_the_simulator_is_idempotent_by_our_call_id(self):
        call = admitted_call()
        request = simulator.PlaceCallRequest(
            idempotency_key=str(call.id), to_number=call.to_number, from_number=call.from_number, agent_id=None,
            prompt="", context={}, attempt=1, status_callback_url="")
        provider = simulator.SimulatedProvider()
        assert provider.place_call(request) == provider.place_call(request)

    def test_a_carrier_refusal_ends_the_call_failed_through_the_event_handler(self):
        call = admitted_call({"_sim": [{"outcome": "refuse"}]})
        place_call(call.id)
        call.refresh_from_db()
        assert (call.status, call.outcome, call.carrier_status) == (CallStatus.ENDED, "failed", "failed")
        assert CallEvent.objects.get(call=call).payload["reason"].startswith("carrier refused")


class TestScripts:
    def test_first_attempt_of_the_example_script_rings_800ms_then_no_answer(self):
        call, t0 = placed({"_sim": EXAMPLE_SCRIPT})
        run_until(t0 + 799)
        call.refresh_from_db()
        assert call.status == CallStatus.RINGING
        run_until(t0 + 800)
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "no-answer")

    def test_second_attempt_asks_for_a_callback_at_the_scripted_time(self):
        call, t0 = placed({"_sim": json.dumps(EXAMPLE_SCRIPT)}, attempt=2)
        run_until(t0 + 10_000)
        call.refresh_from_db()
        ring_ms, talk_ms, callback_in_ms = 3_000, 2_000, 60_000
        expected = dt.datetime.fromtimestamp((t0 + ring_ms + talk_ms + callback_in_ms) / 1000, tz=dt.UTC)
        assert (call.outcome, call.callback_at) == ("callback", expected)
        assert call.ended_at == dt.datetime.fromtimestamp((t0 + ring_ms + talk_ms + 1) / 1000, tz=dt.UTC)

    def test_a_connected_call_gets_a_transcript_a_recording_and_an_analysis(self):
        call, t0 = placed({"name": "Ada", "_sim": EXAMPLE_SCRIPT}, attempt=3)
        run_until(t0 + 10_000)
        call.refresh_from_db()
        assert (call.status, call.outcome, call.duration_seconds) == (CallStatus.ENDED, "connected", 3)
        assert "Hello Ada" in call.transcript
        assert call.recording_url.endswith(f"{call.carrier_call_id}.wav")
        assert call.analysis["outcome"] == "connected" and call.analysis["summary"]
        assert call.cost is not None and call.answered_at is not None

    def test_unknown_script_keys_become_custom_analysis_fields(self):
        call, t0 = placed({"_sim": [{"outcome": "interested", "talk_ms": 500, "budget": "10k"}]})
        run_until(t0 + 10_000)
        call.refresh_from_db()
        assert (call.outcome, call.analysis["fields"]) == ("interested", {"budget": "10k"})

    def test_voicemail_is_detected_as_a_machine(self):
        call, t0 = placed({"_sim": [{"outcome": "voicemail"}]})
        run_until(t0 + 60_000)
        call.refresh_from_db()
        assert (call.outcome, call.answered_by) == ("voicemail", "machine_end_beep")

    @override_settings(SIMULATED_TIME_SCALE=0.5)
    def test_durations_follow_the_time_scale(self):
        call, t0 = placed({"_sim": [{"outcome": "busy", "ring_ms": 800}]})
        run_until(t0 + 399)
        assert Call.objects.get(id=call.id).status == CallStatus.DIALING
        run_until(t0 + 400)
        assert Call.objects.get(id=call.id).outcome == "busy"

    @override_settings(SIMULATED_OUTCOME_MIX={"busy": 1})
    def test_an_unscripted_call_draws_from_the_configured_mix(self):
        call, t0 = placed({"name": "Ada"})
        run_until(t0 + 60_000)
        assert Call.objects.get(id=call.id).outcome == "busy"

    def test_attempts_beyond_the_script_draw_from_the_mix(self):
        assert simulator.script_for_attempt({"_sim": EXAMPLE_SCRIPT}, 4) is None
        assert simulator.script_for_attempt({"_sim": "not json"}, 1) is None


class TestEventQueue:
    def test_concurrent_pollers_never_take_the_same_event(self, redis_client):
        for n in range(300):
            redis_client.hset(simulator.EVENTS_KEY, f"e{n}", json.dumps({"carrier_call_id": "x", "n": n}))
            redis_client.zadd(simulator.DUE_KEY, {f"e{n}": n})
        taken, lock = [], threading.Lock()

        def poll():
            while batch := simulator.pop_due_events(now_ms=10_000, limit=7):
                with lock:
                    taken.extend(json.loads(p)["n"] for p in batch)

        threads = [threading.Thread(target=poll) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(taken) == list(range(300))

    def test_a_duplicated_event_is_harmless(self, redis_client):
        call, t0 = placed({"_sim": [{"outcome": "busy", "ring_ms": 100}]})
        payloads = simulator.pop_due_events(now_ms=t0 + 100)
        for payload in payloads * 2:
            simulator.handle_event(simulator._event_from_json(payload))
        call.refresh_from_db()
        assert call.outcome == "busy"
        assert list(CallEvent.objects.filter(call=call).values_list("applied", flat=True)) == [True, False]

    def test_the_beat_task_applies_due_events(self):
        call, _ = placed({"_sim": [{"outcome": "failed", "ring_ms": 1}]})
        time.sleep(0.01)
        assert simulator_tick.apply().get() == 1
        assert Call.objects.get(id=call.id).outcome == "failed"

    def test_the_run_simulator_command_applies_due_events_until_idle(self):
        calls = [placed({"_sim": [{"outcome": "busy", "ring_ms": 1}]})[0] for _ in range(3)]
        time.sleep(0.01)
        out = StringIO()
        call_command("run_simulator", "--until-idle", stdout=out)
        assert set(Call.objects.filter(id__in=[c.id for c in calls]).values_list("outcome", flat=True)) == {"busy"}
        assert "stopped" in out.getvalue()


class TestCheckCallWithCarrier:
    def test_a_live_call_is_reported_live(self):
        call, t0 = placed({"_sim": [{"outcome": "connected", "ring_ms": 1000, "talk_ms": 60_000}]})
        run_until(t0 + 2_000)
        assert check_call_with_carrier(call.id) is True
        assert Call.objects.get(id=call.id).status == CallStatus.ANSWERED

    def test_a_call_the_carrier_ended_but_we_never_heard_of_is_finished_from_the_status_check(self):
        call, t0 = placed({"_sim": [{"outcome": "busy", "ring_ms": 100}]})
        simulator.pop_due_events(now_ms=t0 + 100)  # popped, then the process died before applying
        assert check_call_with_carrier(call.id) is False
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "busy")

    def test_a_call_the_carrier_never_heard_of_is_ended_failed(self, redis_client):
        call, _ = placed()
        redis_client.delete(simulator.call_key(call.carrier_call_id))
        assert check_call_with_carrier(call.id) is False
        assert Call.objects.get(id=call.id).outcome == "failed"

    def test_a_call_without_a_carrier_id_is_ended_failed(self):
        call = admitted_call()
        assert check_call_with_carrier(call.id) is False
        assert Call.objects.get(id=call.id).outcome == "failed"

    @override_settings(MAX_CALL_SECONDS=60)
    def test_a_call_live_past_the_maximum_is_hung_up_and_ended_failed(self, redis_client):
        call, t0 = placed({"_sim": [{"outcome": "connected", "ring_ms": 1000, "talk_ms": 600_000}]})
        run_until(t0 + 2_000)
        later = call.placed_at + dt.timedelta(seconds=61)
        assert check_call_with_carrier(call.id, now=later) is False
        call.refresh_from_db()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")
        # The hang-up replaced the call's remaining events with one immediate completed.
        run_until(t0 + 10_000_000)
        assert redis_client.zcard(simulator.DUE_KEY) == 0

    def test_an_ended_call_is_not_live(self):
        call, t0 = placed({"_sim": [{"outcome": "busy", "ring_ms": 1}]})
        run_until(t0 + 10)
        assert check_call_with_carrier(call.id) is False
