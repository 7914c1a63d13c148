"""Admin forms: batch campaigns (validated by `validate_campaign_body`, the same layer as the
REST API), the contact upload, and the tenant objects (checked by the API's validation too)."""
import datetime as dt

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError

from campaigns.campaign_validation import validate_campaign_body
from campaigns.actions.integrations import validate_integration_body
from campaigns.actions.workspace_setup import validate_agent_body, validate_number_body
from campaigns.actions.dnc import InvalidPhone, parse_e164
from campaigns.models import (
    Agent, ApiKey, CallingNumber, CampaignType, DoNotCall, Integration, Organisation, Outcome, Priority, SlotMode,
    Workspace,
)
from campaigns.actions.compliance import validate_policy
from campaigns.actions.tenancy import validate_organisation_total, validate_webhook_url, validate_workspace_allocation
from dialer.retry_policy import AUTO_RETRIED, OPT_IN_RETRIED, in_outcome_order
from dialer.windows import InvalidTimezone, zone

WEEKDAYS = [(0, "Monday"), (1, "Tuesday"), (2, "Wednesday"), (3, "Thursday"), (4, "Friday"), (5, "Saturday"),
            (6, "Sunday")]

# Body field → the form field its errors are shown on.
ERROR_FIELDS = {
    "type": "type", "name": "name", "agent": "agent", "from": "calling_number", "priority": "priority",
    "timezone": "timezone", "startAt": "start_at", "endAt": "end_at", "callingHours": "calling_start",
    "callingDays": "calling_days", "maxRetries": "max_retries", "retryInterval": "retry_interval_minutes",
    "retryOutcomes": "retry_outcomes", "slots": "slots", "slotMode": "slot_mode",
}


def _hhmm(value):
    return value.hour * 100 + value.minute


class CampaignSettingsForm(forms.Form):
    """Every campaign setting, turned into the camelCase body that `validate_campaign_body` (the
    REST API's validation) checks. `agents` and `numbers` are the querysets the staff user may
    choose from; after `is_valid()`, `cleaned_fields` holds the validated model field values."""

    name = forms.CharField(max_length=200)
    agent = forms.ModelChoiceField(queryset=None)
    calling_number = forms.ModelChoiceField(queryset=None, required=False, label="Calling number (caller ID)")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL)
    timezone = forms.CharField(initial="UTC", help_text="IANA name, e.g. Europe/London or Asia/Kolkata.")
    start_at = forms.SplitDateTimeField(required=False, widget=admin_widgets.AdminSplitDateTime,
                                        label="Start", help_text="In the campaign's timezone; leave empty to start now.")
    end_at = forms.SplitDateTimeField(required=False, widget=admin_widgets.AdminSplitDateTime, label="End",
                                      help_text="In the campaign's timezone; pending tasks are archived then.")
    calling_start = forms.TimeField(required=False, widget=admin_widgets.AdminTimeWidget,
                                    help_text="Daily calling hours; leave both empty to call all day.")
    calling_end = forms.TimeField(required=False, widget=admin_widgets.AdminTimeWidget,
                                  help_text="Earlier than the start crosses midnight (22:00–02:00); 00:00 is midnight.")
    calling_days = forms.TypedMultipleChoiceField(choices=WEEKDAYS, coerce=int, widget=forms.CheckboxSelectMultiple,
                                                  initial=[day for day, _ in WEEKDAYS])
    max_retries = forms.IntegerField(min_value=0, initial=0, help_text="0 = a single attempt; n = n more attempts.")
    retry_interval_minutes = forms.IntegerField(min_value=0, initial=60, label="Retry interval (minutes)",
                                                help_text="From the end of one attempt to the next.")
    retry_outcomes = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                               help_text="Also retry these outcomes. Custom outcomes apply to the "
                                                         "agent that defines them.")
    slots = forms.IntegerField(min_value=1, initial=1, help_text="Concurrent calls for this campaign.")
    slot_mode = forms.ChoiceField(choices=SlotMode.choices, initial=SlotMode.HARD,
                                  help_text="Hard: a strict cap. Soft: may borrow idle slots of the workspace.")

    always_retried = [Outcome(outcome) for outcome in in_outcome_order(AUTO_RETRIED)]

    def __init__(self, *args, agents, numbers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents
        self.fields["calling_number"].queryset = numbers
        custom = {}
        for agent in agents:
            for outcome in agent.custom_outcomes:
                custom.setdefault(outcome, []).append(agent.name)
        self.fields["retry_outcomes"].choices = [(outcome, Outcome(outcome).label)
                                                 for outcome in in_outcome_order(OPT_IN_RETRIED)] + [
            (outcome, f"{outcome} ({', '.join(names)})") for outcome, names in sorted(custom.items())]
        self.cleaned_fields = None

    def _local(self, value, timezone_name):
        """The wall-clock time the operator typed, read in the campaign's timezone."""
        try:
            tz = zone(timezone_name)
        except InvalidTimezone:
            return value  # the timezone error is reported on its own field
        return value.replace(tzinfo=None).replace(tzinfo=tz)

    def target(self):
        """(workspace, campaign type, campaign or None) the settings are validated for."""
        raise NotImplementedError

    def to_body(self):
        data = self.cleaned_data
        body = {
            "name": data["name"], "agent": data["agent"].id, "priority": data["priority"],
            "timezone": data["timezone"], "callingDays": data["calling_days"], "maxRetries": data["max_retries"],
            "retryInterval": data["retry_interval_minutes"] * 60_000, "retryOutcomes": data["retry_outcomes"],
            "slots": data["slots"], "slotMode": data["slot_mode"],
        }
        _, campaign_type, instance = self.target()
        if data["calling_number"] is not None or campaign_type == CampaignType.BATCH or instance is not None:
            body["from"] = data["calling_number"].number if data["calling_number"] else None
        start, end = data["calling_start"] or dt.time(0), data["calling_end"] or dt.time(0)
        body["callingHours"] = {"start": _hhmm(start), "end": _hhmm(end)}
        return body

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        workspace, _, instance = self.target()
        try:
            self.cleaned_fields = validate_campaign_body(workspace, self.to_body(), instance=instance)
        except ValidationError as exc:
            for key, reasons in exc.message_dict.items():
                for reason in reasons:
                    self.add_error(ERROR_FIELDS.get(key), reason)
        return data


class CampaignCreateForm(CampaignSettingsForm):
    """A new campaign: its workspace and type, then every setting; `workspaces` is the queryset
    the staff user may choose from. `cleaned_fields` go to `do_create_campaign`."""

    workspace = forms.ModelChoiceField(queryset=None)
    type = forms.ChoiceField(choices=CampaignType.choices, initial=CampaignType.BATCH,
                             help_text="Batch: one CSV of contacts. Realtime: tasks arrive through the API.")

    field_order = ["workspace", "type"]

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces

    def target(self):
        return self.cleaned_data["workspace"], self.cleaned_data["type"], None

    def to_body(self):
        data = self.cleaned_data
        body = {"type": data["type"], **super().to_body()}
        for field, key in (("start_at", "startAt"), ("end_at", "endAt")):
            if data[field] is not None:
                body[key] = self._local(data[field], data["timezone"]).isoformat()
        if data["calling_start"] is None and data["calling_end"] is None:
            del body["callingHours"]
        return body


class CampaignUpdateForm(CampaignSettingsForm):
    """The settings of an existing campaign, shown as they are and validated as a PATCH of the
    REST API. Start and end are sent only when the operator changed them (a start in the past
    stays as it is); an emptied end removes the end. `cleaned_fields` go to `do_update_campaign`."""

    def __init__(self, *args, campaign, **kwargs):
        self.campaign = campaign
        super().__init__(*args, initial=self.initial_from(campaign), **kwargs)
        self.fields["start_at"].help_text = "In the campaign's timezone; kept as it is unless you change it."
        self.fields["end_at"].help_text = "In the campaign's timezone; empty = no end. Pending tasks are archived then."

    @staticmethod
    def initial_from(campaign):
        tz = zone(campaign.timezone)

        def local(instant):
            # Seconds precision, as the widget shows it, so an untouched field is not "changed".
            return instant.astimezone(tz).replace(tzinfo=None, microsecond=0) if instant else None

        return {
            "name": campaign.name, "agent": campaign.agent_id, "calling_number": campaign.calling_number_id,
            "priority": campaign.priority, "timezone": campaign.timezone, "start_at": local(campaign.start_at),
            "end_at": local(campaign.end_at), "calling_start": campaign.calling_start,
            "calling_end": campaign.calling_end, "calling_days": list(campaign.calling_days),
            "max_retries": campaign.max_retries, "retry_interval_minutes": campaign.retry_interval_ms // 60_000,
            "retry_outcomes": list(campaign.retry_outcomes), "slots": campaign.slots, "slot_mode": campaign.slot_mode,
        }

    def target(self):
        return self.campaign.workspace, self.campaign.type, self.campaign

    def to_body(self):
        data = self.cleaned_data
        body = super().to_body()
        if self.initial["retry_interval_minutes"] == data["retry_interval_minutes"]:
            # Whole minutes in the form; keep an API-set interval that is not a whole minute.
            body["retryInterval"] = self.campaign.retry_interval_ms
        if "start_at" in self.changed_data and data["start_at"] is not None:
            body["startAt"] = self._local(data["start_at"], data["timezone"]).isoformat()
        if "end_at" in self.changed_data:
            body["endAt"] = None if data["end_at"] is None else self._local(data["end_at"], data["timezone"]).isoformat()
        return body

    def changed_fields(self):
        """The validated field values that differ from the campaign's."""
        return {name: value for name, value in self.cleaned_fields.items()
                if name != "type" and getattr(self.campaign, name) != value}


class ContactUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8; comma, semicolon or tab separated; the first column "
                                                       "is phone, with the country code.")
    skip_invalid = forms.BooleanField(required=False, label="Skip invalid rows",
                                      help_text="Import the valid rows and report the others. Otherwise a file "
                                                "with any error imports nothing.")


class OrganisationForm(forms.ModelForm):
    """Admin form: the total may not drop below what the workspaces already hold."""

    class Meta:
        model = Organisation
        fields = ["name", "total_slots"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("total_slots") is not None:
            validate_organisation_total(self.instance, cleaned["total_slots"])
        return cleaned


class WorkspaceForm(forms.ModelForm):
    """Admin form: workspace allocations may not sum past the organisation's total."""

    webhook_url = forms.URLField(required=False, assume_scheme="https",
                                 help_text="Receives call.ended and task.finished events.")
    compliance_policy = forms.JSONField(
        required=False, label="Compliance policy",
        help_text='The rules every campaign obeys, as the API\'s /workspace/compliance takes them, e.g. '
                  '{"legalHours": {"start": 800, "end": 2100}, "frequencyCap": {"attempts": 7, "windowHours": 168}}. '
                  'Empty for none.')

    class Meta:
        model = Workspace
        fields = ["organisation", "name", "slots", "slot_mode", "webhook_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("compliance_policy", self.instance.compliance)

    def clean_compliance_policy(self):
        policy = self.cleaned_data["compliance_policy"] or {}
        try:
            return validate_policy(policy)
        except ValidationError as exc:
            raise ValidationError([f"{field}: {message}" for field, messages in exc.message_dict.items()
                                   for message in messages]) from None

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"]
        try:
            validate_webhook_url(url, "webhook_url")
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["webhook_url"]) from None
        return url

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("organisation") is not None and cleaned.get("slots") is not None:
            validate_workspace_allocation(cleaned["organisation"], cleaned["slots"],
                                          exclude_workspace_id=self.instance.pk)
        return cleaned


def _raise_as_form_errors(error, field_names):
    """A body validation error (camelCase keys) as form errors on the matching form fields."""
    raise ValidationError({field_names.get(key, None): messages for key, messages in error.message_dict.items()})


class AgentForm(forms.ModelForm):
    """Admin form for an agent, checked by the API's own `validate_agent_body`; after `is_valid()`,
    `cleaned_fields` holds the validated field values."""

    outcomes = forms.CharField(required=False, help_text="Custom outcomes the agent reports, comma-separated.")

    class Meta:
        model = Agent
        fields = ["workspace", "name", "prompt", "outcomes", "runtime"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["outcomes"] = ", ".join(self.instance.outcomes)

    def clean_outcomes(self):
        return [name.strip() for name in self.cleaned_data["outcomes"].split(",") if name.strip()]

    def clean(self):
        cleaned = super().clean()
        try:
            body = {"name": cleaned.get("name") or "", "prompt": cleaned.get("prompt") or "",
                    "outcomes": cleaned.get("outcomes") or []}
            if cleaned.get("runtime"):
                body["runtime"] = cleaned["runtime"]
            self.cleaned_fields = {"runtime": {}, **validate_agent_body(body, cleaned.get("workspace"))}
        except ValidationError as error:
            _raise_as_form_errors(error, {"name": "name", "prompt": "prompt", "outcomes": "outcomes",
                                          **{key: "runtime" for key in error.message_dict if key.startswith("runtime")}})
        return cleaned


class IntegrationForm(forms.ModelForm):
    """Admin form for a platform's credentials, checked by the API's `validate_integration_body`.
    The secrets are write-only: left empty on a change, the stored ones stay."""

    api_key = forms.CharField(required=False, widget=forms.PasswordInput, help_text="Stored encrypted; never shown.")
    webhook_secret = forms.CharField(required=False, widget=forms.PasswordInput,
                                     help_text="Stored encrypted; never shown.")
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=300,
                              help_text="The platform's API base URL (empty = its public endpoint).")

    class Meta:
        model = Integration
        fields = ["workspace", "platform", "api_key", "webhook_secret", "base_url", "simulate", "concurrency"]

    def clean(self):
        cleaned = super().clean()
        body = {"baseUrl": cleaned.get("base_url") or "", "simulate": bool(cleaned.get("simulate")),
                "concurrency": cleaned.get("concurrency")}
        for name, field in (("apiKey", "api_key"), ("webhookSecret", "webhook_secret")):
            if cleaned.get(field):
                body[name] = cleaned[field]
        try:
            self.cleaned_fields = validate_integration_body(body, self.instance if self.instance.pk else None)
        except ValidationError as error:
            _raise_as_form_errors(error, {"apiKey": "api_key", "webhookSecret": "webhook_secret",
                                          "baseUrl": "base_url", "simulate": "simulate",
                                          "concurrency": "concurrency"})
        return cleaned


class CallingNumberForm(forms.ModelForm):
    """Admin form for a calling number, checked by the API's own `validate_number_body`."""

    number = forms.CharField(help_text="E.164, with the country code: +14155550100.")

    class Meta:
        model = CallingNumber
        fields = ["workspace", "number", "carrier", "calls_per_second"]

    def clean_number(self):
        return _e164_or_error(self.cleaned_data["number"])

    def clean(self):
        cleaned = super().clean()
        try:
            self.cleaned_fields = validate_number_body({
                "number": cleaned.get("number") or "", "carrier": cleaned.get("carrier"),
                "callsPerSecond": cleaned.get("calls_per_second")})
        except ValidationError as error:
            _raise_as_form_errors(error, {"number": "number", "carrier": "carrier", "callsPerSecond": "calls_per_second"})
        return cleaned


class ApiKeyForm(forms.ModelForm):
    """Admin form for a new API key: the key itself is generated, shown once, and stored hashed."""

    class Meta:
        model = ApiKey
        fields = ["workspace", "name"]


class DoNotCallForm(forms.ModelForm):
    """Admin form for a do-not-call entry; the number is stored in E.164."""

    phone = forms.CharField(help_text="E.164, with the country code: +14155550100.")

    class Meta:
        model = DoNotCall
        fields = ["organisation", "phone", "reason"]

    def clean_phone(self):
        return _e164_or_error(self.cleaned_data["phone"])


def _e164_or_error(value):
    try:
        return parse_e164(value)
    except InvalidPhone as exc:
        raise ValidationError(f"The number {exc}.") from None
