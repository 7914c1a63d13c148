import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from campaigns.actions.campaigns import do_create_campaign
from campaigns.campaign_validation import validate_campaign_body
from campaigns.models import CampaignStatus
from tests.factories import AgentFactory, CallingNumberFactory, CampaignFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def workspace():
    return WorkspaceFactory(slots=10)


@pytest.fixture
def agent(workspace):
    return AgentFactory(workspace=workspace, outcomes=["appointment-set", "wrong-person"])


@pytest.fixture
def number(workspace):
    return CallingNumberFactory(workspace=workspace, number="+14155550100")


@pytest.fixture
def body(agent, number):
    return {"type": "batch", "name": "Renewals", "agent": str(agent.id), "from": number.number}


def errors_of(workspace, body, instance=None):
    with pytest.raises(ValidationError) as caught:
        validate_campaign_body(workspace, body, instance, now=NOW)
    return caught.value.message_dict


class TestCreate:
    def test_minimal_body_gets_the_documented_defaults(self, workspace, body, agent, number):
        fields = validate_campaign_body(workspace, body, now=NOW)
        assert fields == {
            "type": "batch", "name": "Renewals", "agent": agent, "calling_number": number, "priority": "normal",
            "timezone": "UTC", "start_at": NOW, "end_at": None, "calling_start": dt.time(0), "calling_end": dt.time(0),
            "calling_days": [0, 1, 2, 3, 4, 5, 6], "max_retries": 0, "retry_interval_ms": 3_600_000,
            "retry_outcomes": [], "slots": 1, "slot_mode": "hard",
        }

    def test_full_body_maps_to_model_fields(self, workspace, body, agent):
        body.update({
            "agent": agent.id, "priority": "high", "timezone": "Asia/Kolkata", "startAt": "2030-06-01T09:00:00+05:30",
            "endAt": "2030-06-30T18:00:00Z", "callingHours": {"start": 2200, "end": 200}, "callingDays": [4, 0, 4],
            "maxRetries": 2, "retryInterval": 180000, "retryOutcomes": ["voicemail", "busy", "appointment-set", "voicemail"],
            "slots": 10, "slotMode": "soft",
        })
        fields = validate_campaign_body(workspace, body, now=NOW)
        assert fields["start_at"] == dt.datetime(2030, 6, 1, 3, 30, tzinfo=dt.timezone.utc)
        assert fields["end_at"] == dt.datetime(2030, 6, 30, 18, 0, tzinfo=dt.timezone.utc)
        assert (fields["calling_start"], fields["calling_end"], fields["calling_days"]) == (dt.time(22), dt.time(2), [0, 4])
        assert fields["retry_outcomes"] == ["voicemail", "appointment-set"]  # auto-retried ones are always on
        assert (fields["priority"], fields["timezone"], fields["max_retries"], fields["retry_interval_ms"],
                fields["slots"], fields["slot_mode"]) == ("high", "Asia/Kolkata", 2, 180000, 10, "soft")

    def test_end_of_day_2400_means_midnight(self, workspace, body):
        body["callingHours"] = {"start": 1800, "end": 2400}
        fields = validate_campaign_body(workspace, body, now=NOW)
        assert (fields["calling_start"], fields["calling_end"]) == (dt.time(18), dt.time(0))

    def test_realtime_campaigns_may_leave_the_calling_number_to_each_task(self, workspace, body):
        body.update({"type": "realtime", "from": None})
        assert validate_campaign_body(workspace, body, now=NOW)["calling_number"] is None
        del body["from"]
        assert validate_campaign_body(workspace, body, now=NOW)["calling_number"] is None

    def test_both_calling_hours_are_checked(self, workspace, body):
        body["callingHours"] = {"start": 1060, "end": 2401}
        assert errors_of(workspace, body) == {"callingHours": [
            "start: 1060 is not an HHMM time (0000 to 2359, end up to 2400).",
            "end: 2401 is not an HHMM time (0000 to 2359, end up to 2400).",
        ]}

    def test_every_error_is_reported_at_once_by_camel_case_field(self, workspace):
        errors = errors_of(workspace, {"type": "batch", "name": " ", "slots": 0, "colour": "red", "startAt": "soon"})
        assert errors == {
            "colour": ["Unknown field."],
            "agent": ["This field is required."],
            "name": ["Give the campaign a name."],
            "startAt": ["'soon' is not an ISO 8601 date and time."],
            "slots": ["Must be at least 1."],
            "from": ["This field is required."],
        }

    def test_a_body_that_is_not_an_object_is_refused(self, workspace):
        assert errors_of(workspace, ["batch"]) == {"body": ["Expected a JSON object."]}

    @pytest.mark.parametrize("field, value, message", [
        ("type", "bulk", "Must be one of batch, realtime, not 'bulk'."),
        ("name", "x" * 201, "At most 200 characters."),
        ("priority", "urgent", "Must be one of low, normal, high, not 'urgent'."),
        ("timezone", "Mars/Olympus", "'Mars/Olympus' is not an IANA timezone (like Europe/London)."),
        ("timezone", "", "'' is not an IANA timezone (like Europe/London)."),
        ("startAt", "2030-06-01T09:00:00", "'2030-06-01T09:00:00' has no UTC offset: add Z or one like +05:30."),
        ("startAt", 1748629800000, "Give an ISO 8601 date and time with an offset, like 2025-06-01T09:00:00+05:30, "
                                   "not 1748629800000."),
        ("endAt", "2030-04-30T00:00:00Z", "Must be after startAt."),
        ("callingHours", {"start": 1000}, 'Give the daily window as {"start": HHMM, "end": HHMM}, like '
                                          '{"start": 1000, "end": 2000}.'),
        ("callingHours", {"start": 1060, "end": 1800},
         "start: 1060 is not an HHMM time (0000 to 2359, end up to 2400)."),
        ("callingHours", {"start": 2400, "end": 900}, "start: 2400 is only allowed as an end (midnight); start at 0 "
                                                      "instead."),
        ("callingHours", {"start": "1000", "end": 1800},
         "start: '1000' is not an HHMM time (0000 to 2359, end up to 2400)."),
        ("callingDays", [], "Give a non-empty list of weekdays, 0 = Monday to 6 = Sunday."),
        ("callingDays", [1, 7], "Give a non-empty list of weekdays, 0 = Monday to 6 = Sunday."),
        ("maxRetries", -1, "Must be at least 0."),
        ("maxRetries", 101, "Must be at most 100."),
        ("maxRetries", True, "Must be a whole number, not True."),
        ("retryInterval", 1.5, "Must be a whole number, not 1.5."),
        ("retryInterval", -1, "Must be at least 0 ms."),
        ("retryOutcomes", "voicemail", 'Give a list of outcome names, like ["voicemail"].'),
        ("retryOutcomes", ["connected", "opt-out"], "connected, opt-out is never retried."),
        ("retryOutcomes", ["voicemail", "sale"], "sale: not an outcome agent {agent} can give (retriable: voicemail, "
                                                 "silent and its custom outcomes: appointment-set, wrong-person)."),
        ("slots", 11, "Must be at most 10, the workspace's slots."),
        ("slotMode", "flexible", "Must be one of hard, soft, not 'flexible'."),
        ("agent", "abc", "No agent 'abc' in this workspace."),
        ("from", "4155550100", "Give the calling number in E.164, like +14155550100, not '4155550100'."),
        ("from", "+14155550199", "+14155550199 is not a calling number of this workspace."),
        ("from", None, "A batch campaign needs a calling number."),
    ])
    def test_each_rule_names_its_field_and_reason(self, workspace, body, agent, field, value, message):
        body[field] = value
        assert errors_of(workspace, body) == {field: [message.replace("{agent}", agent.name)]}

    def test_the_end_must_be_in_the_future(self, workspace, body):
        body.update({"startAt": "2030-01-01T00:00:00Z", "endAt": "2030-02-01T00:00:00Z"})
        assert errors_of(workspace, body) == {"endAt": ["Must be in the future."]}

    def test_agents_and_numbers_of_another_workspace_are_not_found(self, workspace, body):
        stranger = AgentFactory()
        body.update({"agent": stranger.id, "from": CallingNumberFactory(workspace=stranger.workspace).number})
        errors = errors_of(workspace, body)
        assert errors["agent"] == [f"No agent {stranger.id!r} in this workspace."]
        assert errors["from"][0].endswith("is not a calling number of this workspace.")

    def test_do_create_campaign_stores_a_scheduled_campaign(self, workspace, body):
        campaign = do_create_campaign(workspace, validate_campaign_body(workspace, body, now=NOW))
        campaign.refresh_from_db()
        assert (campaign.status, campaign.workspace, campaign.name, campaign.start_at) == (
            CampaignStatus.SCHEDULED, workspace, "Renewals", NOW)


class TestUpdate:
    @pytest.fixture
    def campaign(self, workspace, agent, number):
        return CampaignFactory(workspace=workspace, agent=agent, calling_number=number, start_at=NOW,
                               end_at=NOW + dt.timedelta(days=3), retry_outcomes=["appointment-set"], slots=4)

    def test_fields_are_optional_and_merged_over_the_instance(self, workspace, campaign):
        fields = validate_campaign_body(workspace, {"slots": 7, "callingHours": {"start": 900, "end": 1700}},
                                        campaign, now=NOW)
        assert (fields["slots"], fields["calling_start"], fields["calling_end"]) == (7, dt.time(9), dt.time(17))
        assert (fields["name"], fields["agent"], fields["end_at"], fields["retry_outcomes"]) == (
            campaign.name, campaign.agent, campaign.end_at, ["appointment-set"])

    def test_the_type_cannot_change(self, workspace, campaign):
        assert errors_of(workspace, {"type": "realtime"}, campaign) == {
            "type": ["A campaign's type cannot change (this one is batch)."]}

    def test_an_empty_update_changes_nothing(self, workspace, campaign):
        assert validate_campaign_body(workspace, {}, campaign, now=NOW)["start_at"] == campaign.start_at

    def test_a_new_start_must_stay_before_the_existing_end(self, workspace, campaign):
        assert errors_of(workspace, {"startAt": "2030-06-01T00:00:00Z"}, campaign) == {
            "startAt": ["Must be before the campaign's end."]}

    def test_the_end_can_be_removed(self, workspace, campaign):
        assert validate_campaign_body(workspace, {"endAt": None}, campaign, now=NOW)["end_at"] is None

    def test_switching_agent_rechecks_the_kept_retry_outcomes(self, workspace, campaign):
        other = AgentFactory(workspace=workspace, outcomes=[])
        errors = errors_of(workspace, {"agent": other.id}, campaign)
        assert list(errors) == ["retryOutcomes"]
        assert errors["retryOutcomes"][0].startswith("appointment-set: not an outcome agent")
