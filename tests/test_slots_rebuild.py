"""After Redis loses its data, leases are rebuilt from the live calls in PostgreSQL."""
import pytest
from django.core.management import call_command

from dialer import keys, slots
from dialer.slot_model import Denial
from telephony.models import Call, CallStatus
from tests.factories import CallFactory, CampaignFactory, OrganisationFactory, TaskFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def organisation():
    organisation = OrganisationFactory(total_slots=10)
    for _ in range(2):
        workspace = WorkspaceFactory(organisation=organisation, slots=5)
        CampaignFactory(workspace=workspace, slots=5)
    return organisation


def place_calls(organisation, count):
    campaigns = list(organisation.workspaces.all()[0].campaigns.all()) + list(
        organisation.workspaces.all()[1].campaigns.all())
    calls = []
    for i in range(count):
        call = CallFactory(task=TaskFactory(campaign=campaigns[i % 2]))
        lease = slots.acquire(organisation.id, call.campaign_id, call.id)
        call.lease_token = lease.token
        call.save(update_fields=["lease_token"])
        calls.append(call)
    return calls


def test_rebuild_after_flushdb_restores_exactly_the_live_calls_leases(organisation, redis_client):
    slots.sync_allocations(organisation.id)
    calls = place_calls(organisation, 6)
    for call in calls[:2]:
        Call.objects.filter(id=call.id).update(status=CallStatus.ENDED, outcome="connected")
    live = {str(call.id): call for call in calls[2:]}
    redis_client.flushdb()
    assert slots.acquire(organisation.id, calls[0].campaign_id, "new") == slots.Denied(Denial.EPOCH_MISSING)

    assert slots.rebuild_leases(organisation.id) == {organisation.id: 4}

    records = redis_client.hgetall(keys.lease_records(organisation.id))
    assert set(records) == set(live)
    for call_id, call in live.items():
        token, _, campaign_id, workspace_id = records[call_id].split()
        assert (int(token), int(campaign_id), int(workspace_id)) == (
            call.lease_token, call.campaign_id, call.campaign.workspace_id)
    readout = slots.usage(organisation.id)
    assert readout["organisation"]["used"] == 4
    assert {c: n["used"] for c, n in readout["campaigns"].items()} == {
        calls[2].campaign_id: 2, calls[3].campaign_id: 2}
    new = slots.acquire(organisation.id, calls[0].campaign_id, "new")
    assert new.admitted and new.token > max(call.lease_token for call in calls)
    assert all(slots.release(organisation.id, call_id, call.lease_token) for call_id, call in live.items())


def test_sync_allocations_rebuilds_when_the_epoch_is_missing_and_is_a_no_op_when_unchanged(organisation, redis_client):
    assert slots.sync_allocations(organisation.id) is True
    calls = place_calls(organisation, 2)
    assert slots.sync_allocations(organisation.id) is False
    redis_client.flushdb()
    assert slots.sync_allocations(organisation.id) is True
    assert set(redis_client.hgetall(keys.lease_records(organisation.id))) == {str(call.id) for call in calls}


def test_sync_allocations_rewrites_a_changed_tree_and_drops_archived_campaigns(organisation):
    slots.sync_allocations(organisation.id)
    campaign = organisation.workspaces.all()[0].campaigns.get()
    campaign.status = "archived"
    campaign.save(update_fields=["status"])
    assert slots.sync_allocations(organisation.id) is True
    assert campaign.id not in slots.usage(organisation.id)["campaigns"]
    assert slots.acquire(organisation.id, campaign.id, "x") == slots.Denied(Denial.UNKNOWN_CAMPAIGN)


def test_a_live_call_without_a_stored_token_gets_one_on_rebuild(organisation, redis_client):
    slots.sync_allocations(organisation.id)
    campaign = organisation.workspaces.all()[0].campaigns.get()
    call = CallFactory(task=TaskFactory(campaign=campaign))
    slots.rebuild_leases(organisation.id)
    call.refresh_from_db()
    assert call.lease_token is not None
    assert slots.release(organisation.id, call.id, call.lease_token) is True


def test_rebuild_slots_command_reopens_admission_for_every_organisation(organisation, redis_client, capsys):
    slots.sync_allocations(organisation.id)
    place_calls(organisation, 3)
    redis_client.flushdb()
    call_command("rebuild_slots")
    assert f"organisation {organisation.id}: 3 live call leases" in capsys.readouterr().out
    assert slots.usage(organisation.id)["organisation"]["used"] == 3


def test_a_call_that_ends_while_its_lease_is_being_restored_keeps_no_lease(organisation, redis_client, monkeypatch):
    slots.sync_allocations(organisation.id)
    calls = place_calls(organisation, 3)
    redis_client.flushdb()
    real_restore = slots.restore_leases

    def call_ends_first(organisation_id, leases, now_ms=None):
        # Read as live, then ended: its release found no lease, since Redis had none yet.
        Call.objects.filter(id=calls[0].id).update(status=CallStatus.ENDED, outcome="connected")
        assert slots.release(organisation_id, calls[0].id, calls[0].lease_token) is False
        return real_restore(organisation_id, leases, now_ms=now_ms)

    monkeypatch.setattr(slots, "restore_leases", call_ends_first)
    slots.rebuild_leases(organisation.id)
    assert set(redis_client.hgetall(keys.lease_records(organisation.id))) == {str(call.id) for call in calls[1:]}
    assert slots.usage(organisation.id)["organisation"]["used"] == 2
