"""Controls on large campaigns: the campaign changes at once, its tasks in batches off the request.

The control job is driven batch by batch (`do_control_batch`), with dispatcher passes in between,
so every interleaving the tests name is reproduced exactly. Batches are made tiny (2 tasks in the
request, 3 per job batch) so a handful of tasks spans several batches.
"""
import datetime as dt
import inspect
import random
import threading
import time

import psycopg2

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.actions import control_jobs
from campaigns.actions.control_jobs import do_control_batch, do_split_control, resume_stalled_controls, run_control
from campaigns.actions.controls import (
    do_archive_campaign, do_finish_ended_campaigns, do_pause_campaign, do_resume_campaign, do_update_campaign,
)
from campaigns.models import LAST_TASK_ID, CampaignControl, CampaignControlPart, CampaignStatus, CampaignType, Task, TaskStatus
from config.jobs import Job
from dialer.dispatcher import dispatch_pass
from dialer.scheduling import first_attempt_at, next_attempt_after, resolve_config
from dialer.windows import is_open, next_opening
from telephony.models import Call
from tests.db_sessions import another_session
from tests.factories import (
    ApiKeyFactory, CallFactory, CampaignFactory, OrganisationMemberFactory, TaskFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def small_batches(settings):
    settings.CONTROL_INLINE_TASKS = 2
    settings.CONTROL_BATCH_TASKS = 3


@pytest.fixture
def published(monkeypatch):
    """Control jobs published, as their arguments: (control id,) or (control id, part id). Nothing
    consumes them unless a test does (`run_jobs`)."""
    messages = []

    def record(job, *args, **kwargs):
        assert job == Job.RUN_CONTROL and set(kwargs) <= {"part_id"}
        messages.append((*args, *kwargs.values()))

    monkeypatch.setattr(control_jobs, "enqueue", record)
    return messages


def run_jobs(published):
    """Consume the published control jobs, first in first out as a worker does, until none is left;
    returns how many ran."""
    count = 0
    while published:
        run_control(*published.pop(0))
        count += 1
    return count


def run_control_of(campaign, published):
    """Run the campaign's running control to its end through its jobs: the message its request
    publishes on commit (which a test's transaction never reaches), then every job published since."""
    published.append((running_control(campaign).id,))
    return run_jobs(published)


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """One dispatcher pass for the campaign's organisation; returns the task ids it admitted."""
    def run_pass(campaign):
        before = set(Call.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            dispatch_pass(campaign.workspace.organisation_id, timezone.now())
        return set(Call.objects.exclude(id__in=before).values_list("task_id", flat=True))
    return run_pass


def campaign_with(count, status=CampaignStatus.RUNNING, task_status=TaskStatus.QUEUED, **fields):
    fields.setdefault("slots", 50)
    campaign = CampaignFactory(workspace=WorkspaceFactory(slots=50), status=status, **fields)
    TaskFactory.create_batch(count, campaign=campaign, status=task_status)
    return campaign


def running_control(campaign):
    return CampaignControl.objects.get(campaign=campaign, finished_at=None)


def whole_part(campaign):
    """The one part of the campaign's running control (not split: its jobs were driven batch by batch)."""
    return CampaignControlPart.objects.get(control__campaign=campaign, control__finished_at=None)


def statuses(campaign):
    return sorted(campaign.tasks.values_list("status", flat=True))


def batches(control_id, between=lambda: None):
    """Run the job one batch at a time, calling `between` after each; returns the batches run."""
    count = 0
    while True:
        more = do_control_batch(control_id)
        count += 1
        between()
        if not more:
            return count


def closed_window_now():
    """A daily window (UTC) that opens in two hours, so it is shut for the next two."""
    hour = (timezone.now() + dt.timedelta(hours=2)).hour
    return dt.time(hour), dt.time((hour + 1) % 24)


class TestPause:
    def test_no_call_starts_after_pause_returns_while_tasks_are_still_being_paused(
            self, run, published, django_capture_on_commit_callbacks):
        campaign = campaign_with(10)
        with django_capture_on_commit_callbacks(execute=True):
            assert do_pause_campaign(campaign) == 2
        assert campaign.tasks.filter(status=TaskStatus.QUEUED).count() == 8
        assert run(campaign) == set()
        control = running_control(campaign)
        assert published == [(control.id,)]
        assert batches(control.id, between=lambda: run(campaign) == set() or pytest.fail("a call started")) == 3
        assert statuses(campaign) == ["paused"] * 10
        assert not CampaignControl.objects.filter(finished_at=None).exists()

    def test_a_campaign_smaller_than_one_batch_is_paused_before_the_answer_with_no_job(
            self, published, django_capture_on_commit_callbacks):
        campaign = campaign_with(1)
        with django_capture_on_commit_callbacks(execute=True):
            assert do_pause_campaign(campaign) == 1
        assert statuses(campaign) == ["paused"]
        assert published == [] and not CampaignControl.objects.filter(finished_at=None).exists()

    def test_a_call_ending_while_the_pause_runs_sends_its_task_to_paused(self, run, published, django_capture_on_commit_callbacks):
        from dialer.attempts import do_finish_attempt

        campaign = campaign_with(6, max_retries=1, retry_interval_ms=0, slots=1)
        live = run(campaign).pop()
        do_pause_campaign(campaign)
        call = Call.objects.get(task_id=live)
        with django_capture_on_commit_callbacks(execute=True):
            do_finish_attempt(call.id, "no-answer", timezone.now())
        assert Task.objects.get(id=live).status == TaskStatus.PAUSED
        run_control_of(campaign, published)
        assert statuses(campaign).count("paused") == 6

@pytest.mark.parametrize("control", ["pause", "resume", "archive", "update"])
def test_a_controls_request_costs_the_same_queries_at_any_size(control, published):
    def queries(count):
        paused = control == "resume"
        campaign = campaign_with(count, status=CampaignStatus.PAUSED if paused else CampaignStatus.RUNNING,
                                 task_status=TaskStatus.PAUSED if paused else TaskStatus.QUEUED)
        action = {"pause": do_pause_campaign, "resume": do_resume_campaign, "archive": do_archive_campaign,
                  "update": lambda c: do_update_campaign(c, {"calling_start": dt.time(3)})}[control]
        with CaptureQueriesContext(connection) as captured:
            action(campaign)
        return len(captured)

    assert queries(5) == queries(60)


class TestResume:
    def test_tasks_are_dialable_as_they_flip(self, run, published):
        campaign = campaign_with(10, status=CampaignStatus.PAUSED, task_status=TaskStatus.PAUSED)
        assert do_resume_campaign(campaign) == 2
        assert len(run(campaign)) == 2
        admitted = []
        batches(running_control(campaign).id, between=lambda: admitted.append(len(run(campaign))))
        assert admitted == [3, 3, 2]
        assert statuses(campaign) == ["in_progress"] * 10


class TestArchive:
    def test_archive_is_final_at_once_and_every_pending_task_ends_archived(self, run, published):
        campaign = campaign_with(7)
        campaign.tasks.filter(id__in=campaign.tasks.order_by("-id").values("id")[:3]).update(status=TaskStatus.PAUSED)
        do_archive_campaign(campaign)
        assert run(campaign) == set()
        batches(running_control(campaign).id, between=lambda: run(campaign) == set() or pytest.fail("a call started"))
        assert set(campaign.tasks.values_list("status", "completion_reason")) == {("archived", "archived")}


class TestEndTime:
    def test_a_large_campaign_completes_at_its_end_and_its_tasks_are_archived_in_batches(self, run, published):
        campaign = campaign_with(9, start_at=timezone.now() - dt.timedelta(hours=2),
                                 end_at=timezone.now() + dt.timedelta(minutes=5))
        assert do_finish_ended_campaigns(timezone.now() + dt.timedelta(minutes=6)) == 2
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.COMPLETED
        batches(running_control(campaign).id, between=lambda: run(campaign) == set() or pytest.fail("a call started"))
        assert set(campaign.tasks.values_list("status", "completion_reason")) == {("archived", "ended")}


class TestUpdate:
    def test_new_hours_hold_for_every_attempt_placed_after_the_update_returns(self, run, published):
        campaign = campaign_with(10)
        start, end = closed_window_now()
        do_update_campaign(campaign, {"calling_start": start, "calling_end": end})
        assert run(campaign) == set()
        batches(running_control(campaign).id, between=lambda: run(campaign) == set() or pytest.fail("a call started"))
        campaign.refresh_from_db()
        opening = next_opening(resolve_config(Task(), campaign).window, timezone.now())
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {("queued", opening)}

    def test_tasks_made_due_sooner_are_dialed_as_their_batch_lands(self, run, published):
        start, end = closed_window_now()
        campaign = campaign_with(8, calling_start=start, calling_end=end)
        later = next_opening(resolve_config(Task(), campaign).window, timezone.now())
        campaign.tasks.update(next_attempt_at=later)
        assert run(campaign) == set()
        do_update_campaign(campaign, {"calling_start": dt.time(0), "calling_end": dt.time(0)})
        assert len(run(campaign)) == 2
        batches(running_control(campaign).id)
        assert len(run(campaign)) == 6

    def test_progress_counts_the_tasks_re_timed_of_all_pending(self, published):
        campaign = campaign_with(8)
        do_update_campaign(campaign, {"calling_start": dt.time(1)})
        control = running_control(campaign)
        assert control_jobs.running_controls([campaign.id]) == {campaign.id: {"action": "update", "done": 2, "total": None}}
        do_control_batch(control.id)
        assert control_jobs.running_controls([campaign.id]) == {campaign.id: {"action": "update", "done": 5, "total": 8}}


class TestConcurrentControls:
    def test_pause_during_a_running_update_pauses_everything_and_finishes_the_re_timing(self, run, published):
        campaign = campaign_with(10, start_at=dt.datetime(2030, 1, 7, tzinfo=UTC))
        do_update_campaign(campaign, {"calling_start": dt.time(14), "calling_end": dt.time(16)})
        do_control_batch(running_control(campaign).id)
        do_pause_campaign(campaign)
        control, part = running_control(campaign), whole_part(campaign)
        assert (control.action, part.flip, bool(part.retime_ranges)) == ("pause", "pause", True)
        batches(control.id, between=lambda: run(campaign) == set() or pytest.fail("a call started"))
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {
            ("paused", dt.datetime(2030, 1, 7, 14, tzinfo=UTC))}

    def test_update_during_a_running_pause_finishes_the_pause_then_re_times(self, published):
        campaign = campaign_with(10, start_at=dt.datetime(2030, 1, 7, tzinfo=UTC))
        do_pause_campaign(campaign)
        do_update_campaign(campaign, {"calling_start": dt.time(9), "calling_end": dt.time(11)})
        control, part = running_control(campaign), whole_part(campaign)
        assert (control.action, part.flip, bool(part.retime_ranges)) == ("update", "pause", True)
        assert control_jobs.running_controls([campaign.id])[campaign.id]["action"] == "pause"
        run_control_of(campaign, published)
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {
            ("paused", dt.datetime(2030, 1, 7, 9, tzinfo=UTC))}

    def test_resume_during_a_running_pause_leaves_every_task_queued(self, published):
        campaign = campaign_with(10)
        do_pause_campaign(campaign)
        do_control_batch(running_control(campaign).id)
        assert statuses(campaign).count("paused") == 5
        do_resume_campaign(campaign)
        run_control_of(campaign, published)
        assert statuses(campaign) == ["queued"] * 10

    def test_archive_during_a_running_update_archives_everything_and_drops_the_re_timing(self, published):
        campaign = campaign_with(10)
        do_update_campaign(campaign, {"calling_start": dt.time(3)})
        do_archive_campaign(campaign)
        part = whole_part(campaign)
        assert (part.flip, part.retime_ranges) == ("archive", [])
        run_control_of(campaign, published)
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {("archived", None)}


class TestCrash:
    def test_a_job_lost_mid_batch_is_resumed_by_beat_and_ends_in_the_same_state(self, published, monkeypatch):
        campaign = campaign_with(10)
        do_pause_campaign(campaign)
        control_id = running_control(campaign).id
        do_control_batch(control_id)
        # The worker dies inside the next batch, after its UPDATE: the batch's transaction is lost.
        save = CampaignControlPart.save

        def die(self, *args, **kwargs):
            raise SystemExit("worker killed")

        monkeypatch.setattr(CampaignControlPart, "save", die)
        with pytest.raises(SystemExit):
            do_control_batch(control_id)
        monkeypatch.setattr(CampaignControlPart, "save", save)
        assert statuses(campaign).count("paused") == 5
        published.clear()
        assert resume_stalled_controls(timezone.now()) == []  # still fresh: its message is redelivered instead
        assert resume_stalled_controls(timezone.now() + dt.timedelta(minutes=1)) == [control_id]
        part_id = whole_part(campaign).id
        assert published == [(control_id, part_id)]
        assert resume_stalled_controls(timezone.now() + dt.timedelta(minutes=1)) == []  # one message per stall
        run_jobs(published)
        assert statuses(campaign) == ["paused"] * 10
        run_control(control_id)  # duplicates of the finished jobs change nothing and publish nothing
        run_control(control_id, part_id)
        assert statuses(campaign) == ["paused"] * 10 and published == []


def split_in_two(campaign):
    """Split the campaign's running control in two parts; returns (control id, first part, second part)."""
    control = running_control(campaign)
    do_split_control(control.id)
    first, second = CampaignControlPart.objects.filter(control=control).order_by("after")
    return control.id, first, second


def statuses_of(campaign, part):
    return sorted(campaign.tasks.filter(id__gt=part.after, id__lte=part.upto).values_list("status", flat=True))


class TestParts:
    """A control's work split by task id over CONTROL_JOBS parts, each walked by its own job."""

    def test_a_large_control_splits_into_contiguous_slices_each_walked_on_its_own(self, published):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        ids = sorted(campaign.tasks.values_list("id", flat=True))
        assert (first.after, first.upto, second.after, second.upto) == (0, second.after, second.after, LAST_TASK_ID)
        # Equal id widths from the request's cursor (the second task) to the last task.
        assert second.after == ids[1] + (ids[-1] - ids[1]) // 2 == ids[10]
        assert batches_of(control_id, second) == 4  # 9 tasks, 3 a batch, and the one finding the slice ended
        assert statuses_of(campaign, second) == ["paused"] * 9
        assert statuses_of(campaign, first).count("queued") == 9
        assert running_control(campaign).finished_at is None
        batches_of(control_id, first)
        assert statuses(campaign) == ["paused"] * 20
        assert not CampaignControl.objects.filter(finished_at=None).exists()

    def test_the_controls_job_splits_it_into_a_job_per_part_each_publishing_itself_batch_by_batch(self, published):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id = running_control(campaign).id
        run_control(control_id)
        first, second = CampaignControlPart.objects.filter(control_id=control_id).order_by("after")
        assert published == [(control_id, first.id), (control_id, second.id)]
        assert statuses(campaign).count("paused") == 2
        run_control(*published.pop(0))
        assert published == [(control_id, second.id), (control_id, first.id)]  # the first's next batch, queued
        assert statuses(campaign).count("paused") == 5
        # The first part's 6 tasks left and the second's 9, 3 a batch, each part then finding its slice ended.
        assert run_jobs(published) == 7
        assert statuses(campaign) == ["paused"] * 20
        assert CampaignControl.objects.get(id=control_id).finished_at is not None

    @pytest.mark.parametrize("tasks, jobs", [(7, 2), (20, 1)])
    def test_a_control_of_less_than_a_batch_per_job_or_with_one_job_stays_whole(self, tasks, jobs, published, settings):
        settings.CONTROL_JOBS = jobs
        campaign = campaign_with(tasks)
        do_pause_campaign(campaign)
        control = running_control(campaign)
        do_split_control(control.id)
        assert control.parts.count() == 1

    def test_progress_sums_the_parts(self, published):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        assert control_jobs.running_controls([campaign.id])[campaign.id] == {"action": "pause", "done": 2, "total": None}
        do_control_batch(control_id, first.id)
        assert control_jobs.running_controls([campaign.id])[campaign.id] == {"action": "pause", "done": 5, "total": None}
        do_control_batch(control_id, second.id)
        assert control_jobs.running_controls([campaign.id])[campaign.id] == {"action": "pause", "done": 8, "total": 20}
        batches_of(control_id, second)
        assert control_jobs.running_controls([campaign.id])[campaign.id] == {"action": "pause", "done": 14, "total": 20}

    def test_a_part_finding_another_part_counting_runs_its_batch_and_counts_at_a_later_one(self, published):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        counting = another_session()
        try:
            with counting.cursor() as cursor:  # another job counting: it holds the lock till its batch ends
                cursor.execute(control_jobs.COUNT_LOCK_SQL, [control_jobs.COUNT_LOCK_CLASS, campaign.id])
                assert cursor.fetchone()[0]
                do_control_batch(control_id, first.id)
                do_control_batch(control_id, second.id)
                assert control_jobs.running_controls([campaign.id])[campaign.id] == {
                    "action": "pause", "done": 8, "total": None}
                cursor.execute(control_jobs.COUNT_UNLOCK_SQL, [control_jobs.COUNT_LOCK_CLASS, campaign.id])
                do_control_batch(control_id, first.id)
                do_control_batch(control_id, second.id)
                assert control_jobs.running_controls([campaign.id])[campaign.id] == {
                    "action": "pause", "done": 14, "total": 20}
                cursor.execute(control_jobs.COUNT_LOCK_SQL, [control_jobs.COUNT_LOCK_CLASS, campaign.id])
                assert cursor.fetchone()[0], "a counting job releases the lock when its batch ends"
        finally:
            counting.close()

    def test_a_part_lost_mid_batch_is_resumed_alone_while_the_other_finishes(self, published, monkeypatch):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        do_control_batch(control_id, second.id)
        save = CampaignControlPart.save

        def die(self, *args, **kwargs):
            raise SystemExit("worker killed")

        monkeypatch.setattr(CampaignControlPart, "save", die)
        with pytest.raises(SystemExit):
            do_control_batch(control_id, second.id)
        monkeypatch.setattr(CampaignControlPart, "save", save)
        assert statuses_of(campaign, second).count("paused") == 3
        batches_of(control_id, first)
        assert statuses_of(campaign, first) == ["paused"] * 11
        assert running_control(campaign).id == control_id  # not finished while a part has work
        published.clear()
        CampaignControlPart.objects.filter(id=first.id).update(updated_at=timezone.now() - dt.timedelta(hours=1))
        assert resume_stalled_controls(timezone.now() + dt.timedelta(minutes=1)) == [control_id]
        assert published == [(control_id, second.id)]  # only the stalled part: the finished one has no work
        run_jobs(published)
        assert statuses(campaign) == ["paused"] * 20
        assert not CampaignControl.objects.filter(finished_at=None).exists()

    def test_a_control_arriving_while_parts_run_takes_over_every_part_even_finished_ones(self, published):
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        do_control_batch(control_id, first.id)
        batches_of(control_id, second)
        do_resume_campaign(campaign)
        assert running_control(campaign).id == control_id
        # Both from their slice's start (the request's batch then took the first two of the first).
        assert list(CampaignControlPart.objects.filter(control_id=control_id).values_list("flip", "flip_cursor")) == [
            ("resume", sorted(campaign.tasks.values_list("id", flat=True))[1]), ("resume", second.after)]
        batches_of(control_id, second)
        assert statuses_of(campaign, second) == ["queued"] * 9
        run_control_of(campaign, published)
        assert statuses(campaign) == ["queued"] * 20
        assert not CampaignControl.objects.filter(finished_at=None).exists()

    def test_an_update_while_parts_pause_finishes_each_parts_pause_then_re_times_it(self, published):
        campaign = campaign_with(20, start_at=dt.datetime(2030, 1, 7, tzinfo=UTC))
        do_pause_campaign(campaign)
        control_id, first, second = split_in_two(campaign)
        do_control_batch(control_id, second.id)
        do_update_campaign(campaign, {"calling_start": dt.time(9), "calling_end": dt.time(11)})
        batches_of(control_id, second)
        batches_of(control_id, first)
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {
            ("paused", dt.datetime(2030, 1, 7, 9, tzinfo=UTC))}
        assert not CampaignControl.objects.filter(finished_at=None).exists()


def batches_of(control_id, part):
    """Run one part's job batch by batch; returns the batches run."""
    count = 1
    while do_control_batch(control_id, part.id):
        count += 1
    return count


class TestRollingDeploy:
    """Control job messages between releases: workers of the previous release still run during a
    deploy, and messages published by it are still queued when the new workers start."""

    @staticmethod
    def sent_messages(monkeypatch):
        messages = []
        monkeypatch.setattr("config.jobs.app.send_task",
                            lambda name, args, kwargs, **options: messages.append((name, args, kwargs)))
        return messages

    def test_a_parts_job_names_its_part_by_keyword_which_a_previous_releases_worker_takes(self, monkeypatch):
        def previous_release_task(control_id, **kwargs):  # campaigns.run_control before controls had parts
            pass

        sent = self.sent_messages(monkeypatch)
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id = running_control(campaign).id
        run_control(control_id)
        parts = list(CampaignControlPart.objects.filter(control_id=control_id).order_by("id").values_list("id", flat=True))
        assert sent == [(Job.RUN_CONTROL, [control_id], {"part_id": part}) for part in parts] and len(parts) == 2
        for _, args, kwargs in sent:
            inspect.signature(previous_release_task).bind(*args, **kwargs)

    def test_the_job_runs_a_message_of_the_previous_next_or_this_release(self, monkeypatch):
        from campaigns.tasks import run_control_job

        sent = self.sent_messages(monkeypatch)
        campaign = campaign_with(20)
        do_pause_campaign(campaign)
        control_id = running_control(campaign).id
        run_control_job(control_id)  # no part: split, and a job published for each part
        first, second = CampaignControlPart.objects.filter(control_id=control_id).order_by("after")
        assert [kwargs for *_, kwargs in sent] == [{"part_id": first.id}, {"part_id": second.id}]
        run_control_job(control_id, first.id)  # the part positionally, as this release's first messages
        run_control_job(control_id, part_id=second.id, published_by="a later release")  # an unknown keyword
        assert statuses(campaign).count("paused") == 2 + 3 + 3
        while sent:
            _, args, kwargs = sent.pop(0)
            run_control_job(*args, **kwargs)
        assert statuses(campaign) == ["paused"] * 20
        assert CampaignControl.objects.get(id=control_id).finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_new_control_waits_for_the_batches_in_flight_and_later_batches_wait_for_it(published):
    """With parts, a batch is nearly always in flight: a control must not wait for batches that
    start while it waits."""
    campaign = campaign_with(3)
    in_flight, later = another_session(), another_session()
    done = []

    def pause():
        try:
            done.append(do_pause_campaign(campaign))
        finally:
            connections.close_all()

    try:
        with in_flight.cursor() as cursor:
            cursor.execute(control_jobs.BATCH_CAMPAIGN_LOCK_SQL, [campaign.id, campaign.id])
        control = threading.Thread(target=pause)
        control.start()
        time.sleep(0.5)
        assert control.is_alive(), "a new control must wait for the batch in flight"
        with later.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute(control_jobs.BATCH_CAMPAIGN_LOCK_SQL, [campaign.id, campaign.id])
        later.rollback()
        in_flight.commit()
        control.join(10)
    finally:
        in_flight.close()
        later.close()
    assert done == [2]  # CONTROL_INLINE_TASKS


class TestSetBasedRetiming:
    def test_matches_the_scheduling_rules_task_by_task(self, published):
        """Random realtime tasks (own zones, windows, starts, ends, retries, callbacks) re-timed in
        SQL get exactly the times and end states `dialer.scheduling` gives them one by one."""
        rng = random.Random(22)
        monday = dt.datetime(2030, 3, 4, tzinfo=UTC)
        campaign = CampaignFactory(type=CampaignType.REALTIME, status=CampaignStatus.RUNNING, start_at=monday,
                                   end_at=monday + dt.timedelta(days=20), max_retries=2, calling_days=[0, 1, 2, 3, 4],
                                   timezone="Europe/London", calling_start=dt.time(9), calling_end=dt.time(17))
        zones = ["", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
        for _ in range(60):
            attempts = rng.randint(0, 3)
            task = TaskFactory(
                campaign=campaign, status=rng.choice([TaskStatus.QUEUED, TaskStatus.PAUSED]), attempts_made=attempts,
                timezone=rng.choice(zones), last_outcome="busy" if attempts else "",
                calling_start=rng.choice([None, dt.time(8), dt.time(22)]),
                calling_end=rng.choice([None, dt.time(12), dt.time(2)]),
                start_after=rng.choice([None, monday + dt.timedelta(days=rng.randint(0, 25))]),
                end_after=rng.choice([None, monday + dt.timedelta(days=rng.randint(26, 40))]),
                max_attempts=rng.choice([None, 2, 4]), intervals_ms=rng.choice([None, [], [600_000, 7_200_000, 10]]),
                callback_at=rng.choice([None, None, monday + dt.timedelta(hours=rng.randint(0, 600))]))
            for attempt in range(1, attempts + 1):
                CallFactory(task=task, attempt=attempt, status="ended", outcome="busy",
                            ended_at=monday + dt.timedelta(minutes=rng.randint(0, 20_000)))
        fields = {"calling_start": dt.time(7, 30), "calling_end": dt.time(19), "calling_days": [1, 2, 3, 5],
                  "timezone": "America/Los_Angeles", "retry_interval_ms": 5_400_000,
                  "end_at": monday + dt.timedelta(days=18)}
        for name, value in fields.items():
            setattr(campaign, name, value)
        now = timezone.now()
        expected = {task.id: expected_after_update(task, campaign, now) for task in campaign.tasks.all()}
        assert {status for status, _, _ in expected.values()} == {"queued", "paused", "completed", "archived"}
        do_update_campaign(campaign, fields)
        run_control_of(campaign, published)
        actual = {task.id: (task.status, task.completion_reason, task.next_attempt_at)
                  for task in campaign.tasks.all()}
        assert actual == expected


def expected_after_update(task, campaign, now):
    config = resolve_config(task, campaign)
    if task.attempts_made >= config.max_attempts:
        return "completed", "exhausted", None
    if task.callback_at is not None:
        at = next_opening(config.window, max(task.callback_at, config.start_after))
        at = at if config.end_at is None or at < config.end_at else None
    elif task.attempts_made == 0:
        at = first_attempt_at(config, now)
    else:
        ended = Call.objects.get(task=task, attempt=task.attempts_made).ended_at
        at = next_attempt_after(config, task.attempts_made, ended)
    if at is None:
        return "archived", "ended", None
    assert is_open(config.window, at)
    return task.status, "", at


def test_the_admin_campaign_page_shows_the_control_in_progress(client, published):
    workspace = WorkspaceFactory(slots=50)
    member = OrganisationMemberFactory(organisation=workspace.organisation)
    member.user.user_permissions.add(*Permission.objects.filter(content_type__app_label="campaigns"))
    client.force_login(member.user)
    campaign = CampaignFactory(workspace=workspace, status=CampaignStatus.RUNNING)
    TaskFactory.create_batch(8, campaign=campaign)
    do_pause_campaign(campaign)
    do_control_batch(running_control(campaign).id)
    page = client.get(f"/admin/campaigns/campaign/{campaign.id}/change/")
    assert "pausing: 5 of 8 tasks" in page.content.decode()
    stats = client.get(f"/admin/campaigns/campaign/{campaign.id}/stats.json").json()
    assert stats["control"] == {"action": "pause", "done": 5, "total": 8}
    run_control_of(campaign, published)
    assert client.get(f"/admin/campaigns/campaign/{campaign.id}/stats.json").json()["control_text"] == ""


@pytest.mark.django_db(transaction=True)
def test_a_batch_in_flight_holds_up_a_new_control_but_never_the_organisations_dispatcher(published):
    workspace = WorkspaceFactory(slots=50)
    big = CampaignFactory(workspace=workspace, status=CampaignStatus.RUNNING, slots=10)
    other = CampaignFactory(workspace=workspace, status=CampaignStatus.RUNNING, slots=10)
    TaskFactory.create_batch(3, campaign=big)
    waiting = TaskFactory(campaign=other)
    batch = another_session()
    done = {}

    def in_thread(name, action):
        def target():
            try:
                done[name] = action()
            finally:
                connections.close_all()
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    try:
        with batch.cursor() as cursor:
            cursor.execute(control_jobs.BATCH_CAMPAIGN_LOCK_SQL, [big.id, big.id])
        dispatcher = in_thread("dispatch", lambda: dispatch_pass(workspace.organisation_id, timezone.now()))
        dispatcher.join(5)
        assert not dispatcher.is_alive(), "the dispatcher waited for a control's batch"
        assert Call.objects.filter(task=waiting).exists()
        pause = in_thread("pause", lambda: do_pause_campaign(big))
        time.sleep(0.5)
        assert pause.is_alive(), "a new control must wait for the batch in flight"
        batch.commit()
        pause.join(10)
    finally:
        batch.close()
    assert "pause" in done


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("control, campaign_status, ends_as", [
    ("pause", CampaignStatus.RUNNING, TaskStatus.PAUSED),
    ("resume", CampaignStatus.PAUSED, TaskStatus.QUEUED),
])
def test_a_call_ending_as_a_control_commits_leaves_its_task_as_the_control_says(
        control, campaign_status, ends_as, published):
    """The call's end has read its campaign while the task row is held elsewhere (as the
    dispatcher or a webhook retry may hold it); the control commits meanwhile. The task's next
    state must follow the control, whichever commits first."""
    from dialer.attempts import do_finish_attempt

    campaign = campaign_with(0, status=campaign_status, max_retries=1, retry_interval_ms=0)
    live = TaskFactory(campaign=campaign, status=TaskStatus.IN_PROGRESS, attempts_made=1)
    TaskFactory(campaign=campaign, status=TaskStatus.PAUSED if control == "resume" else TaskStatus.QUEUED)
    call = CallFactory(task=live, attempt=1)
    holder = another_session()
    action = {"pause": do_pause_campaign, "resume": do_resume_campaign}[control]

    def in_thread(target):
        def run_and_close():
            try:
                target()
            finally:
                connections.close_all()
        thread = threading.Thread(target=run_and_close)
        thread.start()
        return thread

    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM campaigns_task WHERE id = %s FOR UPDATE", [live.id])
        finish = in_thread(lambda: do_finish_attempt(call.id, "no-answer", timezone.now()))
        time.sleep(0.5)  # the finish has read what it reads before the task, and waits for the task
        controlling = in_thread(lambda: action(campaign))
        time.sleep(0.5)
        holder.rollback()
        finish.join(10)
        controlling.join(10)
    finally:
        holder.close()
    assert not finish.is_alive() and not controlling.is_alive()
    run_jobs(published)
    assert statuses(campaign) == [ends_as] * 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path, body", [("/pause", None), ("", {"callingHours": {"start": 1300, "end": 1400}})])
def test_the_dispatcher_never_waits_for_a_controls_first_batch_through_the_api(path, body, published):
    """The API records the control with the campaign's change; the first batch then holds the
    campaign only FOR SHARE, as the dispatcher does, even while it waits on a task row."""
    from campaigns.models import ControlRecord
    from tests.test_api_auth import client_for

    campaign = campaign_with(5)
    api = client_for(ApiKeyFactory(workspace=campaign.workspace))
    holder, dispatcher = another_session(), another_session()
    answers = []

    def request():
        try:
            method = api.patch if body else api.post
            answers.append(method(f"/api/v1/campaigns/{campaign.id}{path}", body, format="json"))
        finally:
            connections.close_all()

    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM campaigns_task WHERE campaign_id = %s ORDER BY id LIMIT 1 FOR UPDATE",
                           [campaign.id])
        control = threading.Thread(target=request)
        control.start()
        time.sleep(0.5)  # the request's first batch waits on the held task
        assert control.is_alive()
        with dispatcher.cursor() as cursor:
            cursor.execute("SELECT id FROM campaigns_campaign WHERE id = %s FOR SHARE NOWAIT", [campaign.id])
        dispatcher.rollback()
        holder.rollback()
        control.join(10)
    finally:
        holder.close()
        dispatcher.close()
    assert answers[0].status_code == 200
    record = ControlRecord.objects.get(campaign=campaign)
    assert record.tasks_changed == 2  # CONTROL_INLINE_TASKS, counted in by the first batch
