"""Calls-per-second buckets per calling number (keyspace-level tests of lua/cps_take.lua and lua/cps_give_back.lua)."""
from telephony import cps
from telephony.cps import Turns

NUMBER = "+14155550100"


def test_a_number_may_start_its_rate_of_calls_at_once_then_waits_its_interval():
    now = 1_000_000
    assert cps.take_turns({NUMBER: (3, 5)}, now_ms=now) == {NUMBER: Turns(granted=3, wait_ms=334)}
    assert cps.take_turns({NUMBER: (3, 1)}, now_ms=now + 333) == {NUMBER: Turns(granted=0, wait_ms=1)}
    assert cps.take_turns({NUMBER: (3, 2)}, now_ms=now + 334) == {NUMBER: Turns(granted=1, wait_ms=333)}


def test_a_bucket_left_alone_refills_to_one_seconds_turns_and_no_more():
    now = 2_000_000
    assert cps.take_turns({NUMBER: (2, 2)}, now_ms=now)[NUMBER].granted == 2
    assert cps.take_turns({NUMBER: (2, 5)}, now_ms=now + 60_000)[NUMBER] == Turns(granted=2, wait_ms=500)


def test_numbers_have_separate_buckets():
    now = 5_000_000
    turns = cps.take_turns({NUMBER: (1, 2), "+14155550199": (1, 1)}, now_ms=now)
    assert turns == {NUMBER: Turns(granted=1, wait_ms=1000), "+14155550199": Turns(granted=1, wait_ms=1000)}


def test_turns_given_back_may_be_taken_again():
    now = 7_000_000
    assert cps.take_turns({NUMBER: (2, 2)}, now_ms=now)[NUMBER].granted == 2
    cps.give_back({NUMBER: (2, 1)})
    assert cps.take_turns({NUMBER: (2, 2)}, now_ms=now)[NUMBER] == Turns(granted=1, wait_ms=500)


def test_asking_for_no_turns_takes_none_and_tells_when_the_next_is_free():
    now = 9_000_000
    assert cps.take_turns({NUMBER: (1, 1)}, now_ms=now)[NUMBER].granted == 1
    assert cps.take_turns({NUMBER: (1, 0)}, now_ms=now + 400)[NUMBER] == Turns(granted=0, wait_ms=600)
