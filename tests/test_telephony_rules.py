"""Pure telephony rules: properties of the merge and ordering rules, and their worked examples."""
import doctest

import pytest
from hypothesis import given, strategies as st

from telephony import rules, simulator, webhooks_out
from telephony.providers import twilio
from campaigns.prompts import render_prompt
from telephony.rules import STATUS_RANK, EventKind, merge_outcome, status_after

CARRIER_STATUSES = ["completed", "no-answer", "busy", "failed", "canceled"]
ANSWERED_BY = ["", "human", "unknown", "machine_start", "machine_end_beep", "fax"]
AGENT_OUTCOMES = ["", "connected", "callback", "opt-out", "silent", "interested"]
PROGRESS = [EventKind.INITIATED, EventKind.RINGING, EventKind.ANSWERED, EventKind.MACHINE_DETECTED]
LIVE = ["admitted", "dialing", "ringing", "answered"]


@pytest.mark.parametrize("module", [rules, simulator, webhooks_out, twilio])
def test_worked_examples_in_docstrings_hold(module):
    assert doctest.testmod(module).failed == 0


@given(st.sampled_from(CARRIER_STATUSES), st.booleans(), st.sampled_from(ANSWERED_BY),
       st.sampled_from(AGENT_OUTCOMES))
def test_the_agent_decides_only_answered_human_calls(carrier_status, answered, answered_by, agent_outcome):
    outcome, callback_at = merge_outcome(carrier_status, answered, answered_by, agent_outcome, "T")
    if carrier_status != "completed" and not (answered and carrier_status not in rules.UNANSWERED_OUTCOMES):
        assert outcome == {"no-answer": "no-answer", "busy": "busy", "failed": "failed",
                           "canceled": "no-answer"}[carrier_status]
    elif rules.is_machine(answered_by):
        assert outcome == "voicemail"
    else:
        assert outcome == (agent_outcome or "connected")
    assert (callback_at == "T") == (outcome == "callback")


@given(st.sampled_from(LIVE), st.lists(st.sampled_from(PROGRESS), max_size=8))
def test_progress_events_never_move_a_call_backwards(start, kinds):
    status = start
    for kind in kinds:
        after = status_after(status, kind)
        if after is not None:
            assert STATUS_RANK[after] >= STATUS_RANK[status]
            status = after


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=10), max_size=4))
def test_every_supplied_variable_is_rendered_and_none_is_left_over(context):
    template = " ".join(f"${{{name}}}" for name in context) + " ${_sim}"
    rendered = render_prompt(template, {**context, "_sim": "[]"})
    assert rendered == " ".join(context.values()) + " "
