"""the two ordering layers of docs/product.md §1: callbacks, campaign priority, attempt tiers, time, random ties."""
import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.ordering import (
    Candidate, cut_behind_short_claims, order_candidates, ordering_key, rank_tier, within_campaign_key,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def minutes(n):
    return NOW + dt.timedelta(minutes=n)


def candidate(task_id, campaign_id=1, priority="normal", rank=0, eligible=-10, callback=None, tie_break=None):
    return Candidate(task_id=task_id, campaign_id=campaign_id, campaign_priority=priority, dispatch_rank=rank,
                     next_attempt_at=minutes(eligible), callback_at=None if callback is None else minutes(callback),
                     tie_break=task_id if tie_break is None else tie_break)


def ids(candidates):
    return [c.task_id for c in candidates]


def batch_campaign(count, seed):
    rng = random.Random(seed)
    firsts = [candidate(n, tie_break=rng.randrange(2**31)) for n in range(count)]
    seconds = [candidate(1000 + n, rank=1, eligible=-60, tie_break=rng.randrange(2**31)) for n in range(count)]
    return firsts + seconds


def test_100_equal_tasks_and_5_slots_give_5_random_first_attempts_stable_between_passes():
    picks = []
    for seed in (1, 2):
        tasks = batch_campaign(100, seed)
        first_pass = ids(order_candidates(tasks, NOW))[:5]
        assert first_pass == ids(order_candidates(list(reversed(tasks)), NOW))[:5]
        assert all(task_id < 100 for task_id in first_pass)
        picks.append(first_pass)
    assert picks[0] != picks[1]
    assert picks[0] != [0, 1, 2, 3, 4]


def test_every_first_attempt_goes_before_any_second_even_when_seconds_waited_longer():
    ordered = ids(order_candidates(batch_campaign(100, 3), NOW))
    assert all(task_id < 100 for task_id in ordered[:100])
    assert all(task_id >= 1000 for task_id in ordered[100:])


def test_a_due_callback_outranks_everything_in_every_campaign():
    ordered = order_candidates([
        candidate(1, 1, "high", eligible=-100),
        candidate(2, 2, "low", rank=5, eligible=-1, callback=-1),
        candidate(3, 3, "low", rank=5, eligible=-2, callback=-2),
        candidate(4, 1, "high", rank=9, eligible=-1, callback=-1, tie_break=0),
    ], NOW)
    assert ids(ordered) == [3, 4, 2, 1]


def test_a_callback_not_yet_due_waits_its_turn():
    ordered = order_candidates([candidate(1, rank=1, eligible=-5, callback=5), candidate(2, eligible=-1)], NOW)
    assert ids(ordered) == [2, 1]


def test_high_before_normal_before_low_between_campaigns():
    ordered = order_candidates([
        candidate(1, 1, "low", eligible=-100), candidate(2, 2, "normal", eligible=-50), candidate(3, 3, "high", eligible=-1),
    ], NOW)
    assert ids(ordered) == [3, 2, 1]


def test_within_one_priority_the_earliest_eligible_campaign_head_goes_first():
    ordered = order_candidates([
        candidate(1, 1, eligible=-5), candidate(2, 1, eligible=-4),
        candidate(3, 2, eligible=-30), candidate(4, 2, eligible=-3),
    ], NOW)
    assert ids(ordered) == [3, 1, 2, 4]


def test_the_attempt_layer_wins_inside_a_campaign_while_time_decides_between_campaigns():
    # Campaign 1's second attempt waited longest, but its first attempts go first; campaign 2's
    # first attempt became eligible between them, so it goes between them.
    ordered = order_candidates([
        candidate(1, 1, rank=1, eligible=-60), candidate(2, 1, rank=0, eligible=-10),
        candidate(3, 2, rank=0, eligible=-20),
    ], NOW)
    assert ids(ordered) == [3, 2, 1]


def test_realtime_attempt_priorities_higher_first():
    ordered = order_candidates([
        candidate(1, rank=-50, eligible=-60), candidate(2, rank=-100, eligible=-1), candidate(3, rank=0, eligible=-90),
    ], NOW)
    assert ids(ordered) == [2, 1, 3]


def test_ties_fall_by_tie_break():
    ordered = order_candidates([candidate(1, 1, tie_break=9), candidate(2, 2, tie_break=3)], NOW)
    assert ids(ordered) == [2, 1]


def test_keys_put_due_callbacks_first():
    due, plain = candidate(1, rank=3, callback=0), candidate(2, priority="high")
    assert ordering_key(due, NOW) < ordering_key(plain, NOW)
    assert within_campaign_key(due, NOW) < within_campaign_key(plain, NOW)


candidates = st.lists(
    st.builds(candidate, st.integers(0, 10**6), st.integers(1, 4), st.sampled_from(["low", "normal", "high"]),
              st.integers(0, 3), st.integers(-120, 0), st.one_of(st.none(), st.integers(-60, 60)),
              st.integers(0, 2**31 - 1)),
    max_size=40, unique_by=lambda c: c.task_id,
)


@given(candidates)
@settings(max_examples=200)
def test_order_keeps_each_campaign_in_its_own_order_and_every_head_choice_is_the_best(tasks):
    ordered = order_candidates(tasks, NOW)
    assert sorted(ids(ordered)) == sorted(ids(tasks))
    for campaign_id in {c.campaign_id for c in tasks}:
        stream = [c for c in ordered if c.campaign_id == campaign_id]
        assert stream == sorted(stream, key=lambda c: within_campaign_key(c, NOW))
    remaining = list(tasks)
    for chosen in ordered:
        heads = {}
        for c in remaining:
            if c.campaign_id not in heads or within_campaign_key(c, NOW) < within_campaign_key(heads[c.campaign_id], NOW):
                heads[c.campaign_id] = c
        assert chosen == min(heads.values(), key=lambda c: ordering_key(c, NOW))
        remaining.remove(chosen)


def test_nothing_ranked_below_a_short_claim_is_offered_once_its_own_candidates_are_used_up():
    h1, n1 = candidate(1, campaign_id=1, priority="high"), candidate(2, campaign_id=2, priority="normal")
    h_lost = candidate(3, campaign_id=1, priority="high")
    assert cut_behind_short_claims([h1, n1], {1: h_lost}, NOW) == ([h1], True)


def test_a_short_claim_with_nothing_left_holds_back_its_tier_but_not_a_due_callback():
    callback = candidate(1, campaign_id=2, priority="low", callback=-1)
    normal = candidate(2, campaign_id=3, priority="normal")
    lost = candidate(3, campaign_id=1, priority="normal")
    assert cut_behind_short_claims([callback, normal], {1: lost}, NOW) == ([callback], True)
    assert cut_behind_short_claims([callback, normal], {}, NOW) == ([callback, normal], False)


@given(candidates, st.data())
@settings(max_examples=200)
def test_a_cut_offers_a_prefix_and_never_an_equal_or_lower_tier_after_a_short_campaign_ran_out(tasks, data):
    ordered = order_candidates(tasks, NOW)
    campaign_ids = sorted({c.campaign_id for c in tasks} | {9})
    short = data.draw(st.sets(st.sampled_from(campaign_ids)))
    last_claimed = {campaign_id: data.draw(st.builds(
        candidate, st.just(10**7 + campaign_id), st.just(campaign_id), st.sampled_from(["low", "normal", "high"]),
        st.just(0), st.just(-10), st.one_of(st.none(), st.integers(-60, 60)))) for campaign_id in short}
    offered, cut = cut_behind_short_claims(ordered, last_claimed, NOW)
    assert ordered[:len(offered)] == offered and cut == (len(offered) < len(ordered))

    def outranked_at(index):  # a short campaign ran out before `index` and ranks as high as it
        return any(sum(c.campaign_id == campaign_id for c in ordered[:index])
                   == sum(c.campaign_id == campaign_id for c in ordered)
                   and ordered[index].campaign_id != campaign_id
                   and rank_tier(ordered[index], NOW) >= rank_tier(last, NOW)
                   for campaign_id, last in last_claimed.items())

    assert not any(outranked_at(index) for index in range(len(offered)))
    if cut:
        assert outranked_at(len(offered))
