"""Controls on large campaigns: the campaign changes at once, its tasks in batches off the request.

The control job is driven batch by batch (`do_control_batch`), with dispatcher passes in between,
so every interleaving the tests name is reproduced exactly. Batches are made tiny (2 tasks in the
request, 3 per job batch) so a handful of tasks spans several batches.
"""
import datetime as dt
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
from campaigns.actions.control_jobs import do_control_batch, resume_stalled_controls, run_control
from campaigns.actions.controls import (
    do_archive_campaign, do_finish_ended_campaigns, do_pause_campaign, do_resume_campaign, do_update_campaign,
)
from campaigns.models import CampaignControl, CampaignStatus, CampaignType, Task, TaskStatus
from config.jobs import Job
from dialer.dispatcher import dispatch_pass
from dialer.scheduling import first_attempt_at, next_attempt_after, resolve_config
from dialer.windows import is_open, next_opening
from telephony.models import Call
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
    """Control jobs published on commit, by control id (nothing consumes them here)."""
    ids = []

    def record(job, control_id, **kwargs):
        assert job == Job.RUN_CONTROL
        ids.append(control_id)

    monkeypatch.setattr(control_jobs, "enqueue", record)
    return ids


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
        assert published == [control.id]
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
        run_control(running_control(campaign).id)
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
        control = running_control(campaign)
        assert (control.action, control.flip, bool(control.retime_ranges)) == ("pause", "pause", True)
        batches(control.id, between=lambda: run(campaign) == set() or pytest.fail("a call started"))
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {
            ("paused", dt.datetime(2030, 1, 7, 14, tzinfo=UTC))}

    def test_update_during_a_running_pause_finishes_the_pause_then_re_times(self, published):
        campaign = campaign_with(10, start_at=dt.datetime(2030, 1, 7, tzinfo=UTC))
        do_pause_campaign(campaign)
        do_update_campaign(campaign, {"calling_start": dt.time(9), "calling_end": dt.time(11)})
        control = running_control(campaign)
        assert (control.action, control.flip, bool(control.retime_ranges)) == ("update", "pause", True)
        assert control_jobs.running_controls([campaign.id])[campaign.id]["action"] == "pause"
        run_control(control.id)
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {
            ("paused", dt.datetime(2030, 1, 7, 9, tzinfo=UTC))}

    def test_resume_during_a_running_pause_leaves_every_task_queued(self, published):
        campaign = campaign_with(10)
        do_pause_campaign(campaign)
        do_control_batch(running_control(campaign).id)
        assert statuses(campaign).count("paused") == 5
        do_resume_campaign(campaign)
        run_control(running_control(campaign).id)
        assert statuses(campaign) == ["queued"] * 10

    def test_archive_during_a_running_update_archives_everything_and_drops_the_re_timing(self, published):
        campaign = campaign_with(10)
        do_update_campaign(campaign, {"calling_start": dt.time(3)})
        do_archive_campaign(campaign)
        control = running_control(campaign)
        assert (control.flip, control.retime_ranges) == ("archive", [])
        run_control(control.id)
        assert set(campaign.tasks.values_list("status", "next_attempt_at")) == {("archived", None)}


class TestCrash:
    def test_a_job_lost_mid_batch_is_resumed_by_beat_and_ends_in_the_same_state(self, published, monkeypatch):
        campaign = campaign_with(10)
        do_pause_campaign(campaign)
        control_id = running_control(campaign).id
        do_control_batch(control_id)
        # The worker dies inside the next batch, after its UPDATE: the batch's transaction is lost.
        save = CampaignControl.save

        def die(self, *args, **kwargs):
            raise SystemExit("worker killed")

        monkeypatch.setattr(CampaignControl, "save", die)
        with pytest.raises(SystemExit):
            do_control_batch(control_id)
        monkeypatch.setattr(CampaignControl, "save", save)
        assert statuses(campaign).count("paused") == 5
        published.clear()
        assert resume_stalled_controls(timezone.now()) == []  # still fresh: its message is redelivered instead
        assert resume_stalled_controls(timezone.now() + dt.timedelta(minutes=1)) == [control_id]
        assert published == [control_id]
        assert resume_stalled_controls(timezone.now() + dt.timedelta(minutes=1)) == []  # one message per stall
        run_control(control_id)
        assert statuses(campaign) == ["paused"] * 10
        run_control(control_id)  # a duplicate of the finished job changes nothing
        assert statuses(campaign) == ["paused"] * 10


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
        run_control(running_control(campaign).id)
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
    run_control(running_control(campaign).id)
    assert client.get(f"/admin/campaigns/campaign/{campaign.id}/stats.json").json()["control_text"] == ""


@pytest.mark.django_db(transaction=True)
def test_a_batch_in_flight_holds_up_a_new_control_but_never_the_organisations_dispatcher(published):
    workspace = WorkspaceFactory(slots=50)
    big = CampaignFactory(workspace=workspace, status=CampaignStatus.RUNNING, slots=10)
    other = CampaignFactory(workspace=workspace, status=CampaignStatus.RUNNING, slots=10)
    TaskFactory.create_batch(3, campaign=big)
    waiting = TaskFactory(campaign=other)
    db = connection.settings_dict
    batch = psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432)
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
            cursor.execute(control_jobs.BATCH_CAMPAIGN_LOCK_SQL, [big.id])
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
    db = connection.settings_dict
    holder = psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432)
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
    for control_id in published:
        run_control(control_id)
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
    db = connection.settings_dict
    holder, dispatcher = (psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"],
                                           port=db["PORT"] or 5432) for _ in range(2))
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
