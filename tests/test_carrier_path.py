"""The carrier path: a dial job's calls placed at once, calls-per-second applied at admission, and a
carrier that is slow, rate limiting or down costing only its own calls no attempt.

Real PostgreSQL and Redis; the carrier is the Twilio provider (the real SDK) against the local
stub in `tests/fixtures/twilio/stub.py`. Dispatcher passes run with explicit `now` values.
"""
import datetime as dt
import doctest
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from campaigns.models import CampaignStatus, Task, TaskStatus
from dialer import dispatcher, pacing, retry_policy, slots
from dialer.attempts import CALLBACK_RANK
from dialer.maintenance import place_admitted_calls
from telephony import cps
from telephony.models import Call, CallStatus
from tests.factories import CallingNumberFactory, CampaignFactory, TaskFactory
from tests.fixtures.twilio.stub import ACCOUNT_SID, AUTH_TOKEN, TwilioStub

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent

INVALID_TO = (400, {"code": 21211, "message": "The 'To' number is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, {})
RATE_LIMITED = (429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "2"})
SERVER_ERROR = (500, {"code": 20500, "message": "Internal Server Error", "status": 500}, {})
UNAVAILABLE = (503, {"code": 20503, "message": "Service Unavailable", "status": 503}, {})
CONCURRENCY = (400, {"code": 0, "message": "Concurrency limit reached for this account", "status": 400}, {})


@pytest.fixture
def stub():
    with TwilioStub(ACCOUNT_SID, AUTH_TOKEN) as server:
        with override_settings(TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                               TWILIO_API_BASE_URL=server.base_url, PUBLIC_BASE_URL="http://testserver.example",
                               CARRIER_TIMEOUT_SECONDS=2):
            yield server


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """One dispatcher pass at `now` with its commit hooks; returns its PassResult."""
    def run_pass(organisation_id, now):
        with django_capture_on_commit_callbacks(execute=True):
            return dispatcher._dispatch_pass(organisation_id, now)
    return run_pass


@pytest.fixture
def dial(django_capture_on_commit_callbacks):
    """Run the dial job for every admitted call, with its commit hooks."""
    def dial_admitted():
        call_ids = [str(i) for i in Call.objects.filter(status=CallStatus.ADMITTED, placed_at__isnull=True)
                    .values_list("id", flat=True)]
        with django_capture_on_commit_callbacks(execute=True):
            place_admitted_calls(call_ids)
        return call_ids
    return dial_admitted


def twilio_campaign(slots=20, calls_per_second=1000, **fields):
    return CampaignFactory(slots=slots, workspace__slots=max(slots, 10), status=CampaignStatus.RUNNING,
                           calling_number__carrier="twilio",
                           calling_number__calls_per_second=calls_per_second, **fields)


def org_of(campaign):
    return campaign.workspace.organisation_id


def used_slots(campaign):
    return slots.usage(org_of(campaign))["organisation"]["used"]


@pytest.mark.parametrize("module", [pacing, retry_policy])
def test_worked_examples_in_docstrings_hold(module):
    assert doctest.testmod(module).failed == 0


class TestPlacingConcurrently:
    def test_a_dial_job_of_twenty_calls_lasts_about_one_carrier_round_trip(self, stub, run, dial):
        campaign = twilio_campaign(slots=21)
        TaskFactory(campaign=campaign)
        run(org_of(campaign), timezone.now())
        dial()  # the SDK imports its REST modules on first use: not what this test times
        TaskFactory.create_batch(20, campaign=campaign)
        assert run(org_of(campaign), timezone.now()).admitted == 20
        stub.delay = 0.3
        started = time.monotonic()
        dial()
        elapsed = time.monotonic() - started
        assert elapsed < 3, f"20 calls at 300 ms each took {elapsed:.2f} s: placed one after another"
        assert len(stub.created()) == 21
        assert set(Call.objects.values_list("status", flat=True)) == {CallStatus.DIALING}

    def test_the_next_dial_job_places_its_calls_from_the_threads_the_last_one_started(
            self, stub, run, dial, monkeypatch):
        from telephony import calls

        placed_from = []
        ask = calls._ask_carrier
        monkeypatch.setattr(calls, "_ask_carrier", lambda call: (placed_from.append(threading.current_thread()),
                                                                 ask(call))[1])
        campaign = twilio_campaign(slots=10)
        started_before = []
        for _ in range(2):
            TaskFactory.create_batch(3, campaign=campaign)
            assert run(org_of(campaign), timezone.now()).admitted == 3
            time.sleep(0.2)  # the last job's threads are idle again
            started_before.append(set(calls._placing_pool()._threads))
            placed_from.clear()
            dial()
        assert len(set(placed_from)) == 3
        assert set(placed_from) <= started_before[1]
        assert all(thread.is_alive() for thread in placed_from)
        assert len(stub.created()) == 6

    @pytest.mark.django_db(transaction=True)
    def test_a_dial_job_delivered_twice_at_once_places_each_call_once(self, stub, django_capture_on_commit_callbacks):
        campaign = twilio_campaign(slots=5)
        TaskFactory.create_batch(5, campaign=campaign)
        dispatcher.dispatch_pass(org_of(campaign), timezone.now())
        call_ids = [str(i) for i in Call.objects.values_list("id", flat=True)]
        stub.delay = 0.2
        deliveries = [threading.Thread(target=place_admitted_calls, args=(call_ids,)) for _ in range(2)]
        for delivery in deliveries:
            delivery.start()
        for delivery in deliveries:
            delivery.join()
        assert len(stub.created()) == 5
        assert Call.objects.filter(status=CallStatus.DIALING).count() == 5


class TestCallsPerSecondAtAdmission:
    def test_a_one_call_per_second_number_admits_one_call_a_second_and_the_campaigns_other_numbers_keep_dialing(
            self, run):
        campaign = twilio_campaign(slots=30, calls_per_second=1)
        slow = campaign.calling_number
        fast = CallingNumberFactory(workspace=campaign.workspace, carrier="twilio", calls_per_second=1000)
        slow_tasks = TaskFactory.create_batch(10, campaign=campaign)
        TaskFactory.create_batch(5, campaign=campaign, calling_number=fast)
        t0 = timezone.now()
        from_slow, from_fast, turns = [], [], []
        for step in range(6):
            before = set(Call.objects.values_list("id", flat=True))
            result = run(org_of(campaign), t0 + dt.timedelta(milliseconds=500 * step))
            admitted = Call.objects.exclude(id__in=before)
            from_slow.append(admitted.filter(from_number=slow.number).count())
            from_fast.append(admitted.filter(from_number=fast.number).count())
            turns.append(result.next_turn_at)
        assert from_slow == [1, 0, 1, 0, 1, 0]
        assert from_fast == [5, 0, 0, 0, 0, 0]
        assert turns[:2] == [t0 + dt.timedelta(seconds=1)] * 2
        held = Task.objects.filter(id__in=[t.id for t in slow_tasks], status=TaskStatus.QUEUED)
        assert held.count() == 7
        assert set(held.values_list("attempts_made", flat=True)) == {0}

    def test_a_number_with_turns_left_is_not_held_and_names_no_next_turn(self, run):
        campaign = twilio_campaign(slots=10, calls_per_second=10)
        TaskFactory.create_batch(4, campaign=campaign)
        result = run(org_of(campaign), timezone.now())
        assert (result.admitted, result.next_turn_at) == (4, None)

    def test_turns_taken_for_calls_the_slots_refused_are_given_back(self, run):
        campaign = twilio_campaign(slots=1, calls_per_second=3)
        TaskFactory.create_batch(3, campaign=campaign)
        now = timezone.now()
        assert run(org_of(campaign), now).admitted == 1
        number = campaign.calling_number.number
        assert cps.take_turns({number: (3, 3)}, now_ms=int(now.timestamp() * 1000))[number].granted == 2


class TestCarrierTrouble:
    @pytest.mark.parametrize("refusal", [RATE_LIMITED, SERVER_ERROR, UNAVAILABLE, CONCURRENCY],
                             ids=["429", "500", "503", "concurrency-limit"])
    def test_a_refusal_not_about_the_callee_is_no_attempt_and_the_task_is_dialed_once_the_carrier_recovers(
            self, stub, run, dial, refusal):
        campaign = twilio_campaign(slots=2)
        task = TaskFactory(campaign=campaign)
        now = timezone.now()
        run(org_of(campaign), now)
        stub.refusal = refusal
        dial()
        task.refresh_from_db()
        assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0)
        assert not Call.objects.exists()
        assert used_slots(campaign) == 0
        retry_in = (task.next_attempt_at - now).total_seconds()
        assert (1.5 <= retry_in <= 4) if refusal is RATE_LIMITED else (0.5 <= retry_in <= 3)
        assert run(org_of(campaign), now).admitted == 0  # not before its retry time

        stub.refusal = None
        assert run(org_of(campaign), task.next_attempt_at).admitted == 1
        dial()
        task.refresh_from_db()
        call = Call.objects.get()
        assert (task.status, task.attempts_made, call.attempt, call.status) == (
            TaskStatus.IN_PROGRESS, 1, 1, CallStatus.DIALING)

    def test_a_carrier_slower_than_the_timeout_is_no_attempt(self, stub, run, dial):
        campaign = twilio_campaign(slots=2)
        task = TaskFactory(campaign=campaign)
        run(org_of(campaign), timezone.now())
        stub.delay = 0.5
        with override_settings(CARRIER_TIMEOUT_SECONDS=0.1):
            dial()
        task.refresh_from_db()
        assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0)
        assert not Call.objects.exists() and used_slots(campaign) == 0

    def test_an_unreachable_carrier_is_no_attempt_and_backs_off_longer_each_time(self, stub, run, dial):
        campaign = twilio_campaign(slots=2)
        task = TaskFactory(campaign=campaign)
        waits = []
        with override_settings(TWILIO_API_BASE_URL="http://127.0.0.1:9"):
            for _ in range(3):
                now = timezone.now()
                run(org_of(campaign), max(now, task.next_attempt_at))
                dial()
                task.refresh_from_db()
                waits.append((task.next_attempt_at - timezone.now()).total_seconds())
        assert task.attempts_made == 0 and not Call.objects.exists()
        assert waits[0] < waits[1] < waits[2]

    def test_a_paused_campaigns_call_the_carrier_could_not_take_leaves_its_task_paused(self, stub, run, dial):
        campaign = twilio_campaign(slots=2)
        task = TaskFactory(campaign=campaign)
        run(org_of(campaign), timezone.now())
        from campaigns.actions.controls import do_pause_campaign
        do_pause_campaign(campaign)
        stub.refusal = SERVER_ERROR
        dial()
        task.refresh_from_db()
        assert (task.status, task.attempts_made) == (TaskStatus.PAUSED, 0)

    def test_a_due_callback_the_carrier_could_not_take_stays_a_callback(self, stub, run, dial):
        campaign = twilio_campaign(slots=2, max_retries=2)
        now = timezone.now()
        task = TaskFactory(campaign=campaign, attempts_made=1, callback_at=now, next_attempt_at=now,
                           dispatch_rank=CALLBACK_RANK)
        run(org_of(campaign), now)
        assert Call.objects.get().is_callback
        stub.refusal = RATE_LIMITED
        dial()
        task.refresh_from_db()
        assert (task.status, task.attempts_made, task.dispatch_rank) == (TaskStatus.QUEUED, 1, CALLBACK_RANK)
        assert task.callback_at == task.next_attempt_at

    def test_an_invalid_number_is_a_failed_attempt(self, stub, run, dial):
        campaign = twilio_campaign(slots=2, max_retries=1)
        task = TaskFactory(campaign=campaign)
        run(org_of(campaign), timezone.now())
        stub.refusal = INVALID_TO
        dial()
        task.refresh_from_db()
        call = Call.objects.get()
        assert (call.status, call.outcome) == (CallStatus.ENDED, "failed")
        assert (task.attempts_made, task.last_outcome) == (1, "failed")
        assert used_slots(campaign) == 0


def test_placing_threads_starting_together_build_the_url_resolver_once(monkeypatch):
    from django.conf import settings
    from django.urls import clear_url_caches
    from django.urls.resolvers import URLResolver

    from telephony import calls

    builds = []
    build = URLResolver._populate

    def counted(resolver):
        if resolver.urlconf_name == settings.ROOT_URLCONF and not getattr(resolver._local, "populating", False):
            builds.append(threading.get_ident())
        build(resolver)

    clear_url_caches()  # a fresh worker's resolver, not yet built
    monkeypatch.setattr(URLResolver, "_populate", counted)
    monkeypatch.setattr(calls, "_callback_paths", {})
    start = threading.Barrier(30)

    def place():
        start.wait()
        calls.status_callback_url("twilio", "call-1")

    threads = [threading.Thread(target=place) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1


@pytest.mark.parametrize(("pool", "concurrency", "placing_threads"),
                         [("threads", 4, 12), ("threads", "auto", 6), ("prefork", 4, 0)])
def test_a_worker_loads_the_url_resolver_the_twilio_sdk_and_its_placing_threads_before_its_first_job(
        pool, concurrency, placing_threads):
    """In a fresh process, as a worker starts: its first calls wait on no import or thread start,
    and a thread-pool worker starts a job's placing threads for each of its own threads (the
    settings' DIALER_CONCURRENCY, 2 here, only when its concurrency is not known yet)."""
    script = f"""
import sys
import django
django.setup()
from celery.signals import worker_init
import telephony.tasks
from telephony import calls
class Worker:
    pool_cls = {pool!r}
    concurrency = {concurrency!r}
assert not calls._callback_paths
worker_init.send(sender=Worker())
assert calls._callback_paths
assert "twilio.rest.api.v2010.account.call" in sys.modules
started = len(calls._pool._threads) if calls._pool else 0
assert started == {placing_threads}, started
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DIALER_CONCURRENCY": "2", "DIAL_PLACING_THREADS": "3"}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
