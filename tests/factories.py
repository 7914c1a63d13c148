"""factory-boy factories for every model."""
import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone as django_timezone

from campaigns.api_keys import generate_key, hash_key
from campaigns.models import (
    Agent, ApiKey, CallingNumber, Campaign, CampaignType, ContactImport, ControlRecord, DoNotCall, IdempotencyRecord,
    Integration, Organisation, OrganisationMember, SlotMode, Task, Workspace,
)
from campaigns.encryption import encrypt
from telephony.models import Call, CallEvent, WebhookDelivery


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Org {n}")
    total_slots = 100


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Workspace {n}")
    slots = 10
    slot_mode = SlotMode.HARD


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganisationMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganisationMember

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    prompt = "Hello ${name}, this is a reminder."
    outcomes = factory.LazyFunction(list)


class IntegrationFactory(factory.django.DjangoModelFactory):
    """`IntegrationFactory(api_key="k", webhook_secret="s")` stores both encrypted."""

    class Meta:
        model = Integration
        exclude = ["api_key", "webhook_secret"]

    workspace = factory.SubFactory(WorkspaceFactory)
    platform = "vapi"
    api_key = "platform-test-api-key"
    webhook_secret = "platform-test-webhook-secret"
    api_key_encrypted = factory.LazyAttribute(lambda i: encrypt(i.api_key))
    webhook_secret_encrypted = factory.LazyAttribute(lambda i: encrypt(i.webhook_secret))


class CallingNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallingNumber

    workspace = factory.SubFactory(WorkspaceFactory)
    # Area code 628: never one of the +1 415 numbers tests choose themselves for a workspace.
    number = factory.Sequence(lambda n: f"+1628555{n % 10000:04d}")
    # Generous, so that tests about anything else are never paced; pacing tests set their own.
    calls_per_second = 1000


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """`ApiKeyFactory()` stores a hash; the raw key is on the instance as `raw_key` (never saved)."""

    class Meta:
        model = ApiKey

    workspace = factory.SubFactory(WorkspaceFactory)
    name = "test key"
    raw_key = factory.LazyFunction(generate_key)
    prefix = factory.LazyAttribute(lambda k: k.raw_key[:10])
    key_hash = factory.LazyAttribute(lambda k: hash_key(k.raw_key))

    @classmethod
    def _create(cls, model_class, *args, raw_key=None, **kwargs):
        instance = super()._create(model_class, *args, **kwargs)
        instance.raw_key = raw_key
        return instance


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    workspace = factory.SubFactory(WorkspaceFactory)
    type = CampaignType.BATCH
    name = factory.Sequence(lambda n: f"Campaign {n}")
    agent = factory.SubFactory(AgentFactory, workspace=factory.SelfAttribute("..workspace"))
    calling_number = factory.SubFactory(CallingNumberFactory, workspace=factory.SelfAttribute("..workspace"))
    timezone = "UTC"
    start_at = factory.LazyFunction(django_timezone.now)
    calling_start = dt.time(0, 0)
    calling_end = dt.time(0, 0)
    slots = 5


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    campaign = factory.SubFactory(CampaignFactory)
    phone = factory.Sequence(lambda n: f"+4420{n % 100000000:08d}")
    context = factory.LazyFunction(lambda: {"name": "Ada"})
    next_attempt_at = factory.LazyFunction(django_timezone.now)


class DoNotCallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DoNotCall

    organisation = factory.SubFactory(OrganisationFactory)
    phone = factory.Sequence(lambda n: f"+3312{n % 10000000:07d}")


class ContactImportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactImport

    campaign = factory.SubFactory(CampaignFactory)
    filename = "contacts.csv"


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdempotencyRecord

    workspace = factory.SubFactory(WorkspaceFactory)
    key = factory.Sequence(lambda n: f"key-{n}")
    request_hash = "0" * 64
    response_status = 201
    response_body = factory.LazyFunction(dict)


class CallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Call

    task = factory.SubFactory(TaskFactory)
    campaign = factory.SelfAttribute("task.campaign")
    organisation = factory.SelfAttribute("task.campaign.workspace.organisation")
    attempt = 1
    agent = factory.SelfAttribute("task.campaign.agent")
    carrier = "simulated"
    from_number = factory.SelfAttribute("task.campaign.calling_number.number")
    to_number = factory.SelfAttribute("task.phone")


class CallEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallEvent

    call = factory.SubFactory(CallFactory)
    carrier = "simulated"
    kind = "ringing"
    payload = factory.LazyFunction(dict)


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookDelivery

    workspace = factory.SubFactory(WorkspaceFactory)
    event = "call.ended"
    url = "http://127.0.0.1:9/hook"
    payload = factory.LazyFunction(dict)
    next_attempt_at = factory.LazyFunction(django_timezone.now)


class ControlRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ControlRecord

    campaign = factory.SubFactory(CampaignFactory)
    action = "pause"
    source = "api"
    actor_kind = "api_key"
    actor_name = "test key"
    actor_prefix = "dk_test123"
