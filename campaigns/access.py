"""Tenant access in one place: every object a workspace may reach is looked up here.

Each `access_*` function raises the same `Http404` whether the object is missing, malformed or
belongs to another workspace, so a response never confirms that someone else's object exists.
"""
import uuid

from django.http import Http404

from campaigns.models import Agent, CallingNumber, Campaign, DoNotCall, Integration, Task
from telephony.models import Call

# Primary keys are PostgreSQL bigints; a larger number would be a database error, not a 404.
MAX_BIGINT = 2**63 - 1


def parse_bigint_id(value):
    """The integer id in `value` (a str or int), or None when it cannot be one of our ids."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        return None
    if not 1 <= number <= MAX_BIGINT:
        return None
    return number


def workspace_campaigns(workspace):
    return Campaign.objects.filter(workspace=workspace)


def workspace_tasks(workspace):
    return Task.objects.filter(campaign__workspace=workspace)


def workspace_agents(workspace):
    return Agent.objects.filter(workspace=workspace)


def workspace_numbers(workspace):
    return CallingNumber.objects.filter(workspace=workspace)


def workspace_integrations(workspace):
    return Integration.objects.filter(workspace=workspace)


def organisation_dnc(organisation_id):
    return DoNotCall.objects.filter(organisation_id=organisation_id)


def access_campaign_by_id(workspace, campaign_id, queryset=None):
    number = parse_bigint_id(campaign_id)
    if number is None:
        raise Http404("No such campaign.")
    campaign = (queryset if queryset is not None else Campaign.objects).filter(
        id=number,
        workspace=workspace,
    ).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def access_task_by_id(workspace, task_id, queryset=None):
    number = parse_bigint_id(task_id)
    if number is None:
        raise Http404("No such task.")
    task = (queryset if queryset is not None else Task.objects).filter(
        id=number,
        campaign__workspace=workspace,
    ).first()
    if task is None:
        raise Http404("No such task.")
    return task


def access_call_by_id(workspace, call_id, queryset=None):
    try:
        call_uuid = uuid.UUID(str(call_id))
    except ValueError:
        raise Http404("No such call.") from None
    call = (queryset if queryset is not None else Call.objects).filter(
        id=call_uuid,
        campaign__workspace=workspace,
    ).first()
    if call is None:
        raise Http404("No such call.")
    return call


def access_dnc_entry(organisation_id, phone):
    entry = DoNotCall.objects.filter(
        organisation_id=organisation_id,
        phone=phone,
    ).first()
    if entry is None:
        raise Http404("No such number on the do-not-call list.")
    return entry
