"""The workspace's settings, its setup (agents, calling numbers), slot use and the organisation's
do-not-call list."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from django.db.models import Q

from campaigns.access import (
    organisation_dnc, workspace_agents, workspace_campaigns, workspace_integrations, workspace_numbers,
)
from campaigns.api import schemas
from campaigns.api.base import WorkspaceView
from campaigns.api.errors import error, error_response
from campaigns.api.pagination import paginate
from campaigns.api.representations import agent_json, dnc_json, integration_json, number_json, workspace_json
from campaigns.actions.integrations import (
    IntegrationInUse, do_remove_integration, do_set_integration, validate_integration_body,
)
from campaigns.actions.workspace_setup import (
    NumberTaken, do_create_agent, do_create_calling_number, validate_agent_body, validate_number_body,
)
from campaigns.models import CampaignStatus, Platform
from campaigns.actions.dnc import MAX_REASON_LENGTH, InvalidPhone, do_add_dnc_numbers, do_remove_dnc_number, parse_e164
from campaigns.actions.realtime import MAX_TASKS_PER_REQUEST
from campaigns.actions.compliance import do_set_compliance_policy
from campaigns.actions.tenancy import do_set_webhook_url
from dialer.compliance import policy_json
from dialer import slots

MAX_DNC_PER_REQUEST = MAX_TASKS_PER_REQUEST


def _slot_node(node_id, allocation, mode, used):
    return {"id": str(node_id), "used": used, "allocation": allocation, "mode": mode,
            "borrowed": max(0, used - allocation)}


def slot_use_json(workspace):
    """Live use from Redis (`dialer.slots.usage`), allocations from PostgreSQL, the source of truth.

    Lists the workspace's campaigns that can still call, and any other holding live calls; nodes
    Redis does not hold yet have no live calls.
    """
    live = slots.usage(workspace.organisation_id)
    organisation = workspace.organisation
    campaigns = workspace_campaigns(workspace).filter(
        ~Q(status__in=[CampaignStatus.COMPLETED, CampaignStatus.ARCHIVED]) | Q(id__in=list(live["campaigns"])),
    ).order_by("id")
    workspace_live = live["workspaces"].get(workspace.id, {})
    return {
        "organisation": _slot_node(organisation.id, organisation.total_slots, "hard", live["organisation"]["used"]),
        "workspace": _slot_node(workspace.id, workspace.slots, workspace.slot_mode, workspace_live.get("used", 0)),
        "campaigns": [_slot_node(c.id, c.slots, c.slot_mode, live["campaigns"].get(c.id, {}).get("used", 0))
                      for c in campaigns],
    }


class WorkspaceDetailView(WorkspaceView):
    @extend_schema(operation_id="workspace_retrieve", summary="The API key's workspace and its settings",
                   responses={200: OpenApiResponse(schemas.WORKSPACE), **schemas.COMMON_ERRORS})
    def get(self, request):
        return Response(workspace_json(self.workspace))

    @extend_schema(operation_id="workspace_update", summary="Change the workspace's webhook URL",
                   description="A URL that is not http(s), or whose host resolves to a loopback, private, "
                               "link-local, shared, multicast, reserved or unspecified address, is a 400 on "
                               "`webhookUrl`.",
                   request={"application/json": schemas.WORKSPACE_UPDATE},
                   responses={200: OpenApiResponse(schemas.WORKSPACE), **schemas.BAD_REQUEST, **schemas.COMMON_ERRORS})
    def patch(self, request):
        body = self.json_object()
        unknown = [key for key in body if key != "webhookUrl"]
        if unknown:
            return error_response(400, [error(key, "Unknown field.") for key in unknown])
        if "webhookUrl" in body:
            do_set_webhook_url(self.workspace, body["webhookUrl"])
        return Response(workspace_json(self.workspace))


class ComplianceView(WorkspaceView):
    @extend_schema(operation_id="workspace_compliance_retrieve", summary="The workspace's compliance policy",
                   responses={200: OpenApiResponse(schemas.COMPLIANCE), **schemas.COMMON_ERRORS})
    def get(self, request):
        return Response(policy_json(self.workspace.compliance))

    @extend_schema(operation_id="workspace_compliance_update", summary="Change the workspace's compliance policy",
                   description="Applies at once to every attempt not yet placed. A bad value is a 400 naming the "
                               "field (dotted for nested fields, e.g. `legalHours.start`).",
                   request={"application/json": schemas.COMPLIANCE_UPDATE},
                   responses={200: OpenApiResponse(schemas.COMPLIANCE), **schemas.BAD_REQUEST,
                              **schemas.COMMON_ERRORS})
    def patch(self, request):
        return Response(policy_json(do_set_compliance_policy(self.workspace, self.json_object())))


class AgentListView(WorkspaceView):
    @extend_schema(operation_id="agents_list", summary="The workspace's agents", parameters=schemas.PAGE_PARAMETERS,
                   responses={200: OpenApiResponse(schemas.page_of(schemas.AGENT)), **schemas.BAD_REQUEST,
                              **schemas.COMMON_ERRORS})
    def get(self, request):
        agents, next_cursor = paginate(workspace_agents(self.workspace), request)
        return Response({"results": [agent_json(a) for a in agents], "nextCursor": next_cursor})

    @extend_schema(operation_id="agents_create", summary="Create an agent",
                   request={"application/json": schemas.AGENT_CREATE},
                   responses={201: OpenApiResponse(schemas.AGENT), **schemas.BAD_REQUEST, **schemas.COMMON_ERRORS})
    def post(self, request):
        agent = do_create_agent(self.workspace, validate_agent_body(self.json_object(), self.workspace))
        return Response(agent_json(agent), status=201)


class IntegrationListView(WorkspaceView):
    @extend_schema(operation_id="integrations_list", summary="The voice-AI platforms this workspace has credentials for",
                   responses={200: OpenApiResponse(schemas.obj({"results": {"type": "array",
                                                                            "items": schemas.INTEGRATION}})),
                              **schemas.COMMON_ERRORS})
    def get(self, request):
        integrations = workspace_integrations(self.workspace).order_by("platform")
        return Response({"results": [integration_json(i) for i in integrations]})


class IntegrationDetailView(WorkspaceView):
    @extend_schema(operation_id="integrations_set", summary="Set the workspace's credentials for a platform",
                   description="Creates or replaces them; a secret left out of a replacement keeps its stored value. "
                               "Secrets are stored encrypted and no response shows them.",
                   parameters=[schemas.PLATFORM], request={"application/json": schemas.INTEGRATION_SET},
                   responses={200: OpenApiResponse(schemas.INTEGRATION), 201: OpenApiResponse(schemas.INTEGRATION),
                              **schemas.BAD_REQUEST, **schemas.NOT_FOUND, **schemas.COMMON_ERRORS})
    def put(self, request, platform):
        if platform not in Platform.values:
            return error_response(404, [error(None, f"No platform {platform!r}; use one of {', '.join(Platform.values)}.")])
        stored = workspace_integrations(self.workspace).filter(platform=platform).first()
        fields = validate_integration_body(self.json_object(), stored)
        integration, created = do_set_integration(self.workspace, platform, fields)
        return Response(integration_json(integration), status=201 if created else 200)

    @extend_schema(operation_id="integrations_remove", summary="Remove the workspace's credentials for a platform",
                   description="Refused while an agent of the workspace runs on the platform or a call placed "
                               "through it is live.",
                   parameters=[schemas.PLATFORM],
                   responses={204: OpenApiResponse(description="Removed."), **schemas.NOT_FOUND,
                              409: schemas.err("Agents run on the platform, or calls placed through it are live."),
                              **schemas.COMMON_ERRORS})
    def delete(self, request, platform):
        integration = workspace_integrations(self.workspace).filter(platform=platform).first()
        if integration is None:
            return error_response(404, [error(None, f"This workspace has no credentials for {platform!r}.")])
        try:
            do_remove_integration(integration)
        except IntegrationInUse as exc:
            return error_response(409, [error(None, str(exc))])
        return Response(status=204)


class NumberListView(WorkspaceView):
    @extend_schema(operation_id="numbers_list", summary="The workspace's calling numbers",
                   parameters=schemas.PAGE_PARAMETERS,
                   responses={200: OpenApiResponse(schemas.page_of(schemas.NUMBER)), **schemas.BAD_REQUEST,
                              **schemas.COMMON_ERRORS})
    def get(self, request):
        numbers, next_cursor = paginate(workspace_numbers(self.workspace), request)
        return Response({"results": [number_json(n) for n in numbers], "nextCursor": next_cursor})

    @extend_schema(operation_id="numbers_create", summary="Add a calling number (caller ID)",
                   request={"application/json": schemas.NUMBER_CREATE},
                   responses={201: OpenApiResponse(schemas.NUMBER), **schemas.BAD_REQUEST,
                              409: schemas.err("The workspace already has this calling number."),
                              **schemas.COMMON_ERRORS})
    def post(self, request):
        try:
            number = do_create_calling_number(self.workspace, validate_number_body(self.json_object()))
        except NumberTaken as exc:
            return error_response(409, [error("number", str(exc))])
        return Response(number_json(number), status=201)


class DncListView(WorkspaceView):
    @extend_schema(operation_id="dnc_list", summary="The organisation's do-not-call list, newest first",
                   parameters=[OpenApiParameter("phone", str, description="Only this number (E.164)."),
                               *schemas.PAGE_PARAMETERS],
                   responses={200: OpenApiResponse(schemas.page_of(schemas.DNC_ENTRY)), **schemas.BAD_REQUEST,
                              **schemas.COMMON_ERRORS})
    def get(self, request):
        entries = organisation_dnc(self.workspace.organisation_id)
        if "phone" in request.query_params:
            try:
                entries = entries.filter(phone=parse_e164(request.query_params["phone"]))
            except InvalidPhone as exc:
                raise ValidationError({"phone": str(exc)}) from None
        page, next_cursor = paginate(entries, request, newest_first=True)
        return Response({"results": [dnc_json(e) for e in page], "nextCursor": next_cursor})

    @extend_schema(operation_id="dnc_add", summary="Add one number, or many, to the do-not-call list",
                   description=f"One `{{phone, reason}}` object or an array of up to {MAX_DNC_PER_REQUEST}; "
                               "numbers already listed keep their entry. Listed numbers are never dialed.",
                   request={"application/json": {"oneOf": [
                       schemas.DNC_ENTRY_CREATE,
                       {"type": "array", "items": schemas.DNC_ENTRY_CREATE, "minItems": 1,
                        "maxItems": MAX_DNC_PER_REQUEST}]}},
                   responses={201: OpenApiResponse(schemas.obj(
                       {"entries": {"type": "array", "items": schemas.DNC_ENTRY}})),
                       **schemas.BAD_REQUEST, **schemas.COMMON_ERRORS})
    def post(self, request):
        data = request.data
        if not isinstance(data, dict | list):
            return error_response(400, [error("body", "must be a {phone, reason} object or an array of them")])
        single = isinstance(data, dict)
        items = [data] if single else data
        if not 1 <= len(items) <= MAX_DNC_PER_REQUEST:
            return error_response(400, [error("body", f"send between 1 and {MAX_DNC_PER_REQUEST} numbers")])
        entries, errors = [], []
        for index, item in enumerate(items):
            item_errors = _dnc_item_errors(item, entries)
            errors.extend(e if single else {**e, "index": index} for e in item_errors)
        if errors:
            return error_response(400, errors)
        added = do_add_dnc_numbers(self.workspace.organisation_id, entries)
        return Response({"entries": [dnc_json(e) for e in added]}, status=201)


def _dnc_item_errors(item, entries):
    """Errors of one {phone, reason} item; a valid one is appended to `entries` as (e164, reason)."""
    if not isinstance(item, dict):
        return [error(None, "must be a {phone, reason} object")]
    errors = [error(key, "Unknown field.") for key in item if key not in ("phone", "reason")]
    reason = item.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        errors.append(error("reason", f"must be text of at most {MAX_REASON_LENGTH} characters"))
    try:
        phone = parse_e164(item["phone"]) if "phone" in item else None
    except InvalidPhone as exc:
        errors.append(error("phone", str(exc)))
    else:
        if phone is None:
            errors.append(error("phone", "is required"))
    if not errors:
        entries.append((phone, reason))
    return errors


class DncDetailView(WorkspaceView):
    @extend_schema(operation_id="dnc_remove", summary="Remove a number from the do-not-call list",
                   parameters=[OpenApiParameter("number", str, location=OpenApiParameter.PATH,
                                                description="The number in E.164, e.g. +14155550100.")],
                   responses={204: OpenApiResponse(description="Removed."), **schemas.NOT_FOUND,
                              **schemas.COMMON_ERRORS})
    def delete(self, request, number):
        try:
            phone = parse_e164(number)
        except InvalidPhone:
            return error_response(404, [error(None, "No such number on the do-not-call list.")])
        do_remove_dnc_number(self.workspace.organisation_id, phone)
        return Response(status=204)


class SlotsView(WorkspaceView):
    @extend_schema(operation_id="slots_retrieve", summary="Live slot use: organisation, workspace, campaigns",
                   responses={200: OpenApiResponse(schemas.SLOTS), **schemas.COMMON_ERRORS})
    def get(self, request):
        return Response(slot_use_json(self.workspace))
