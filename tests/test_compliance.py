"""Compliance guard rails end to end in-process: the policy endpoint, callee zones on tasks, legal
hours and the frequency cap at admission, the pre-dial check in the dial job, the circuit breaker.

Dial jobs run by calling what the job calls; the simulated carrier's events are applied with
`process_due_events`; the pre-dial check and webhook receivers are local HTTP stand-ins.
"""
import base64
import datetime as dt
import io
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.actions.compliance import do_set_compliance_policy, release_held_tasks
from campaigns.actions.csv_import import do_import_contacts
from campaigns.models import Campaign, CampaignStatus, CampaignType, Task, TaskStatus, Workspace
from dialer import slots
from dialer.dispatcher import dispatch_pass
from dialer.maintenance import place_admitted_calls
from telephony.models import Call, CallStatus, WebhookDelivery
from telephony.simulator import process_due_events
from telephony.webhooks_out import deliver_due_webhooks, verify_signature
from tests.factories import AgentFactory, CallingNumberFactory, CampaignFactory, OrganisationMemberFactory, TaskFactory
from tests.simulated_calls import wait_past_call_ends
from tests.test_api_auth import (  # noqa: F401  (fixtures)
    agent, api, api_key, client_for, number, realtime, workspace,
)

pytestmark = pytest.mark.django_db

FAR_FUTURE_MS = 2**52
NEW_YORK = ZoneInfo("America/New_York")


def script(*outcomes):
    return {"_sim": [{"outcome": outcome, "ring_ms": 10, "talk_ms": 10} for outcome in outcomes]}


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """One dispatcher pass and its commit hooks; returns the calls it admitted."""
    def run_pass(organisation_id, now=None):
        before = set(Call.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            dispatch_pass(organisation_id, now or timezone.now())
        return list(Call.objects.exclude(id__in=before))
    return run_pass


@pytest.fixture
def dial(django_capture_on_commit_callbacks):
    """The dial job for every admitted call, with its commit hooks."""
    def place():
        with django_capture_on_commit_callbacks(execute=True):
            place_admitted_calls([str(i) for i in Call.objects.filter(status=CallStatus.ADMITTED)
                                  .values_list("id", flat=True)])
    return place


@pytest.fixture
def end_calls(django_capture_on_commit_callbacks):
    def finish():
        with django_capture_on_commit_callbacks(execute=True):
            process_due_events(now_ms=FAR_FUTURE_MS, limit=100_000)
        wait_past_call_ends()
    return finish


def patch_policy(api, body):
    return api.patch("/api/v1/workspace/compliance", body, format="json")


def fields_of(response):
    return {error["field"] for error in response.json()["errors"]}


def hours_shut_now_in_new_york():
    """Legal hours that are closed at this moment in New York (open two to three hours from now)."""
    hour = timezone.now().astimezone(NEW_YORK).hour
    return {"start": (hour + 2) % 24 * 100, "end": (hour + 3) % 24 * 100}


class TestPolicyEndpoint:
    def test_every_rule_is_null_until_set_and_a_patch_stores_what_it_gives(self, api):
        assert set(api.get("/api/v1/workspace/compliance").json().values()) == {None}
        response = patch_policy(api, {"legalHours": {"start": 800, "end": 2100}, "legalDays": [0, 1, 2, 3, 4],
                                      "countryHours": {"IN": {"start": 900, "end": 2100}},
                                      "frequencyCap": {"attempts": 7, "windowHours": 168},
                                      "circuitBreaker": {"failureRate": 0.5, "minAttempts": 20}})
        assert response.status_code == 200, response.json()
        body = api.get("/api/v1/workspace/compliance").json()
        assert body["legalHours"] == {"start": 800, "end": 2100} and body["frequencyCap"]["attempts"] == 7
        assert body["predialWebhookUrl"] is None
        assert patch_policy(api, {"legalDays": None}).json()["legalDays"] is None

    def test_bad_values_are_400s_naming_each_field_and_nothing_is_stored(self, api, workspace):
        response = patch_policy(api, {"legalHours": {"start": 800, "end": 2460}, "frequencyCap": {"attempts": 0,
                                      "windowHours": 24}, "circuitBreaker": {"failureRate": 0.5, "minAttempts": 20},
                                      "retries": 3})
        assert response.status_code == 400
        assert fields_of(response) == {"legalHours.end", "frequencyCap.attempts", "retries"}
        assert Workspace.objects.get(id=workspace.id).compliance == {}

    def test_a_predial_url_that_reaches_a_private_address_is_refused(self, api):
        response = patch_policy(api, {"predialWebhookUrl": "http://127.0.0.1:6379/"})
        assert response.status_code == 400 and fields_of(response) == {"predialWebhookUrl"}


class TestCalleeZones:
    @pytest.mark.parametrize(("phone", "given", "zones", "source"), [
        ("+12125550100", None, ["America/New_York"], "number"),
        ("+12125550100", "America/Chicago", ["America/Chicago"], "explicit"),
        ("+61412345678", None, None, "number_zones"),  # an Australian mobile spans the continent
        ("+80012345678", None, ["UTC"], "campaign"),  # an international freephone has no zone
    ])
    def test_the_task_detail_shows_the_zones_legal_hours_are_judged_in_and_why(self, api, realtime, phone, given,
                                                                                 zones, source):
        body = {"phone": phone, "campaign": str(realtime.id), **({"timezone": given} if given else {})}
        created = api.post("/api/v1/tasks", body, format="json")
        assert created.status_code == 201, created.json()
        detail = api.get(f"/api/v1/tasks/{created.json()['id']}").json()["calleeTimezone"]
        assert detail["source"] == source
        if zones is None:
            assert {"Australia/Sydney", "Australia/Perth"} <= set(detail["zones"])
        else:
            assert detail["zones"] == zones

    def test_a_csv_import_stores_each_contact_zones_and_why(self, workspace, agent, number):
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number)
        data = b"phone,name,timezone\n+12125550100,Ada,\n+61412345678,Bo,\n+442079460958,Cy,Europe/Paris\n"
        do_import_contacts(campaign, io.BytesIO(data), filename="contacts.csv")
        tasks = {t.phone: t for t in Task.objects.filter(campaign=campaign)}
        assert (tasks["+12125550100"].callee_timezones, tasks["+12125550100"].callee_timezone_source) == \
            (["America/New_York"], "number")
        assert tasks["+61412345678"].callee_timezone_source == "number_zones"
        assert "Australia/Perth" in tasks["+61412345678"].callee_timezones
        assert (tasks["+442079460958"].callee_timezones, tasks["+442079460958"].callee_timezone_source) == \
            (["Europe/Paris"], "explicit")


class TestLegalHours:
    def test_a_new_york_number_is_held_while_legal_hours_are_shut_there_and_a_widening_dials_it(
            self, api, realtime, workspace, run):
        assert patch_policy(api, {"legalHours": hours_shut_now_in_new_york()}).status_code == 200
        created = api.post("/api/v1/tasks", {"phone": "+12125550100", "campaign": str(realtime.id)}, format="json")
        task = Task.objects.get(id=int(created.json()["id"]))
        assert run(workspace.organisation_id) == []
        task.refresh_from_db()
        assert task.status == TaskStatus.QUEUED and task.held_by == "legal_hours"
        opening = task.next_attempt_at.astimezone(NEW_YORK)
        assert opening > timezone.now() and opening.minute == 0
        assert api.get(f"/api/v1/tasks/{task.id}").json()["heldBy"] == "legal_hours"

        assert patch_policy(api, {"legalHours": {"start": 0, "end": 2400}}).status_code == 200
        task.refresh_from_db()
        assert task.next_attempt_at <= timezone.now()  # due at once, not at the old opening
        calls = run(workspace.organisation_id)
        assert [call.to_number for call in calls] == ["+12125550100"]
        task.refresh_from_db()
        assert task.status == TaskStatus.IN_PROGRESS and task.held_by == ""

    def test_the_campaign_window_still_applies_on_top_of_open_legal_hours(self, workspace, agent, number, run):
        do_set_compliance_policy(workspace, {"legalHours": {"start": 0, "end": 2400}})
        now = timezone.now()
        shut = ((now.hour + 2) % 24, (now.hour + 3) % 24)
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                   calling_start=dt.time(shut[0]), calling_end=dt.time(shut[1]))
        task = TaskFactory(campaign=campaign, phone="+12125550100", callee_timezones=["America/New_York"])
        assert run(workspace.organisation_id) == []
        task.refresh_from_db()
        assert task.held_by == "" and task.next_attempt_at.hour == shut[0]


class TestFrequencyCap:
    def test_a_cap_of_one_a_day_dials_a_number_once_across_two_campaigns(self, workspace, agent, number, run,
                                                                         dial, end_calls):
        do_set_compliance_policy(workspace, {"frequencyCap": {"attempts": 1, "windowHours": 24}})
        first, second = (CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running")
                         for _ in range(2))
        tasks = [TaskFactory(campaign=campaign, phone="+12125550100", context=script("connected"))
                 for campaign in (first, second)]
        calls = run(workspace.organisation_id)
        assert len(calls) == 1
        dial()
        end_calls()
        assert run(workspace.organisation_id) == []
        waiting = Task.objects.get(id=next(t.id for t in tasks if t.id != calls[0].task_id))
        assert waiting.status == TaskStatus.QUEUED and waiting.attempts_made == 0
        assert waiting.held_by == "frequency_cap"
        assert waiting.next_attempt_at == calls[0].created_at + dt.timedelta(hours=24)
        assert run(workspace.organisation_id, calls[0].created_at + dt.timedelta(hours=24, seconds=1))


class PredialCheck:
    """A local pre-dial endpoint answering `reply` (a dict, or "slow" to answer after the timeout)."""

    def __init__(self, reply):
        self.reply = reply
        self.received = []
        check = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                check.received.append({"headers": dict(self.headers), "body": body})
                if check.reply == "slow":
                    time.sleep(0.5)
                answer = json.dumps(check.reply if isinstance(check.reply, dict) else {"eligible": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/predial"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def predial(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = True  # the stand-in listens on loopback
    made = []

    def make(reply):
        made.append(PredialCheck(reply))
        return made[-1]

    yield make
    for check in made:
        check.close()


class TestPredialCheck:
    @pytest.fixture
    def admitted(self, workspace, agent, number, run):
        def admit(check, fail_open=False):
            do_set_compliance_policy(workspace, {"predialWebhookUrl": check.url, "predialTimeoutMs": 200,
                                                 "predialFailOpen": fail_open})
            campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                       slots=1)
            task = TaskFactory(campaign=campaign, phone="+12125550100", context={"name": "Ada"})
            [call] = run(workspace.organisation_id)
            assert slots.usage(workspace.organisation_id)["organisation"]["used"] == 1
            return task, call
        return admit

    def slot_is_free(self, workspace):
        return slots.usage(workspace.organisation_id)["organisation"]["used"] == 0

    def test_an_eligible_callee_is_dialed_after_a_signed_check(self, workspace, predial, admitted, dial):
        check = predial({"eligible": True})
        task, call = admitted(check)
        dial()
        call.refresh_from_db()
        assert call.status == CallStatus.DIALING and call.carrier_call_id
        [request] = check.received
        assert json.loads(request["body"]) == {"callId": str(call.id), "taskId": task.id, "campaignId": task.campaign_id,
                                               "phone": "+12125550100", "attempt": 1, "context": {"name": "Ada"}}
        secret = Workspace.objects.get(id=workspace.id).webhook_secret
        assert verify_signature(secret, request["headers"]["X-Dialer-Timestamp"], request["body"],
                                request["headers"]["X-Dialer-Signature"])
        assert request["headers"]["X-Dialer-Event"] == "call.predial"

    def test_an_ineligible_callee_is_not_dialed_and_the_task_is_archived(self, workspace, predial, admitted, dial):
        task, call = admitted(predial({"eligible": False}))
        dial()
        task.refresh_from_db()
        assert (task.status, task.completion_reason, task.attempts_made) == (TaskStatus.ARCHIVED, "ineligible", 0)
        assert not Call.objects.filter(id=call.id).exists()
        assert self.slot_is_free(workspace)

    def test_a_check_that_does_not_answer_in_time_fails_closed(self, workspace, predial, admitted, dial):
        task, call = admitted(predial("slow"))
        dial()
        task.refresh_from_db()
        assert (task.status, task.attempts_made) == (TaskStatus.QUEUED, 0)
        assert task.next_attempt_at > timezone.now()  # queued again a little later, not as an attempt
        assert not Call.objects.filter(id=call.id).exists()
        assert self.slot_is_free(workspace)

    def test_a_check_that_does_not_answer_in_time_is_passed_when_failing_open(self, workspace, predial, admitted,
                                                                               dial):
        task, call = admitted(predial("slow"), fail_open=True)
        dial()
        call.refresh_from_db()
        assert call.status == CallStatus.DIALING

    def test_a_workspace_without_a_check_is_dialed_without_reading_its_policy(self, workspace, agent, number, run,
                                                                              dial):
        do_set_compliance_policy(workspace, {"predialWebhookUrl": None})
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                   slots=1)
        TaskFactory(campaign=campaign, phone="+12125550100")
        [call] = run(workspace.organisation_id)
        with CaptureQueriesContext(connection) as queries:
            dial()
        call.refresh_from_db()
        assert call.status == CallStatus.DIALING
        assert not [q for q in queries if q["sql"].lstrip().startswith('SELECT "campaigns_workspace"')]


@pytest.fixture
def receiver(settings):
    """A local webhook receiver recording what it gets."""
    settings.OUTBOUND_ALLOW_PRIVATE = True
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append({"headers": dict(self.headers), "body": self.rfile.read(int(self.headers["Content-Length"]))})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", received
    server.shutdown()
    server.server_close()


class TestCircuitBreaker:
    def test_a_campaign_pauses_itself_at_the_failure_threshold_not_before_and_says_so_signed(
            self, api, workspace, agent, number, run, dial, end_calls, receiver):
        url, received = receiver
        Workspace.objects.filter(id=workspace.id).update(webhook_url=url)
        workspace.refresh_from_db()
        do_set_compliance_policy(workspace, {"circuitBreaker": {"failureRate": 0.5, "minAttempts": 4}})
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                   slots=1)
        outcomes = ["failed", "connected", "failed", "connected", "failed"]
        for index, outcome in enumerate(outcomes):
            TaskFactory(campaign=campaign, phone=f"+1212555{index:04d}", context=script(outcome),
                        next_attempt_at=timezone.now() - dt.timedelta(minutes=10 - index))
        statuses = []
        for _ in outcomes:
            run(workspace.organisation_id)
            dial()
            end_calls()
            statuses.append(Campaign.objects.get(id=campaign.id).status)
        # 1 of 1, 1 of 2, 2 of 3 failed: under four attempts nothing is judged; 2 of 4 is the threshold.
        assert statuses == ["running", "running", "running", "paused", "paused"]
        campaign.refresh_from_db()
        assert campaign.paused_reason.startswith("circuit breaker: 2 of the last 4 attempts failed")
        assert Task.objects.filter(campaign=campaign, status=TaskStatus.PAUSED).count() == 1
        assert api.get(f"/api/v1/campaigns/{campaign.id}").json()["pausedReason"] == campaign.paused_reason

        WebhookDelivery.objects.exclude(event="campaign.paused").delete()
        deliver_due_webhooks()
        [request] = received
        body = json.loads(request["body"])
        assert body["event"] == "campaign.paused" and body["data"]["campaign"] == str(campaign.id)
        assert verify_signature(workspace.webhook_secret, request["headers"]["X-Dialer-Timestamp"], request["body"],
                                request["headers"]["X-Dialer-Signature"])

        assert api.post(f"/api/v1/campaigns/{campaign.id}/resume").status_code == 200
        assert Campaign.objects.get(id=campaign.id).paused_reason == ""
        # Resumed, it starts afresh: the failures before the pause no longer count.
        run(workspace.organisation_id)
        dial()
        end_calls()
        assert Campaign.objects.get(id=campaign.id).status == CampaignStatus.RUNNING

    def test_a_realtime_campaign_without_a_breaker_never_pauses_itself(self, workspace, agent, number, run, dial,
                                                                       end_calls):
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                   type=CampaignType.REALTIME, slots=5)
        for index in range(5):
            TaskFactory(campaign=campaign, phone=f"+1212555{index:04d}", context=script("failed"))
        run(workspace.organisation_id)
        dial()
        end_calls()
        assert Campaign.objects.get(id=campaign.id).status == CampaignStatus.RUNNING


def test_a_number_used_by_another_workspace_does_not_count_against_this_cap(workspace, agent, number, run, dial,
                                                                            end_calls):
    do_set_compliance_policy(workspace, {"frequencyCap": {"attempts": 1, "windowHours": 24}})
    other = CampaignFactory(workspace__organisation=workspace.organisation, status="running")
    TaskFactory(campaign=other, phone="+12125550100", context=script("connected"))
    assert len(run(workspace.organisation_id)) == 1
    dial()
    end_calls()
    mine = CampaignFactory(workspace=workspace, agent=AgentFactory(workspace=workspace),
                           calling_number=CallingNumberFactory(workspace=workspace, number="+14155550199"),
                           status="running")
    TaskFactory(campaign=mine, phone="+12125550100")
    assert len(run(workspace.organisation_id)) == 1


def test_the_campaign_page_shows_tasks_held_by_each_rule_and_the_pre_dial_refusals(client, workspace, agent, number):
    member = OrganisationMemberFactory(organisation=workspace.organisation)
    member.user.user_permissions.add(*Permission.objects.filter(content_type__app_label="campaigns"))
    client.force_login(member.user)
    campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="paused")
    Campaign.objects.filter(id=campaign.id).update(paused_reason="circuit breaker: 10 of the last 20 attempts failed")
    TaskFactory.create_batch(3, campaign=campaign, held_by="legal_hours")
    TaskFactory.create_batch(2, campaign=campaign, held_by="frequency_cap")
    TaskFactory(campaign=campaign, status=TaskStatus.ARCHIVED, completion_reason="ineligible")
    page = client.get(f"/admin/campaigns/campaign/{campaign.id}/change/").content.decode()
    assert "held by legal hours <strong>3</strong>" in page
    assert "held by the frequency cap <strong>2</strong>" in page
    assert "pre-dial refusals <strong>1</strong>" in page
    assert "Paused itself: circuit breaker: 10 of the last 20 attempts failed" in page


def test_the_admin_saves_a_workspace_policy_through_the_same_validation(client, workspace):
    admin = User.objects.create_superuser("root", "root@example.com", "pw-long-enough-123")
    client.force_login(admin)
    url = f"/admin/campaigns/workspace/{workspace.id}/change/"
    form = {"organisation": workspace.organisation_id, "name": workspace.name, "slots": workspace.slots,
            "slot_mode": workspace.slot_mode, "webhook_url": ""}
    refused = client.post(url, {**form, "compliance_policy": '{"legalHours": {"start": 800, "end": 2500}}'})
    assert refused.status_code == 200 and "legalHours.end" in refused.content.decode()
    assert Workspace.objects.get(id=workspace.id).compliance == {}
    saved = client.post(url, {**form, "compliance_policy": '{"frequencyCap": {"attempts": 7, "windowHours": 168}}'})
    assert saved.status_code == 302
    assert Workspace.objects.get(id=workspace.id).compliance == {"frequencyCap": {"attempts": 7, "windowHours": 168}}


@pytest.mark.parametrize(("policy", "extra"), [({}, 0), ({"legalHours": {"start": 0, "end": 2400}}, 0),
                                               ({"frequencyCap": {"attempts": 3, "windowHours": 24}}, 1)])
def test_a_pass_reads_the_cap_in_one_query_and_nothing_more_for_the_other_rules(workspace, agent, number, run,
                                                                                 policy, extra):
    def queries_of_a_pass(tasks):
        campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running",
                                   slots=tasks)
        for _ in range(tasks):
            TaskFactory(campaign=campaign, phone=f"+1212555{next(phones):04d}")  # no number live yet
        with CaptureQueriesContext(connection) as captured:
            assert len(run(workspace.organisation_id)) == tasks
        Campaign.objects.filter(id=campaign.id).update(status=CampaignStatus.ARCHIVED)
        return len(captured)

    phones = itertools.count()
    queries_of_a_pass(3)  # the organisation's first pass reads what later ones find cached
    baseline = queries_of_a_pass(3)
    do_set_compliance_policy(workspace, policy, replace=True)
    assert queries_of_a_pass(3) == baseline + extra
    assert queries_of_a_pass(6) == baseline + extra  # per pass, not per candidate


def test_a_policy_change_releases_the_first_held_tasks_itself_and_leaves_the_rest_to_its_job(
        workspace, agent, number, settings, redis_client, django_capture_on_commit_callbacks):
    settings.CONTROL_INLINE_TASKS, settings.CONTROL_BATCH_TASKS = 3, 2
    campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="running")
    later = timezone.now() + dt.timedelta(hours=5)
    TaskFactory.create_batch(8, campaign=campaign, held_by="legal_hours", next_attempt_at=later)
    with django_capture_on_commit_callbacks(execute=True):
        do_set_compliance_policy(workspace, {"legalHours": {"start": 0, "end": 2400}})
    held = Task.objects.filter(campaign=campaign).exclude(held_by="")
    assert held.count() == 5 and Task.objects.filter(campaign=campaign, next_attempt_at=later).count() == 5
    # The batches wait in the controls queue, never ahead of a dispatcher run in `events`.
    assert not [raw for raw in redis_client.lrange("events", 0, -1)
                if json.loads(raw)["headers"]["task"] == "campaigns.release_held_tasks"]
    [message] = [json.loads(raw) for raw in redis_client.lrange("controls", 0, -1)
                 if json.loads(raw)["headers"]["task"] == "campaigns.release_held_tasks"]
    args, _, _ = json.loads(base64.b64decode(message["body"]))
    assert args[0] == workspace.id
    assert release_held_tasks(*args) == 5  # what the job runs
    assert not held.exists() and not Task.objects.filter(campaign=campaign, next_attempt_at=later).exists()


def test_contacts_imported_outside_legal_hours_start_at_the_legal_opening_instead_of_being_claimed(
        workspace, agent, number):
    do_set_compliance_policy(workspace, {"legalHours": hours_shut_now_in_new_york()})
    campaign = CampaignFactory(workspace=workspace, agent=agent, calling_number=number, status="scheduled")
    do_import_contacts(campaign, io.BytesIO(b"phone,name\n+12125550100,Ada\n+442079460958,Bo\n"), filename="c.csv")
    new_york, london = (Task.objects.get(campaign=campaign, phone=phone) for phone in ("+12125550100", "+442079460958"))
    assert new_york.held_by == "legal_hours" and new_york.next_attempt_at > timezone.now()
    assert new_york.next_attempt_at.astimezone(NEW_YORK).hour == hours_shut_now_in_new_york()["start"] // 100
    assert new_york.status == TaskStatus.QUEUED and london.status == TaskStatus.QUEUED


def test_a_task_whose_zones_never_share_legal_hours_is_created_archived_ineligible(api, realtime, workspace):
    do_set_compliance_policy(workspace, {"legalHours": {"start": 900, "end": 1000}})
    # A Russian mobile number spans Kaliningrad to Kamchatka: no hour is 09:00–10:00 in all of them.
    created = api.post("/api/v1/tasks", {"phone": "+79161234567", "campaign": str(realtime.id)}, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["status"], created.json()["completionReason"]) == ("archived", "ineligible")
