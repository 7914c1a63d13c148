"""Tasks stored with COPY come back exactly as they were built."""
import datetime as dt

import pytest
from django.utils import timezone
from hypothesis import given, settings, strategies as st

from campaigns.models import Task
from campaigns.actions.task_store import insert_tasks
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

awkward_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30)


def test_every_column_round_trips_including_awkward_characters():
    campaign = CampaignFactory()
    now = timezone.now().replace(microsecond=123456)
    built = Task(campaign=campaign, phone="+442071838750",
                 context={"name": 'Zoë "the\\tab"\there\nnext', "ünïcode": "日本", "n": 3},
                 submitted_config={"retries": 2}, timezone="Asia/Kolkata", calling_start=dt.time(9, 30),
                 calling_end=dt.time(18, 0), start_after=now, end_after=now + dt.timedelta(days=1), max_attempts=2,
                 intervals_ms=[180000], priorities=[100, -5], retry_outcomes=["voicemail", 'odd "one"\\'],
                 next_attempt_at=now, dispatch_rank=-100)
    others = [Task(campaign=campaign, phone=f"+4420718386{n:02d}", next_attempt_at=now) for n in range(30)]
    insert_tasks([built, *others])  # enough rows to go through COPY
    stored = Task.objects.get(id=built.id)
    for field in Task._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(built, field.attname), field.name


def test_a_few_tasks_are_inserted_in_one_statement(django_assert_num_queries):
    campaign = CampaignFactory()
    with django_assert_num_queries(1):
        tasks = insert_tasks([Task(campaign=campaign, phone="+442071838750", next_attempt_at=timezone.now())])
    assert Task.objects.get(id=tasks[0].id).phone == "+442071838750"


def test_ids_are_assigned_in_order_and_instances_are_saved():
    campaign = CampaignFactory()
    tasks = insert_tasks([Task(campaign=campaign, phone=f"+4420718387{n:02d}", next_attempt_at=timezone.now())
                          for n in range(25)])
    assert [t.id for t in tasks] == sorted(t.id for t in tasks)
    assert not tasks[0]._state.adding
    assert list(Task.objects.filter(campaign=campaign).order_by("id").values_list("phone", flat=True)) == \
        [t.phone for t in tasks]


@settings(max_examples=40, deadline=None)
@given(context=st.dictionaries(awkward_text, awkward_text, max_size=4), outcomes=st.lists(awkward_text, max_size=3))
def test_any_text_in_context_and_outcomes_round_trips(context, outcomes):
    campaign = CampaignFactory()
    built = insert_tasks([Task(campaign=campaign, phone="+442071838750", context=context, retry_outcomes=outcomes,
                               next_attempt_at=timezone.now()) for _ in range(20)])[0]
    stored = Task.objects.get(id=built.id)
    assert (stored.context, stored.retry_outcomes) == (context, outcomes)
