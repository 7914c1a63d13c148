"""The dispatcher in-process: passes, admission order, re-checks, finishing attempts.

Dial jobs are run by calling what the job calls (`place_admitted_calls`); the simulated carrier's
events are applied with `process_due_events` at a chosen time, so every step is deterministic.
"""
import datetime as dt

import pytest
from django.utils import timezone

from campaigns.actions.controls import do_pause_campaign
from campaigns.models import CampaignStatus, CampaignType, DoNotCall, Task, TaskStatus
from dialer import keys, slots
from dialer.attempts import do_finish_attempt
from config.queues import Queue
from dialer.dispatch_lock import DispatchLock, nudge_dispatcher
from dialer.dispatcher import dispatch_organisation, dispatch_pass
from dialer.maintenance import place_admitted_calls
from telephony.models import LIVE_CALL_STATUSES, Call, CallStatus
from telephony.simulator import process_due_events
from tests.factories import CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory
from tests.simulated_calls import wait_past_call_ends

pytestmark = pytest.mark.django_db

FAR_FUTURE_MS = 2**52


def script(*outcomes):
    return {"_sim": [{"outcome": outcome, "ring_ms": 10, "talk_ms": 10} for outcome in outcomes]}


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run one dispatcher pass and its commit hooks; returns the calls it admitted."""
    def run_pass(organisation_id, now=None):
        before = set(Call.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            dispatch_pass(organisation_id, now or timezone.now())
        return list(Call.objects.exclude(id__in=before).select_related("task"))
    return run_pass


@pytest.fixture
def finish_all(django_capture_on_commit_callbacks):
    """Place every admitted call and let the simulated carrier end them all."""
    def finish():
        admitted = [str(i) for i in Call.objects.filter(status=CallStatus.ADMITTED).values_list("id", flat=True)]
        with django_capture_on_commit_callbacks(execute=True):
            place_admitted_calls(admitted)
            process_due_events(now_ms=FAR_FUTURE_MS, limit=100_000)
        wait_past_call_ends()
    return finish


def live_calls(organisation_id=None):
    calls = Call.objects.filter(status__in=LIVE_CALL_STATUSES)
    return calls.filter(organisation_id=organisation_id).count() if organisation_id else calls.count()


def make_campaign(workspace=None, **fields):
    fields.setdefault("retry_interval_ms", 0)
    fields.setdefault("status", CampaignStatus.RUNNING)
    return CampaignFactory(workspace=workspace or WorkspaceFactory(), **fields)


def org_of(campaign):
    return campaign.workspace.organisation_id


class TestWorkedExample:
    def test_five_slots_take_five_random_first_attempts_and_all_firsts_go_before_any_second(self, run, finish_all):
        campaign = make_campaign(slots=5, max_retries=1)
        TaskFactory.create_batch(100, campaign=campaign, context=script("no-answer", "connected"))
        order = []
        for _ in range(60):
            admitted = run(org_of(campaign))
            assert live_calls() <= 5
            order += [call.attempt for call in sorted(admitted, key=lambda c: c.created_at)]
            if not admitted and not Task.objects.filter(status=TaskStatus.QUEUED).exists():
                break
            finish_all()
        assert order == [1] * 100 + [2] * 100
        assert Task.objects.filter(status=TaskStatus.COMPLETED, completion_reason="connected").count() == 100

    def test_the_first_five_depend_on_the_random_tie_break(self, run):
        campaign = make_campaign(slots=5)
        tasks = TaskFactory.create_batch(100, campaign=campaign, next_attempt_at=timezone.now() - dt.timedelta(minutes=1))
        admitted = {call.task_id for call in run(org_of(campaign))}
        expected = {t.id for t in sorted(tasks, key=lambda t: t.tie_break)[:5]}
        assert admitted == expected


class TestOrdering:
    def test_high_priority_campaign_is_served_before_normal(self, run):
        workspace = WorkspaceFactory(slots=2, slot_mode="hard")
        normal = make_campaign(workspace, priority="normal", slots=2)
        high = make_campaign(workspace, priority="high", slots=2)
        earlier = timezone.now() - dt.timedelta(hours=1)
        TaskFactory.create_batch(3, campaign=normal, next_attempt_at=earlier)
        TaskFactory.create_batch(3, campaign=high)
        admitted = run(workspace.organisation_id)
        assert {call.campaign_id for call in admitted} == {high.id}
        assert len(admitted) == 2

    def test_a_due_callback_outranks_a_high_priority_campaign_and_goes_to_the_callback_queue(self, run, redis_client):
        workspace = WorkspaceFactory(slots=1, slot_mode="hard")
        low = make_campaign(workspace, priority="low", slots=1, max_retries=1)
        high = make_campaign(workspace, priority="high", slots=1)
        TaskFactory.create_batch(3, campaign=high)
        now = timezone.now()
        callback = TaskFactory(campaign=low, attempts_made=1, callback_at=now - dt.timedelta(seconds=1),
                               next_attempt_at=now - dt.timedelta(seconds=1), dispatch_rank=-(2**31))
        admitted = run(workspace.organisation_id, now)
        assert [call.task_id for call in admitted] == [callback.id]
        assert admitted[0].is_callback and admitted[0].attempt == 2
        assert redis_client.llen("dial.callback") == 1 and redis_client.llen("dial.high") == 0


class TestRechecks:
    def test_numbers_on_the_do_not_call_list_are_archived_not_dialed(self, run):
        campaign = make_campaign()
        task = TaskFactory(campaign=campaign)
        DoNotCall.objects.create(organisation_id=org_of(campaign), phone=task.phone)
        assert run(org_of(campaign)) == []
        task.refresh_from_db()
        assert (task.status, task.completion_reason) == (TaskStatus.ARCHIVED, "dnc")

    def test_one_number_is_never_live_twice_in_an_organisation(self, run):
        workspace = WorkspaceFactory()
        first, second = make_campaign(workspace), make_campaign(workspace)
        TaskFactory(campaign=first, phone="+442071230000")
        TaskFactory(campaign=second, phone="+442071230000")
        assert len(run(workspace.organisation_id)) == 1
        assert len(run(workspace.organisation_id)) == 0
        assert Task.objects.filter(status=TaskStatus.QUEUED).count() == 1

    def test_a_task_outside_its_calling_hours_waits_for_the_window(self, run):
        now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
        campaign = make_campaign(calling_start=dt.time(14, 0), calling_end=dt.time(16, 0), start_at=now - dt.timedelta(days=1))
        task = TaskFactory(campaign=campaign, next_attempt_at=now - dt.timedelta(minutes=5))
        assert run(org_of(campaign), now) == []
        task.refresh_from_db()
        assert task.status == TaskStatus.QUEUED and task.next_attempt_at == now.replace(hour=14)
        assert len(run(org_of(campaign), now.replace(hour=14, minute=1))) == 1

    def test_a_campaign_past_its_end_is_not_dialed(self, run):
        now = timezone.now()
        campaign = make_campaign(start_at=now - dt.timedelta(days=2), end_at=now - dt.timedelta(seconds=1))
        TaskFactory(campaign=campaign)
        assert run(org_of(campaign), now) == []

    def test_a_task_whose_own_end_has_passed_is_archived(self, run):
        now = timezone.now()
        campaign = make_campaign(type=CampaignType.REALTIME, start_at=now - dt.timedelta(days=1))
        task = TaskFactory(campaign=campaign, start_after=now - dt.timedelta(hours=2), end_after=now - dt.timedelta(hours=1),
                           next_attempt_at=now - dt.timedelta(hours=2))
        assert run(org_of(campaign), now) == []
        task.refresh_from_db()
        assert (task.status, task.completion_reason) == (TaskStatus.ARCHIVED, "ended")

    def test_a_scheduled_campaign_starts_running_with_its_first_call(self, run):
        campaign = make_campaign(status=CampaignStatus.SCHEDULED)
        TaskFactory(campaign=campaign)
        run(org_of(campaign))
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.RUNNING

    def test_a_campaign_that_has_not_started_yet_is_not_dialed(self, run):
        campaign = make_campaign(status=CampaignStatus.SCHEDULED, start_at=timezone.now() + dt.timedelta(hours=1))
        TaskFactory(campaign=campaign)
        assert run(org_of(campaign)) == []


class TestSlots:
    def test_a_hard_workspace_never_exceeds_its_allocation_even_with_idle_capacity(self, run):
        organisation = OrganisationFactory(total_slots=10)
        hard = WorkspaceFactory(organisation=organisation, slots=3, slot_mode="hard")
        campaign = make_campaign(hard, slots=3, slot_mode="soft")
        TaskFactory.create_batch(10, campaign=campaign)
        assert len(run(organisation.id)) == 3

    def test_a_soft_workspace_borrows_idle_capacity_but_not_a_waiting_siblings_share(self, run):
        organisation = OrganisationFactory(total_slots=10)
        soft = WorkspaceFactory(organisation=organisation, slots=4, slot_mode="soft")
        other = WorkspaceFactory(organisation=organisation, slots=4, slot_mode="hard")
        borrower = make_campaign(soft, slots=4, slot_mode="soft")
        TaskFactory.create_batch(20, campaign=borrower)
        assert len(run(organisation.id)) == 10  # nobody else waits: all idle capacity is borrowed

        Call.objects.update(status=CallStatus.ENDED, outcome="connected")
        for call in Call.objects.all():
            slots.release(organisation.id, str(call.id), call.lease_token)
        sibling = make_campaign(other, slots=4)
        TaskFactory.create_batch(4, campaign=sibling)
        admitted = run(organisation.id)
        by_campaign = {c: sum(1 for call in admitted if call.campaign_id == c) for c in (borrower.id, sibling.id)}
        assert by_campaign == {borrower.id: 6, sibling.id: 4}

    def test_leases_are_rebuilt_after_redis_loses_its_data_before_admitting_again(self, run, redis_client):
        campaign = make_campaign(slots=3)
        TaskFactory.create_batch(6, campaign=campaign)
        assert len(run(org_of(campaign))) == 3
        redis_client.flushdb()
        assert run(org_of(campaign)) == []
        assert live_calls() == 3
        assert slots.usage(org_of(campaign))["campaigns"][campaign.id]["used"] == 3


class TestFinishingAttempts:
    def test_a_no_answer_is_retried_after_the_interval(self, run, finish_all):
        campaign = make_campaign(max_retries=1, retry_interval_ms=600_000)
        task = TaskFactory(campaign=campaign, context=script("no-answer", "connected"))
        run(org_of(campaign))
        finish_all()
        task.refresh_from_db()
        call = task.calls.get()
        assert (task.status, task.attempts_made, task.last_outcome) == (TaskStatus.QUEUED, 1, "no-answer")
        assert task.next_attempt_at == call.ended_at + dt.timedelta(minutes=10)
        assert run(org_of(campaign)) == []  # not before the interval

    def test_voicemail_is_retried_only_when_listed(self, run, finish_all):
        listed = make_campaign(max_retries=2, retry_outcomes=["voicemail"])
        unlisted = make_campaign(workspace=listed.workspace, max_retries=2)
        retried = TaskFactory(campaign=listed, context=script("voicemail"))
        final = TaskFactory(campaign=unlisted, context=script("voicemail"))
        run(listed.workspace.organisation_id)
        finish_all()
        retried.refresh_from_db(), final.refresh_from_db()
        assert retried.status == TaskStatus.QUEUED
        assert (final.status, final.final_outcome) == (TaskStatus.COMPLETED, "voicemail")

    def test_attempts_never_exceed_the_limit(self, run, finish_all):
        campaign = make_campaign(max_retries=2)
        task = TaskFactory(campaign=campaign, context=script("busy", "busy", "busy", "busy"))
        for _ in range(5):
            run(org_of(campaign))
            finish_all()
        task.refresh_from_db()
        assert (task.status, task.completion_reason, task.attempts_made) == (TaskStatus.COMPLETED, "exhausted", 3)
        assert task.calls.count() == 3

    def test_opt_out_adds_the_number_to_the_do_not_call_list(self, run, finish_all):
        campaign = make_campaign()
        task = TaskFactory(campaign=campaign, context=script("opt-out"))
        run(org_of(campaign))
        finish_all()
        assert DoNotCall.objects.filter(organisation_id=org_of(campaign), phone=task.phone).exists()

    def test_a_call_ending_while_the_campaign_is_paused_leaves_its_task_paused(self, run, finish_all):
        campaign = make_campaign(max_retries=1)
        task = TaskFactory(campaign=campaign, context=script("no-answer", "connected"))
        run(org_of(campaign))
        do_pause_campaign(campaign)
        finish_all()
        task.refresh_from_db()
        assert task.status == TaskStatus.PAUSED

    def test_finishing_the_same_attempt_twice_changes_nothing_the_second_time(self, run, finish_all):
        campaign = make_campaign(max_retries=3)
        task = TaskFactory(campaign=campaign, context=script("no-answer", "no-answer"))
        run(org_of(campaign))
        finish_all()
        call = task.calls.get()
        task.refresh_from_db()
        before = (task.status, task.attempts_made, task.next_attempt_at)
        do_finish_attempt(call.id, "connected", call.ended_at)
        task.refresh_from_db()
        assert (task.status, task.attempts_made, task.next_attempt_at) == before

    def test_a_finished_call_frees_its_slot_for_the_next_task(self, run, finish_all):
        campaign = make_campaign(slots=1)
        TaskFactory.create_batch(2, campaign=campaign, context=script("connected"))
        assert len(run(org_of(campaign))) == 1
        assert run(org_of(campaign)) == []
        finish_all()
        assert len(run(org_of(campaign))) == 1

    def test_a_redelivered_dial_job_places_no_second_call(self, run):
        campaign = make_campaign()
        TaskFactory(campaign=campaign, context=script("connected"))
        call = run(org_of(campaign))[0]
        place_admitted_calls([str(call.id)])
        call.refresh_from_db()
        carrier_call_id = call.carrier_call_id
        place_admitted_calls([str(call.id)])
        call.refresh_from_db()
        assert call.carrier_call_id == carrier_call_id and call.status == CallStatus.DIALING


class TestRunCost:
    def test_a_pass_costs_the_same_number_of_queries_whatever_the_backlog(self, run, django_assert_num_queries):
        small, large = make_campaign(slots=2), make_campaign(slots=2)
        TaskFactory.create_batch(3, campaign=small)
        TaskFactory.create_batch(300, campaign=large)
        counts = []
        for campaign in (small, large):
            from django.db import connection
            from django.test.utils import CaptureQueriesContext
            with CaptureQueriesContext(connection) as queries:
                run(org_of(campaign))
            counts.append(len(queries))
        assert counts[0] == counts[1]

    def test_dispatch_organisation_runs_passes_until_nothing_is_admitted(self, django_capture_on_commit_callbacks):
        campaign = make_campaign(slots=4)
        TaskFactory.create_batch(10, campaign=campaign)
        with django_capture_on_commit_callbacks(execute=True):
            admitted = dispatch_organisation(org_of(campaign))
        assert admitted == 4 and live_calls() == 4


class TestSingleFlight:
    def test_a_run_that_finds_the_lock_taken_leaves_a_rerun_mark_and_admits_nothing(
            self, redis_client, django_capture_on_commit_callbacks):
        campaign = make_campaign(slots=4)
        TaskFactory.create_batch(2, campaign=campaign)
        redis_client.set(keys.dispatch_lock(org_of(campaign)), "someone else")
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_organisation(org_of(campaign)) == 0
        assert redis_client.exists(keys.dispatch_rerun(org_of(campaign)))
        assert live_calls() == 0

    def test_a_run_that_finds_the_lock_taken_runs_itself_once_the_holder_has_released_it(
            self, monkeypatch, django_capture_on_commit_callbacks):
        campaign = make_campaign(slots=4)
        TaskFactory.create_batch(3, campaign=campaign)
        real_enter = DispatchLock.__enter__
        attempts = []

        def held_at_first(lock):  # the holder releases between this run's two attempts
            attempts.append(lock)
            return False if len(attempts) == 1 else real_enter(lock)

        monkeypatch.setattr(DispatchLock, "__enter__", held_at_first)
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_organisation(org_of(campaign)) == 3
        assert live_calls() == 3

    def test_the_holder_acts_on_a_rerun_mark_left_as_it_released_the_lock(
            self, monkeypatch, redis_client, django_capture_on_commit_callbacks):
        campaign = make_campaign(slots=4)
        TaskFactory.create_batch(2, campaign=campaign)
        real_exit = DispatchLock.__exit__
        releases = []

        def mark_left_after_last_check(lock, *exc):  # tasks added, and their run found the lock taken
            real_exit(lock, *exc)
            releases.append(lock)
            if len(releases) == 1:
                TaskFactory.create_batch(2, campaign=campaign)
                redis_client.set(keys.dispatch_rerun(org_of(campaign)), 1)
            return False

        monkeypatch.setattr(DispatchLock, "__exit__", mark_left_after_last_check)
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_organisation(org_of(campaign)) == 4
        assert live_calls() == 4 and not redis_client.exists(keys.dispatch_rerun(org_of(campaign)))

    def test_a_nudge_while_a_run_holds_the_lock_publishes_no_job_and_the_holder_makes_another_pass(
            self, monkeypatch, redis_client, django_capture_on_commit_callbacks):
        campaign = make_campaign(slots=4)
        TaskFactory.create_batch(2, campaign=campaign)
        real_exit = DispatchLock.__exit__
        releases = []

        def call_ends_during_the_run(lock, *exc):  # new work, and its nudge, before the release
            if not releases:
                TaskFactory.create_batch(2, campaign=campaign)
                nudge_dispatcher(org_of(campaign))
            releases.append(lock)
            return real_exit(lock, *exc)

        monkeypatch.setattr(DispatchLock, "__exit__", call_ends_during_the_run)
        with django_capture_on_commit_callbacks(execute=True):
            assert dispatch_organisation(org_of(campaign)) == 4
        assert live_calls() == 4 and len(releases) == 2
        assert redis_client.llen(str(Queue.EVENTS)) == 0  # no dispatch job was published

    def test_a_nudge_with_no_run_under_way_publishes_one_dispatch_job(self, redis_client):
        campaign = make_campaign(slots=4)
        nudge_dispatcher(org_of(campaign))
        nudge_dispatcher(org_of(campaign))
        assert redis_client.llen(str(Queue.EVENTS)) == 1


class TestUpkeep:
    def test_a_lease_whose_call_ended_without_releasing_it_is_freed_by_the_reaper(self, run, finish_all):
        from dialer.maintenance import release_orphan_leases

        campaign = make_campaign(slots=2)
        TaskFactory.create_batch(2, campaign=campaign, context=script("connected"))
        lost, kept = run(org_of(campaign))
        Call.objects.filter(id=lost.id).update(status=CallStatus.ENDED, outcome="connected")  # its release was lost
        later = timezone.now() + dt.timedelta(minutes=2)
        assert release_orphan_leases(org_of(campaign), timezone.now()) == []  # too young to judge
        assert release_orphan_leases(org_of(campaign), later) == [str(lost.id)]
        assert slots.usage(org_of(campaign))["campaigns"][campaign.id]["used"] == 1
        assert set(slots.lease_records(org_of(campaign))) == {str(kept.id)}


class TestCampaignCompletion:
    def test_a_batch_campaign_completes_when_its_last_task_is_archived_by_the_do_not_call_check(self, run):
        campaign = make_campaign(contacts_uploaded_at=timezone.now())
        task = TaskFactory(campaign=campaign)
        DoNotCall.objects.create(organisation_id=org_of(campaign), phone=task.phone)
        run(org_of(campaign))
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.COMPLETED

    def test_dispatcher_runs_are_counted_for_the_metrics(self, redis_client, django_capture_on_commit_callbacks):
        from dialer.metrics import ADMISSIONS_KEY

        campaign = make_campaign(slots=2)
        TaskFactory.create_batch(3, campaign=campaign)
        with django_capture_on_commit_callbacks(execute=True):
            dispatch_organisation(org_of(campaign))
        assert int(redis_client.hget(ADMISSIONS_KEY, org_of(campaign))) == 2


def test_a_run_for_an_organisation_deleted_since_its_nudge_admits_nothing():
    organisation = OrganisationFactory()
    organisation_id = organisation.id
    organisation.delete()
    assert dispatch_organisation(organisation_id) == 0


class TestStatements:
    def test_a_small_runs_joins_are_planned_once_per_connection_and_a_large_pass_for_its_own_values(
            self, django_capture_on_commit_callbacks):
        from django.db import connection

        from dialer import dispatcher, platform_limits, wakeups

        campaign = make_campaign(slots=60, workspace=WorkspaceFactory(slots=60, organisation__total_slots=60))
        TaskFactory.create_batch(2, campaign=campaign)
        run_sql = []

        def record(execute, sql, params, many, context):
            run_sql.append(sql)
            return execute(sql, params, many, context)

        def dispatch():
            run_sql.clear()
            with connection.execute_wrapper(record), django_capture_on_commit_callbacks(execute=True):
                return dispatch_organisation(org_of(campaign))

        assert dispatch() == 2
        by_name = {sql.split("(")[0].removeprefix("EXECUTE ") for sql in run_sql if sql.startswith("EXECUTE ")}
        hot = {slots.ALLOCATION_TREE, dispatcher.DIALABLE_CAMPAIGNS, dispatcher.CANDIDATES,
               dispatcher.OPEN_CALL_NUMBERS, platform_limits.ROOM, dispatcher.RECORD_ATTEMPTS, wakeups.NEXT_WAKEUPS}
        assert {statement.name for statement in hot} <= by_name
        TaskFactory.create_batch(40, campaign=campaign)
        assert dispatch() == 40
        assert dispatcher.RECORD_ATTEMPTS.sql in run_sql  # 40 admissions: planned as they are
