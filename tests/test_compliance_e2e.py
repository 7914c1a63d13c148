"""Legal hours with real processes: a Celery worker with beat and the simulated carrier (`Procfile`).

A realtime campaign open all day in UTC, in a workspace whose legal hours are shut now in New
York: a +1 212 number is held, not dialed; widening the legal hours gets it dialed within a
second or two, by the policy change's own nudge (its old opening is hours away).
"""
import pytest
from django.utils import timezone

from campaigns.actions.compliance import do_set_compliance_policy
from campaigns.actions.realtime import do_create_tasks
from campaigns.models import CampaignStatus, CampaignType, Task
from telephony.models import Call
from tests.factories import CampaignFactory, WorkspaceFactory
from tests.test_compliance import hours_shut_now_in_new_york
from bench.live_system import LiveSystem, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_held_new_york_number_is_dialed_within_seconds_of_widening_the_legal_hours(redis_client):
    workspace = WorkspaceFactory()
    campaign = CampaignFactory(workspace=workspace, type=CampaignType.REALTIME, status=CampaignStatus.RUNNING)
    do_set_compliance_policy(workspace, {"legalHours": hours_shut_now_in_new_york()})
    elsewhere = CampaignFactory(type=CampaignType.REALTIME, status=CampaignStatus.RUNNING)  # no policy
    with LiveSystem(time_scale=0.01):
        [task] = do_create_tasks(workspace, [{"phone": "+12125550100", "campaign": str(campaign.id),
                                              "context": {"_sim": [{"outcome": "connected"}]}}])
        [other] = do_create_tasks(elsewhere.workspace, [{"phone": "+12125550101", "campaign": str(elsewhere.id)}])
        wait_until(lambda: Call.objects.filter(task_id=other.id).exists(), timeout=60,
                   message="the workers to be up (another workspace's task dialed)")
        assert Task.objects.get(id=task.id).held_by == "legal_hours"
        assert Task.objects.get(id=task.id).next_attempt_at > timezone.now()
        assert not Call.objects.filter(task_id=task.id).exists()
        do_set_compliance_policy(workspace, {"legalHours": {"start": 0, "end": 2400}})
        wait_until(lambda: Call.objects.filter(task_id=task.id).exists(), timeout=2.5, interval=0.05,
                   message="the widened legal hours to get the task dialed")
    assert Call.objects.get(task_id=task.id).to_number == "+12125550100"
