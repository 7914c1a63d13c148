import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.api_keys import hash_key
from campaigns.models import ApiKey, Organisation, Task, Workspace
from campaigns.actions.tenancy import authenticate_api_key, do_revoke_api_key
from telephony.models import CallStatus
from tests.factories import (
    ApiKeyFactory, CallFactory, CampaignFactory, OrganisationFactory, OrganisationMemberFactory, TaskFactory,
    UserFactory, WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


def run_create_workspace(*args):
    out = StringIO()
    call_command("create_workspace", *args, stdout=out)
    return json.loads(out.getvalue())


class TestCreateWorkspaceCommand:
    def test_creates_organisation_workspace_and_prints_ids(self):
        result = run_create_workspace("--org", "Acme", "--org-slots", "50", "--workspace", "Sales", "--slots", "20",
                                      "--slot-mode", "soft")
        workspace = Workspace.objects.get(id=result["workspace"])
        assert workspace.organisation_id == int(result["organisation"])
        assert (workspace.slots, workspace.slot_mode, workspace.organisation.total_slots) == (20, "soft", 50)
        assert "apiKey" not in result

    def test_is_idempotent_and_updates_in_place(self):
        first = run_create_workspace("--org", "Acme", "--org-slots", "50", "--workspace", "Sales", "--slots", "20")
        second = run_create_workspace("--org", "Acme", "--org-slots", "60", "--workspace", "Sales", "--slots", "30")
        assert first == second
        assert Organisation.objects.count() == 1 and Workspace.objects.count() == 1
        assert Workspace.objects.get().slots == 30

    def test_api_key_is_shown_once_and_stored_hashed(self):
        result = run_create_workspace("--org", "Acme", "--org-slots", "5", "--workspace", "W", "--slots", "5", "--api-key")
        stored = ApiKey.objects.get()
        assert stored.key_hash == hash_key(result["apiKey"])
        assert result["apiKey"] not in {stored.key_hash, stored.prefix}
        assert authenticate_api_key(result["apiKey"]).workspace_id == int(result["workspace"])

    def test_refuses_allocations_past_the_organisation_total(self):
        run_create_workspace("--org", "Acme", "--org-slots", "10", "--workspace", "A", "--slots", "6")
        with pytest.raises(CommandError, match="past the organisation total of 10"):
            run_create_workspace("--org", "Acme", "--org-slots", "10", "--workspace", "B", "--slots", "5")
        assert not Workspace.objects.filter(name="B").exists()


class TestConstraints:
    def test_database_refuses_workspace_allocations_past_the_total(self):
        organisation = OrganisationFactory(total_slots=10)
        WorkspaceFactory(organisation=organisation, slots=8)
        with pytest.raises(IntegrityError, match="exceed the organisation total"):
            with transaction.atomic():
                WorkspaceFactory(organisation=organisation, slots=3)

    def test_database_refuses_lowering_the_total_below_allocations(self):
        organisation = OrganisationFactory(total_slots=10)
        WorkspaceFactory(organisation=organisation, slots=8)
        with pytest.raises(IntegrityError):
            with transaction.atomic():
                Organisation.objects.filter(id=organisation.id).update(total_slots=5)

    def test_one_live_call_per_task(self):
        call = CallFactory()
        with pytest.raises(IntegrityError, match="call_one_open_per_task"):
            with transaction.atomic():
                CallFactory(task=call.task, attempt=2)

    def test_a_new_attempt_is_allowed_once_the_previous_call_ended(self):
        call = CallFactory()
        call.status, call.outcome = CallStatus.ENDED, "no-answer"
        call.save(update_fields=["status", "outcome"])
        assert CallFactory(task=call.task, attempt=2).attempt == 2

    def test_attempt_numbers_are_unique_per_task(self):
        call = CallFactory(status=CallStatus.ENDED, outcome="busy")
        with pytest.raises(IntegrityError, match="call_attempt_unique_per_task"):
            with transaction.atomic():
                CallFactory(task=call.task, attempt=1, status=CallStatus.ENDED, outcome="busy")

    def test_one_live_call_per_number_in_an_organisation(self):
        call = CallFactory()
        other_campaign = CampaignFactory(workspace=call.campaign.workspace)
        other_task = TaskFactory(campaign=other_campaign, phone=call.to_number)
        with pytest.raises(IntegrityError, match="call_one_open_per_number_in_org"):
            with transaction.atomic():
                CallFactory(task=other_task)

    def test_the_same_number_may_be_live_in_two_organisations(self):
        call = CallFactory()
        elsewhere = TaskFactory(phone=call.to_number)
        assert CallFactory(task=elsewhere).is_live

    def test_task_phone_must_be_e164(self):
        with pytest.raises(IntegrityError, match="task_phone_e164"):
            with transaction.atomic():
                TaskFactory(phone="0207 946 0000")

    def test_a_terminal_task_records_why(self):
        task = TaskFactory()
        with pytest.raises(IntegrityError, match="task_terminal_has_reason"):
            with transaction.atomic():
                Task.objects.filter(id=task.id).update(status="completed")

    def test_an_ended_call_has_an_outcome(self):
        with pytest.raises(IntegrityError, match="call_ended_has_outcome"):
            with transaction.atomic():
                CallFactory(status=CallStatus.ENDED)


class TestApiKeys:
    def test_revoked_keys_no_longer_authenticate(self):
        key = ApiKeyFactory()
        assert authenticate_api_key(key.raw_key) == key
        do_revoke_api_key(key)
        assert authenticate_api_key(key.raw_key) is None
        assert authenticate_api_key("dk_not-a-key") is None

    def test_a_key_comes_with_its_workspace_and_organisation_in_one_query(self, django_assert_num_queries):
        key = ApiKeyFactory(workspace__compliance={"recording_consent": True})
        with django_assert_num_queries(1):
            found = authenticate_api_key(key.raw_key)
            assert (found.id, found.name, found.prefix, found.created_at) == (
                key.id, key.name, key.prefix, key.created_at)
            assert found.workspace == key.workspace
            assert found.workspace.compliance == {"recording_consent": True}
            assert found.workspace.organisation.total_slots == key.workspace.organisation.total_slots


class TestAdminScoping:
    def test_staff_of_one_organisation_sees_only_its_campaigns(self, client):
        mine, theirs = CampaignFactory(name="Mine"), CampaignFactory(name="Theirs")
        member = OrganisationMemberFactory(organisation=mine.workspace.organisation)
        member.user.user_permissions.add(*__import__("django.contrib.auth.models", fromlist=["Permission"])
                                          .Permission.objects.filter(content_type__app_label__in=["campaigns", "telephony"]))
        client.force_login(member.user)
        page = client.get("/admin/campaigns/campaign/").content.decode()
        assert "Mine" in page and "Theirs" not in page
        assert client.get(f"/admin/campaigns/campaign/{theirs.id}/change/").status_code == 302
        assert client.get(f"/admin/campaigns/campaign/{mine.id}/change/").status_code == 200

    def test_superuser_sees_every_organisation(self, client):
        CampaignFactory(name="One"), CampaignFactory(name="Two")
        client.force_login(UserFactory(is_superuser=True))
        page = client.get("/admin/campaigns/campaign/").content.decode()
        assert "One" in page and "Two" in page

    def test_admin_requires_login(self, client):
        assert client.get("/admin/campaigns/campaign/").status_code == 302


def test_settings_refuse_production_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DEBUG="false")
    result = subprocess.run([sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
                             "'config.settings'); django.setup()"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_start_in_production_with_a_secret_key():
    env = dict(os.environ, DEBUG="false", SECRET_KEY="s3cret-for-this-test")
    result = subprocess.run([sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE',"
                             "'config.settings'); django.setup(); from django.conf import settings; print(settings.DEBUG)"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_times_are_stored_in_utc():
    from django.conf import settings
    assert settings.USE_TZ and settings.TIME_ZONE == "UTC"
    assert timezone.now().tzinfo is not None


class TestAllocationAdmin:
    def test_admin_refuses_a_workspace_allocation_past_the_organisation_total_with_a_message(self, client):
        organisation = OrganisationFactory(total_slots=10)
        WorkspaceFactory(organisation=organisation, slots=8)
        client.force_login(UserFactory(is_superuser=True))
        response = client.post("/admin/campaigns/workspace/add/", {
            "organisation": organisation.id, "name": "Overflow", "slots": 3, "slot_mode": "hard", "webhook_url": ""})
        assert response.status_code == 200
        assert "past the organisation total of 10" in response.content.decode()
        assert not Workspace.objects.filter(name="Overflow").exists()

    def test_admin_refuses_lowering_the_total_below_the_allocations(self, client):
        organisation = OrganisationFactory(total_slots=10)
        WorkspaceFactory(organisation=organisation, slots=8)
        client.force_login(UserFactory(is_superuser=True))
        response = client.post(f"/admin/campaigns/organisation/{organisation.id}/change/",
                               {"name": organisation.name, "total_slots": 5})
        assert response.status_code == 200
        assert "below the 8 slots already allocated" in response.content.decode()
        organisation.refresh_from_db()
        assert organisation.total_slots == 10

    def test_admin_saves_a_workspace_within_the_total(self, client):
        organisation = OrganisationFactory(total_slots=10)
        client.force_login(UserFactory(is_superuser=True))
        response = client.post("/admin/campaigns/workspace/add/", {
            "organisation": organisation.id, "name": "Fits", "slots": 10, "slot_mode": "soft", "webhook_url": ""})
        assert response.status_code == 302
        assert Workspace.objects.get(name="Fits").slot_mode == "soft"
