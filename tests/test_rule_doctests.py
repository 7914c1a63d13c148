"""The worked examples in the rule modules' docstrings are run, so they cannot drift from the code."""
import doctest

import pytest

from campaigns import json_values, phone_numbers, prompts
from dialer import compliance, eligibility, lifecycle, ordering, retry_policy, slot_model, wakeups, windows
from campaigns.actions import integrations
from telephony import platform_rules, rules


@pytest.mark.parametrize("module", [json_values, phone_numbers, prompts, compliance, eligibility, lifecycle, ordering, retry_policy,
                                    slot_model, wakeups, windows, rules, platform_rules, integrations],
                         ids=lambda module: module.__name__)
def test_worked_examples_hold(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted and not result.failed
