"""Calls-per-second limit per calling number (keyspace-level tests of lua/cps_take.lua, and the dial path)."""
import pytest

from telephony import cps
from telephony.calls import place_call
from telephony.models import CallStatus
from tests.factories import CallFactory, CampaignFactory, TaskFactory


def test_a_number_may_start_its_rate_of_calls_at_once_then_waits_its_interval():
    now = 1_000_000
    assert [cps.take("+14155550100", 3, now_ms=now) for _ in range(3)] == [0, 0, 0]
    assert cps.take("+14155550100", 3, now_ms=now) == 334
    assert cps.take("+14155550100", 3, now_ms=now + 334) == 0
    assert cps.take("+14155550100", 3, now_ms=now + 334) > 0


def test_numbers_have_separate_buckets():
    now = 5_000_000
    assert cps.take("+14155550100", 1, now_ms=now) == 0
    assert cps.take("+14155550100", 1, now_ms=now) > 0
    assert cps.take("+14155550199", 1, now_ms=now) == 0


def test_waiting_for_a_turn_sleeps_for_what_the_bucket_says():
    slept = []
    for _ in range(2):
        assert cps.wait_for_turn("+14155550111", 2, sleep=slept.append)
    assert slept == []
    assert cps.wait_for_turn("+14155550111", 2, sleep=lambda s: (slept.append(s), __import__("time").sleep(s)))
    assert len(slept) == 1 and 0 < slept[0] <= 0.5


@pytest.mark.django_db
def test_a_call_that_gets_no_turn_within_the_limit_fails_instead_of_dialing(monkeypatch):
    campaign = CampaignFactory()
    number = campaign.calling_number
    number.calls_per_second = 1
    number.save(update_fields=["calls_per_second"])
    monkeypatch.setattr(cps, "MAX_WAIT_SECONDS", 0)
    cps.take(number.number, 1)  # someone else just used this second's turn
    call = CallFactory(task=TaskFactory(campaign=campaign, context={"_sim": [{"outcome": "connected"}]}))
    place_call(str(call.id))
    call.refresh_from_db()
    assert call.status == CallStatus.ENDED and call.outcome == "failed" and not call.carrier_call_id
