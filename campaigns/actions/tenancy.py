"""Tenant actions: organisations, workspaces and API keys."""
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from campaigns.api_keys import generate_key, hash_key
from campaigns.models import ApiKey, Organisation, SlotMode, Task, Workspace
from campaigns.rows import instances_from_row, select_list
from campaigns.signals import tasks_changed
from config.prepared import PreparedStatement
from telephony.outbound import validate_outbound_url

# A workspace's webhook URL is stored in a URLField of Django's default length.
MAX_WEBHOOK_URL_LENGTH = 200


def _announce_slots_changed(organisation_id):
    """Raised slots may admit waiting work at once: tell the dispatcher, after the commit."""
    transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))


def validate_workspace_allocation(organisation, slots, exclude_workspace_id=None):
    """Raise ValidationError when `slots` for one workspace would push the sum past the org total."""
    others = Workspace.objects.filter(organisation=organisation)
    if exclude_workspace_id is not None:
        others = others.exclude(id=exclude_workspace_id)
    allocated = others.aggregate(total=Sum("slots"))["total"] or 0
    if allocated + slots > organisation.total_slots:
        raise ValidationError({
            "slots": f"Workspace allocations would total {allocated + slots}, past the organisation "
                     f"total of {organisation.total_slots} ({allocated} already allocated to other workspaces)."
        })


def validate_organisation_total(organisation, total_slots):
    """Raise ValidationError when the total would fall below what its workspaces hold."""
    if organisation.pk is None:
        return
    allocated = Workspace.objects.filter(organisation_id=organisation.pk).aggregate(total=Sum("slots"))["total"] or 0
    if total_slots < allocated:
        raise ValidationError({"total_slots": f"Organisation total {total_slots} is below the {allocated} slots "
                                              "already allocated to its workspaces."})


@transaction.atomic
def do_save_organisation(organisation):
    """Create or update an organisation as edited (admin), keeping its total ≥ its allocations."""
    if organisation.pk is not None:
        Organisation.objects.select_for_update().filter(id=organisation.pk).first()
    validate_organisation_total(organisation, organisation.total_slots)
    organisation.save()
    _announce_slots_changed(organisation.pk)
    return organisation


@transaction.atomic
def do_save_workspace(workspace):
    """Create or update a workspace as edited (admin), keeping allocations within the org total."""
    # The organisation row lock serialises concurrent allocation changes in one organisation.
    organisation = Organisation.objects.select_for_update().get(id=workspace.organisation_id)
    validate_workspace_allocation(organisation, workspace.slots, exclude_workspace_id=workspace.pk)
    workspace.save()
    _announce_slots_changed(organisation.pk)
    return workspace


def validate_webhook_url(url, field="webhookUrl"):
    """A webhook URL is empty (no webhooks) or one `telephony.outbound` would call; raises
    `ValidationError({field: [reason]})`. The host is resolved now, and again at every delivery."""
    if url == "":
        return
    if not isinstance(url, str) or len(url) > MAX_WEBHOOK_URL_LENGTH:
        raise ValidationError({field: [f"must be a URL of at most {MAX_WEBHOOK_URL_LENGTH} characters, or empty"]})
    validate_outbound_url(url, field)


@transaction.atomic
def do_set_webhook_url(workspace, url):
    """Point the workspace's webhooks at `url` ("" for none), checked by `validate_webhook_url`."""
    validate_webhook_url(url)
    workspace.webhook_url = url
    workspace.save(update_fields=["webhook_url"])
    return workspace


@transaction.atomic
def do_upsert_organisation(name, total_slots):
    organisation, created = Organisation.objects.select_for_update().get_or_create(
        name=name, defaults={"total_slots": total_slots})
    if not created and organisation.total_slots != total_slots:
        validate_organisation_total(organisation, total_slots)
        organisation.total_slots = total_slots
        organisation.save(update_fields=["total_slots"])
        _announce_slots_changed(organisation.pk)
    return organisation


@transaction.atomic
def do_upsert_workspace(organisation, name, slots, slot_mode=SlotMode.HARD):
    # The organisation row lock serialises concurrent allocation changes in one organisation.
    organisation = Organisation.objects.select_for_update().get(id=organisation.id)
    workspace = Workspace.objects.filter(organisation=organisation, name=name).first()
    validate_workspace_allocation(organisation, slots, exclude_workspace_id=workspace.id if workspace else None)
    if workspace is None:
        return Workspace.objects.create(organisation=organisation, name=name, slots=slots, slot_mode=slot_mode)
    workspace.slots = slots
    workspace.slot_mode = slot_mode
    workspace.save(update_fields=["slots", "slot_mode"])
    _announce_slots_changed(organisation.pk)
    return workspace


@transaction.atomic
def do_save_membership(member):
    """Give a staff user an organisation (admin): they then see only that organisation's rows."""
    member.save()
    return member


def do_create_api_key(workspace, name=""):
    """Create a key; returns (ApiKey, raw key). The raw key exists only in this return value."""
    raw = generate_key()
    api_key = ApiKey.objects.create(workspace=workspace, name=name, prefix=raw[:10], key_hash=hash_key(raw))
    return api_key, raw


def do_revoke_api_key(api_key):
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


# Every API request and agent callback authenticates this way: plain SQL, because compiling the
# ORM's two-join select cost more CPU than the database spends answering it. Each request reads
# the row afresh, so a revoked key is refused from the revocation's commit on.
ACTIVE_KEY = PreparedStatement(f"""
SELECT {select_list(ApiKey, "k")}, {select_list(Workspace, "w")}, {select_list(Organisation, "o")}
FROM campaigns_apikey k
JOIN campaigns_workspace w ON w.id = k.workspace_id
JOIN campaigns_organisation o ON o.id = w.organisation_id
WHERE k.key_hash = %s::varchar AND k.revoked_at IS NULL
""")


def authenticate_api_key(raw_key):
    """The active ApiKey (its workspace and organisation loaded) for a raw key, or None. Lookup is by
    hash: the raw key is never stored."""
    if not raw_key:
        return None
    with connection.cursor() as cursor:
        ACTIVE_KEY.execute(cursor, [hash_key(raw_key)])
        row = cursor.fetchone()
    if row is None:
        return None
    api_key, workspace, organisation = instances_from_row(row, ApiKey, Workspace, Organisation)
    workspace.organisation = organisation
    api_key.workspace = workspace
    return api_key
