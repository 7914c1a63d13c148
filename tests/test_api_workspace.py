"""Workspace setup over the API (agents, calling numbers), slot use and the do-not-call list."""
import pytest

from campaigns.models import Agent, CallingNumber, DoNotCall
from tests.factories import CampaignFactory, DoNotCallFactory
from tests.test_api_auth import agent, api, api_key, number, realtime, workspace  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def fields_of(response):
    return {e["field"] for e in response.json()["errors"]}


def test_agent_is_created_and_listed(api, workspace):
    response = api.post("/api/v1/agents", {"name": "Ava", "prompt": "Hi ${name}", "outcomes": ["interested"]},
                        format="json")
    assert response.status_code == 201, response.json()
    assert Agent.objects.get(id=int(response.json()["id"])).workspace == workspace
    assert [a["name"] for a in api.get("/api/v1/agents").json()["results"]] == ["Ava"]


def test_agent_may_list_built_in_outcomes_stored_once_in_order(api):
    response = api.post("/api/v1/agents", {"name": "Ava", "outcomes": [
        "callback", "voicemail", "interested", "callback", "connected"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["outcomes"] == ["callback", "voicemail", "interested", "connected"]
    assert Agent.objects.get().outcomes == ["callback", "voicemail", "interested", "connected"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"), ({"name": " "}, "name"), ({"name": "A", "prompt": 5}, "prompt"),
    ({"name": "A", "outcomes": ["Bad Name"]}, "outcomes"), ({"name": "A", "outcomes": ["Voicemail"]}, "outcomes"),
    ({"name": "A", "outcomes": ["no answer"]}, "outcomes"),
    ({"name": "A", "outcomes": "x"}, "outcomes"), ({"name": "A", "tone": "warm"}, "tone"),
])
def test_invalid_agent_is_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/agents", body, format="json")
    assert response.status_code == 400 and field in fields_of(response)


def test_calling_number_is_normalised_and_unique_in_the_workspace(api):
    response = api.post("/api/v1/numbers", {"number": "+44 20 7183 8750", "carrier": "twilio"}, format="json")
    assert response.status_code == 201 and response.json()["number"] == "+442071838750"
    again = api.post("/api/v1/numbers", {"number": "+442071838750"}, format="json")
    assert again.status_code == 409 and fields_of(again) == {"number"}
    assert CallingNumber.objects.count() == 1
    assert api.get("/api/v1/numbers").json()["results"][0]["carrier"] == "twilio"


@pytest.mark.parametrize(("body", "field"), [
    ({"number": "02071838750"}, "number"), ({"number": "+442071838750", "carrier": "acme"}, "carrier"),
    ({"number": "+442071838750", "callsPerSecond": 0}, "callsPerSecond"), ({}, "number"),
])
def test_invalid_number_is_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/numbers", body, format="json")
    assert response.status_code == 400 and field in fields_of(response)


def test_dnc_takes_one_or_many_numbers_and_keeps_existing_entries(api, workspace):
    DoNotCallFactory(organisation=workspace.organisation, phone="+442071838750", reason="asked")
    one = api.post("/api/v1/dnc", {"phone": "+14155550123", "reason": "complaint"}, format="json")
    assert one.status_code == 201 and one.json()["entries"][0]["reason"] == "complaint"
    many = api.post("/api/v1/dnc", [{"phone": "+442071838750", "reason": "again"}, {"phone": "+919876543210"}],
                    format="json")
    assert [e["reason"] for e in many.json()["entries"]] == ["asked", ""]
    assert DoNotCall.objects.filter(organisation=workspace.organisation).count() == 3
    listed = api.get("/api/v1/dnc?phone=%2B14155550123").json()["results"]
    assert [e["phone"] for e in listed] == ["+14155550123"]


def test_bulk_dnc_errors_are_indexed_and_nothing_is_added(api):
    response = api.post("/api/v1/dnc", [{"phone": "+14155550123"}, {"phone": "x"}, {"reason": "r" * 300}],
                        format="json")
    assert response.status_code == 400
    assert {(e["index"], e["field"]) for e in response.json()["errors"]} == {(1, "phone"), (2, "reason"),
                                                                           (2, "phone")}
    assert DoNotCall.objects.count() == 0


def test_dnc_delete_removes_the_number(api, workspace):
    DoNotCallFactory(organisation=workspace.organisation, phone="+442071838750")
    assert api.delete("/api/v1/dnc/+442071838750").status_code == 204
    assert api.delete("/api/v1/dnc/+442071838750").status_code == 404
    assert api.delete("/api/v1/dnc/garbage").status_code == 404


def test_slots_show_allocations_and_live_use(api, workspace, realtime):
    CampaignFactory(workspace=workspace, status="archived")
    body = api.get("/api/v1/slots").json()
    assert body["organisation"] == {"id": str(workspace.organisation_id), "used": 0, "allocation": 100,
                                    "mode": "hard", "borrowed": 0}
    assert body["workspace"]["allocation"] == 20
    assert [c["id"] for c in body["campaigns"]] == [str(realtime.id)]
