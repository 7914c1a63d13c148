"""Campaign and task controls against the real database (docs/product.md §1, Controls, invariant 8)."""
import datetime as dt
import threading
import time

import pytest
from django.db import connections

from campaigns.actions.controls import (
    ControlRefused, do_archive_campaign, do_archive_task, do_complete_campaign_if_done, do_finish_ended_campaigns,
    do_pause_campaign, do_pause_task, do_resume_campaign, do_resume_task, do_update_campaign,
)
from campaigns.models import CampaignStatus, CampaignType, CompletionReason, TaskStatus
from campaigns.signals import tasks_changed
from tests.db_sessions import another_session
from tests.factories import CallFactory, CampaignFactory, TaskFactory

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
MONDAY = dt.datetime(2030, 1, 7, tzinfo=UTC)  # the far future keeps first attempts independent of the clock


def at(day, hour, minute=0):
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def statuses(campaign):
    return dict(campaign.tasks.values_list("phone", "status"))


def mixed_campaign(status=CampaignStatus.RUNNING, **kwargs):
    """A campaign with one task in each status, phones named after the status."""
    campaign = CampaignFactory(status=status, **kwargs)
    for task_status, phone in [(TaskStatus.QUEUED, "+447000000001"), (TaskStatus.QUEUED, "+447000000002"),
                               (TaskStatus.PAUSED, "+447000000003"), (TaskStatus.IN_PROGRESS, "+447000000004"),
                               (TaskStatus.COMPLETED, "+447000000005"), (TaskStatus.ARCHIVED, "+447000000006")]:
        reason = CompletionReason.CONNECTED if task_status in (TaskStatus.COMPLETED, TaskStatus.ARCHIVED) else ""
        TaskFactory(campaign=campaign, phone=phone, status=task_status, completion_reason=reason)
    return campaign


@pytest.fixture
def nudges():
    received = []

    def receiver(sender, organisation_id, **kwargs):
        received.append(organisation_id)

    tasks_changed.connect(receiver)
    yield received
    tasks_changed.disconnect(receiver)


class TestPauseCampaign:
    def test_pauses_every_queued_task_and_leaves_live_and_finished_ones(self):
        campaign = mixed_campaign()
        assert do_pause_campaign(campaign) == 2
        assert statuses(campaign) == {
            "+447000000001": "paused", "+447000000002": "paused", "+447000000003": "paused",
            "+447000000004": "in_progress", "+447000000005": "completed", "+447000000006": "archived"}
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.PAUSED

    def test_a_scheduled_campaign_can_be_paused(self):
        campaign = mixed_campaign(CampaignStatus.SCHEDULED)
        assert do_pause_campaign(campaign) == 2
        assert campaign.status == CampaignStatus.PAUSED

    def test_pauses_in_one_update_per_status(self, django_assert_num_queries):
        campaign = mixed_campaign()
        # The campaign's change: savepoint, hold its batches, lock the campaign, UPDATE it, look
        # for a running control, record it and its part, release. Then the first batch:
        # savepoint, the campaign FOR SHARE, the part FOR UPDATE, one UPDATE of the tasks, the
        # part's progress, the control finished, release.
        with django_assert_num_queries(15):
            do_pause_campaign(campaign)

    @pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED])
    def test_refused_when_paused_completed_or_archived(self, status):
        campaign = mixed_campaign(status)
        with pytest.raises(ControlRefused):
            do_pause_campaign(campaign)
        assert statuses(campaign)["+447000000001"] == "queued"


class TestResumeCampaign:
    def test_paused_tasks_become_queued_keeping_their_retry_timing(self, nudges, django_capture_on_commit_callbacks):
        campaign = mixed_campaign()
        do_pause_campaign(campaign)
        retry_at = at(2, 15)
        campaign.tasks.filter(phone="+447000000003").update(next_attempt_at=retry_at, attempts_made=1)
        CallFactory(task=campaign.tasks.get(phone="+447000000003"), attempt=1)
        with django_capture_on_commit_callbacks(execute=True):
            assert do_resume_campaign(campaign) == 3
        assert statuses(campaign)["+447000000003"] == "queued"
        assert campaign.tasks.get(phone="+447000000003").next_attempt_at == retry_at
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.RUNNING
        assert nudges == [campaign.workspace.organisation_id]

    def test_a_campaign_that_never_placed_a_call_goes_back_to_scheduled(self):
        campaign = mixed_campaign(CampaignStatus.PAUSED)
        assert do_resume_campaign(campaign) == 1
        assert campaign.status == CampaignStatus.SCHEDULED

    @pytest.mark.parametrize("status", [CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.COMPLETED,
                                        CampaignStatus.ARCHIVED])
    def test_refused_unless_paused(self, status):
        campaign = mixed_campaign(status)
        with pytest.raises(ControlRefused):
            do_resume_campaign(campaign)
        assert statuses(campaign)["+447000000003"] == "paused"


class TestArchiveCampaign:
    def test_archives_queued_and_paused_tasks_permanently(self):
        campaign = mixed_campaign()
        assert do_archive_campaign(campaign) == 3
        tasks = {t.phone: t for t in campaign.tasks.all()}
        for phone in ("+447000000001", "+447000000002", "+447000000003"):
            assert (tasks[phone].status, tasks[phone].completion_reason) == ("archived", "archived")
            assert tasks[phone].completed_at is not None and tasks[phone].next_attempt_at is None
        assert tasks["+447000000004"].status == "in_progress"
        assert tasks["+447000000005"].status == "completed"
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.ARCHIVED

    def test_a_completed_campaign_can_be_put_away(self):
        campaign = CampaignFactory(status=CampaignStatus.COMPLETED)
        assert do_archive_campaign(campaign) == 0
        assert campaign.status == CampaignStatus.ARCHIVED

    def test_refused_when_already_archived(self):
        with pytest.raises(ControlRefused):
            do_archive_campaign(CampaignFactory(status=CampaignStatus.ARCHIVED))


class TestUpdateCampaign:
    def campaign(self, **kwargs):
        values = dict(status=CampaignStatus.RUNNING, start_at=at(0, 0), calling_start=dt.time(10),
                      calling_end=dt.time(18), max_retries=2, retry_interval_ms=3_600_000)
        values.update(kwargs)
        return CampaignFactory(**values)

    def retried_task(self, campaign, ended_at, status=TaskStatus.QUEUED, attempts=1, **kwargs):
        task = TaskFactory(campaign=campaign, status=status, attempts_made=attempts, next_attempt_at=at(0, 12),
                           last_outcome="busy", dispatch_rank=attempts, **kwargs)
        for attempt in range(1, attempts + 1):
            CallFactory(task=task, attempt=attempt, status="ended", outcome="busy", ended_at=ended_at)
        return task

    def test_new_calling_hours_move_first_attempts_at_once(self, nudges, django_capture_on_commit_callbacks):
        campaign = self.campaign()
        queued = TaskFactory(campaign=campaign, next_attempt_at=at(0, 10))
        paused = TaskFactory(campaign=campaign, status=TaskStatus.PAUSED, next_attempt_at=at(0, 10))
        with django_capture_on_commit_callbacks(execute=True):
            changed = do_update_campaign(campaign, {"calling_start": dt.time(14), "calling_end": dt.time(16)})
        assert changed == 2
        queued.refresh_from_db()
        paused.refresh_from_db()
        assert (queued.status, queued.next_attempt_at) == ("queued", at(0, 14))
        assert (paused.status, paused.next_attempt_at) == ("paused", at(0, 14))
        campaign.refresh_from_db()
        assert campaign.calling_start == dt.time(14)
        assert nudges == [campaign.workspace.organisation_id]

    def test_retries_are_retimed_from_the_last_attempt_end_with_the_new_interval(self):
        campaign = self.campaign()
        task = self.retried_task(campaign, ended_at=at(0, 11))
        assert do_update_campaign(campaign, {"retry_interval_ms": 3 * 3_600_000}) == 1
        task.refresh_from_db()
        assert task.next_attempt_at == at(0, 14)

    def test_a_pending_callback_keeps_its_time_moved_into_the_new_window(self):
        campaign = self.campaign()
        task = self.retried_task(campaign, ended_at=at(0, 11), callback_at=at(0, 17))
        do_update_campaign(campaign, {"calling_end": dt.time(16)})
        task.refresh_from_db()
        assert (task.next_attempt_at, task.callback_at) == (at(1, 10), at(0, 17))

    def test_tasks_whose_next_attempt_falls_past_the_new_end_are_archived(self):
        campaign = self.campaign()
        early = TaskFactory(campaign=campaign, next_attempt_at=at(0, 10))
        late = self.retried_task(campaign, ended_at=at(0, 17, 30))
        assert do_update_campaign(campaign, {"end_at": at(1, 9)}) == 1
        early.refresh_from_db()
        late.refresh_from_db()
        assert early.status == "queued"
        assert (late.status, late.completion_reason, late.next_attempt_at) == ("archived", "ended", None)

    def test_fewer_retries_complete_tasks_that_used_theirs_up(self):
        campaign = self.campaign()
        task = self.retried_task(campaign, ended_at=at(0, 11), attempts=2)
        assert do_update_campaign(campaign, {"max_retries": 1}) == 1
        task.refresh_from_db()
        assert (task.status, task.completion_reason, task.final_outcome) == ("completed", "exhausted", "busy")

    def test_unchanged_times_count_as_no_change(self):
        campaign = self.campaign()
        TaskFactory(campaign=campaign, next_attempt_at=at(0, 10))
        assert do_update_campaign(campaign, {"name": "Renamed"}) == 0

    def test_updates_that_change_no_timing_setting_leave_task_times_alone(self):
        campaign = self.campaign()
        # A time this update would move if it re-timed tasks (before the window opens).
        task = TaskFactory(campaign=campaign, next_attempt_at=at(0, 3))
        assert do_update_campaign(campaign, {"slots": 7, "name": "Renamed", "calling_start": campaign.calling_start}) == 0
        task.refresh_from_db()
        assert task.next_attempt_at == at(0, 3)
        assert do_update_campaign(campaign, {"calling_start": dt.time(9, 30)}) == 1
        task.refresh_from_db()
        assert task.next_attempt_at != at(0, 3)

    def test_in_progress_tasks_are_left_to_finish(self):
        campaign = self.campaign()
        live = self.retried_task(campaign, ended_at=at(0, 11), status=TaskStatus.IN_PROGRESS)
        do_update_campaign(campaign, {"end_at": at(0, 1)})
        live.refresh_from_db()
        assert live.status == "in_progress"

    def test_query_count_does_not_grow_with_tasks(self, django_assert_max_num_queries):
        campaign = self.campaign()
        for n in range(40):
            self.retried_task(campaign, ended_at=at(0, 11 + n % 5))
            TaskFactory(campaign=campaign, next_attempt_at=at(0, 10))
        # The campaign's change and its control (8), then one batch: locks, the pending table, per
        # status its plan, one UPDATE per calling window, the part's progress, the control finished
        # (9), the nudge's workspace.
        with django_assert_max_num_queries(18):
            assert do_update_campaign(campaign, {"calling_start": dt.time(12, 30)}) == 80

    @pytest.mark.parametrize("status", [CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED])
    def test_refused_for_completed_or_archived(self, status):
        campaign = self.campaign(status=status)
        with pytest.raises(ControlRefused):
            do_update_campaign(campaign, {"name": "Renamed"})
        campaign.refresh_from_db()
        assert campaign.name != "Renamed"


class TestTaskControls:
    def test_pause_and_resume_one_task_keeps_its_timing(self, nudges, django_capture_on_commit_callbacks):
        task = TaskFactory(campaign=CampaignFactory(status=CampaignStatus.RUNNING), next_attempt_at=at(1, 9))
        assert do_pause_task(task) == 1
        assert task.status == TaskStatus.PAUSED
        with django_capture_on_commit_callbacks(execute=True):
            assert do_resume_task(task) == 1
        task.refresh_from_db()
        assert (task.status, task.next_attempt_at) == ("queued", at(1, 9))
        assert nudges == [task.campaign.workspace.organisation_id]

    @pytest.mark.parametrize("status", [TaskStatus.PAUSED, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED])
    def test_only_a_queued_task_can_be_paused(self, status):
        reason = CompletionReason.CONNECTED if status == TaskStatus.COMPLETED else ""
        with pytest.raises(ControlRefused):
            do_pause_task(TaskFactory(status=status, completion_reason=reason))

    def test_only_a_paused_task_can_be_resumed(self):
        with pytest.raises(ControlRefused):
            do_resume_task(TaskFactory(status=TaskStatus.QUEUED))

    @pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.ARCHIVED, CampaignStatus.COMPLETED])
    def test_a_task_does_not_resume_inside_a_stopped_campaign(self, status):
        task = TaskFactory(campaign=CampaignFactory(status=status), status=TaskStatus.PAUSED)
        with pytest.raises(ControlRefused):
            do_resume_task(task)
        task.refresh_from_db()
        assert task.status == TaskStatus.PAUSED

    @pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.PAUSED])
    def test_archive_task(self, status):
        task = TaskFactory(status=status)
        assert do_archive_task(task) == 1
        task.refresh_from_db()
        assert (task.status, task.completion_reason, task.next_attempt_at) == ("archived", "archived", None)

    def test_a_live_task_cannot_be_archived(self):
        with pytest.raises(ControlRefused):
            do_archive_task(TaskFactory(status=TaskStatus.IN_PROGRESS))


class TestEndOfLife:
    def test_campaigns_past_their_end_archive_pending_tasks_and_complete(self):
        now = at(5, 0)
        ended = mixed_campaign(start_at=at(0, 0), end_at=at(4, 0))
        paused = mixed_campaign(CampaignStatus.PAUSED, start_at=at(0, 0), end_at=at(5, 0))
        running = mixed_campaign(start_at=at(0, 0), end_at=at(6, 0))
        assert do_finish_ended_campaigns(now) == 6
        for campaign in (ended, paused):
            campaign.refresh_from_db()
            assert (campaign.status, campaign.completed_at) == (CampaignStatus.COMPLETED, now)
            tasks = {t.phone: t for t in campaign.tasks.all()}
            assert (tasks["+447000000001"].status, tasks["+447000000001"].completion_reason) == ("archived", "ended")
            assert tasks["+447000000003"].status == "archived"
            assert tasks["+447000000004"].status == "in_progress"
        running.refresh_from_db()
        assert running.status == CampaignStatus.RUNNING
        assert do_finish_ended_campaigns(now) == 0

    def test_a_batch_campaign_completes_when_nothing_is_left_to_call(self):
        campaign = CampaignFactory(status=CampaignStatus.RUNNING, contacts_uploaded_at=at(0, 0))
        task = TaskFactory(campaign=campaign, status=TaskStatus.IN_PROGRESS)
        TaskFactory(campaign=campaign, status=TaskStatus.COMPLETED, completion_reason="connected")
        assert do_complete_campaign_if_done(campaign.id, at(1, 0)) is False
        task.status, task.completion_reason = TaskStatus.COMPLETED, "exhausted"
        task.save(update_fields=["status", "completion_reason"])
        assert do_complete_campaign_if_done(campaign.id, at(1, 0)) is True
        campaign.refresh_from_db()
        assert (campaign.status, campaign.completed_at) == (CampaignStatus.COMPLETED, at(1, 0))

    @pytest.mark.parametrize(("kwargs", "task_status"), [
        pytest.param({"type": CampaignType.REALTIME, "contacts_uploaded_at": None}, None, id="realtime-stays-running"),
        pytest.param({"contacts_uploaded_at": None}, None, id="batch-before-upload"),
        pytest.param({"contacts_uploaded_at": MONDAY}, TaskStatus.PAUSED, id="paused-task-left"),
        pytest.param({"contacts_uploaded_at": MONDAY}, TaskStatus.QUEUED, id="queued-task-left"),
        pytest.param({"contacts_uploaded_at": MONDAY, "status": CampaignStatus.PAUSED}, None, id="paused-campaign"),
    ])
    def test_a_campaign_is_not_completed_while_it_could_still_call(self, kwargs, task_status):
        campaign = CampaignFactory(**{"status": CampaignStatus.RUNNING, **kwargs})
        if task_status:
            TaskFactory(campaign=campaign, status=task_status)
        assert do_complete_campaign_if_done(campaign.id, at(1, 0)) is False
        campaign.refresh_from_db()
        assert campaign.status != CampaignStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_task_being_admitted_is_either_admitted_or_paused_never_both():
    campaign = CampaignFactory(status=CampaignStatus.RUNNING)
    admitted, *others = TaskFactory.create_batch(3, campaign=campaign)
    dispatcher = another_session()
    result = {}

    def pause():
        try:
            result["changed"] = do_pause_campaign(campaign)
        finally:
            connections.close_all()

    try:
        with dispatcher.cursor() as cursor:
            # The dispatcher's claim: the row is locked while it records the attempt.
            cursor.execute("SELECT id FROM campaigns_task WHERE id = %s AND status = 'queued' FOR UPDATE SKIP LOCKED",
                           [admitted.id])
            assert cursor.fetchall() == [(admitted.id,)]
            worker = threading.Thread(target=pause)
            worker.start()
            time.sleep(0.5)
            assert worker.is_alive(), "pause must wait for the row the dispatcher holds"
            cursor.execute("UPDATE campaigns_task SET status = 'in_progress', attempts_made = attempts_made + 1 "
                           "WHERE id = %s", [admitted.id])
        dispatcher.commit()
        worker.join(10)
    finally:
        dispatcher.close()
    assert result == {"changed": 2}
    assert dict(campaign.tasks.values_list("id", "status")) == {
        admitted.id: "in_progress", others[0].id: "paused", others[1].id: "paused"}
