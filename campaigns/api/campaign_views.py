"""Campaigns: create, list, detail with counts, update, controls, contacts and their tasks."""
from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from campaigns.actions import controls
from campaigns.actions.control_jobs import running_controls
from campaigns.access import access_campaign_by_id, workspace_campaigns
from campaigns.api import schemas
from campaigns.api.base import WorkspaceView
from campaigns.api.errors import error, error_response
from campaigns.api.idempotency import respond_idempotently
from campaigns.api.pagination import paginate
from campaigns.api.representations import campaign_json, contact_import_json, control_record_json, task_json
from campaigns.actions.audit import campaign_history
from campaigns.actions.campaigns import do_create_campaign
from campaigns.campaign_validation import type_change, validate_campaign_body
from campaigns.actions.csv_import import ImportRefused, do_import_contacts
from campaigns.models import Task, TaskStatus
from telephony.models import Call

TRUE_VALUES = {"true", "1", "yes", "on"}
FALSE_VALUES = {"false", "0", "no", "off", ""}


def campaign_counts(campaign_ids):
    """({campaign id: {status: tasks}}, {campaign id: {outcome: calls}}), one grouped query each.

    Served by the (campaign, status, id) task index and the (campaign, outcome) call index;
    `order_by()` clears the models' default ordering, which would otherwise join the GROUP BY.
    """
    task_counts, call_outcomes = {}, {}
    rows = (Task.objects.filter(campaign_id__in=campaign_ids).order_by()
            .values_list("campaign_id", "status").annotate(n=Count("id")))
    for campaign_id, status, n in rows:
        task_counts.setdefault(campaign_id, {})[status] = n
    rows = (Call.objects.filter(campaign_id__in=campaign_ids).exclude(outcome="").order_by()
            .values_list("campaign_id", "outcome").annotate(n=Count("id")))
    for campaign_id, outcome, n in rows:
        call_outcomes.setdefault(campaign_id, {})[outcome] = n
    return task_counts, call_outcomes


def campaigns_json(campaigns):
    ids = [campaign.id for campaign in campaigns]
    task_counts, call_outcomes = campaign_counts(ids)
    running = running_controls(ids)
    return [campaign_json(c, task_counts.get(c.id), call_outcomes.get(c.id), running.get(c.id)) for c in campaigns]


def campaign_of(view, campaign_id):
    return access_campaign_by_id(view.workspace, campaign_id,
                                 queryset=workspace_campaigns(view.workspace).select_related("agent", "calling_number"))


class CampaignListView(WorkspaceView):
    @extend_schema(operation_id="campaigns_list", summary="List the workspace's campaigns, newest first",
                   parameters=schemas.PAGE_PARAMETERS,
                   responses={200: OpenApiResponse(schemas.page_of(schemas.CAMPAIGN)), **schemas.BAD_REQUEST,
                              **schemas.COMMON_ERRORS})
    def get(self, request):
        campaigns, next_cursor = paginate(
            workspace_campaigns(self.workspace).select_related("agent", "calling_number"), request, newest_first=True)
        return Response({"results": campaigns_json(campaigns), "nextCursor": next_cursor})

    @extend_schema(operation_id="campaigns_create", summary="Create a batch or realtime campaign",
                   description="A realtime campaign's response carries `sampleTask`, a ready-to-use Create Task "
                               "body with the campaign's defaults. Honours `Idempotency-Key`.",
                   request={"application/json": schemas.CAMPAIGN_CREATE},
                   parameters=[schemas.IDEMPOTENCY_KEY],
                   responses={201: OpenApiResponse(schemas.CAMPAIGN), **schemas.BAD_REQUEST,
                              422: schemas.err("Idempotency-Key already used for another request."),
                              **schemas.COMMON_ERRORS})
    def post(self, request):
        body = self.json_object()

        def create():
            campaign = do_create_campaign(self.workspace, validate_campaign_body(self.workspace, body))
            return Response(campaign_json(campaign), status=201)

        return respond_idempotently(request, self.workspace, create)


class CampaignDetailView(WorkspaceView):
    @extend_schema(operation_id="campaigns_retrieve", summary="A campaign with task counts and call outcomes",
                   responses={200: OpenApiResponse(schemas.CAMPAIGN), **schemas.NOT_FOUND, **schemas.COMMON_ERRORS})
    def get(self, request, campaign_id):
        return Response(campaigns_json([campaign_of(self, campaign_id)])[0])

    @extend_schema(operation_id="campaigns_update", summary="Update a campaign's settings",
                   description="Takes effect for every attempt not yet placed: the answer comes at once, "
                               "and a large campaign's tasks are re-timed in the background (see `control`). "
                               "The answer is the campaign as updated without `taskCounts` and `callOutcomes`: "
                               "GET the campaign for those. Refused (409) for a completed or archived campaign.",
                   request={"application/json": schemas.CAMPAIGN_UPDATE},
                   responses={200: OpenApiResponse(schemas.UPDATED_CAMPAIGN), **schemas.BAD_REQUEST, **schemas.NOT_FOUND,
                              409: schemas.err("The campaign is completed or archived, or the body changes its type."),
                              **schemas.COMMON_ERRORS})
    def patch(self, request, campaign_id):
        campaign = campaign_of(self, campaign_id)
        body = self.json_object()
        if reason := type_change(body, campaign):
            return error_response(409, [error("type", reason)])
        fields = validate_campaign_body(self.workspace, body, instance=campaign)
        try:
            controls.do_update_campaign(campaign, fields, actor=self.actor)
        except controls.ControlRefused as exc:
            return error_response(409, [error(None, str(exc))])
        updated = campaign_of(self, campaign_id)
        return Response(campaign_json(updated, control=running_controls([updated.id]).get(updated.id), counted=False))


class CampaignControlView(WorkspaceView):
    """Base of pause/resume/archive: each subclass names its action in `control`, its `verb` in
    the audit trail."""

    control = None
    verb = None

    def apply_control(self, campaign_id):
        campaign = campaign_of(self, campaign_id)
        try:
            changed = type(self).control(campaign, actor=self.actor)
        except controls.ControlRefused as exc:
            return error_response(409, [error(None, str(exc))])
        campaign.refresh_from_db(fields=["status"])
        return Response({"changed": changed, "status": campaign.status,
                         "control": running_controls([campaign.id]).get(campaign.id)})


def control_schema(noun, verb, description):
    return extend_schema(operation_id=f"{noun}s_{verb}", summary=f"{verb.capitalize()} a {noun}",
                         description=description, request=None,
                         responses={200: OpenApiResponse(schemas.CONTROL_RESULT if noun == "campaign"
                                                         else schemas.TASK_CONTROL_RESULT), **schemas.NOT_FOUND,
                                    409: schemas.err(f"The {noun} cannot be {verb}d in its state."),
                                    **schemas.COMMON_ERRORS})


class CampaignPauseView(CampaignControlView):
    control = controls.do_pause_campaign
    verb = "pause"

    @control_schema("campaign", "pause", "No call starts once this answers; every task neither completed "
                                         "nor in progress becomes paused (a large campaign's in the "
                                         "background: see `control`); live calls finish.")
    def post(self, request, campaign_id):
        return self.apply_control(campaign_id)


class CampaignResumeView(CampaignControlView):
    control = controls.do_resume_campaign
    verb = "resume"

    @control_schema("campaign", "resume", "Paused tasks become queued, keeping their retry timing (a large "
                                          "campaign's in the background, dialable as they flip: see `control`).")
    def post(self, request, campaign_id):
        return self.apply_control(campaign_id)


class CampaignArchiveView(CampaignControlView):
    control = controls.do_archive_campaign
    verb = "archive"

    @control_schema("campaign", "archive", "Final at once: every task neither completed nor in progress is "
                                           "archived (a large campaign's in the background: see `control`); "
                                           "live calls finish and make no further attempts.")
    def post(self, request, campaign_id):
        return self.apply_control(campaign_id)


def _flag(request, name, alias):
    raw = request.data.get(name, request.data.get(alias, request.query_params.get(
        name, request.query_params.get(alias, ""))))
    value = str(raw).strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ValidationError({name: "must be true or false"})


class CampaignContactsView(WorkspaceView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(operation_id="campaigns_contacts_upload", summary="Upload a batch campaign's contacts (CSV)",
                   description="Multipart field `file`; the first column is `phone`, other columns become context "
                               "variables. With `skipInvalid=true` (form or query; `skip_invalid` also accepted) "
                               "good rows are imported and bad ones reported; otherwise a file with any error "
                               "imports nothing (400, with the import's figures under `import`).",
                   request={"multipart/form-data": schemas.CONTACTS_UPLOAD},
                   parameters=[OpenApiParameter("skipInvalid", bool)],
                   responses={201: OpenApiResponse(schemas.CONTACT_IMPORT),
                              400: schemas.err("No file, or nothing imported because of errors."),
                              **schemas.NOT_FOUND, 409: schemas.err("The campaign cannot take contacts."),
                              **schemas.COMMON_ERRORS})
    def post(self, request, campaign_id):
        campaign = campaign_of(self, campaign_id)
        upload = request.FILES.get("file")
        if upload is None:
            return error_response(400, [error("file", "is required: a CSV file as multipart field 'file'")])
        skip_invalid = _flag(request, "skipInvalid", "skip_invalid")
        try:
            contact_import = do_import_contacts(campaign, upload, filename=upload.name, skip_invalid=skip_invalid)
        except ImportRefused as exc:
            return error_response(409, [error(None, str(exc))])
        summary = contact_import_json(contact_import)
        if contact_import.rows_imported == 0 and contact_import.error_count:
            errors = [error(e.get("column"), e.get("reason", ""), row=e.get("row")) for e in contact_import.errors]
            return error_response(400, errors, **{"import": summary})
        return Response(summary, status=201)


class CampaignTasksView(WorkspaceView):
    @extend_schema(operation_id="campaigns_tasks_list", summary="A campaign's tasks, oldest first",
                   parameters=[OpenApiParameter("status", str, enum=TaskStatus.values), *schemas.PAGE_PARAMETERS],
                   responses={200: OpenApiResponse(schemas.page_of(schemas.TASK)), **schemas.BAD_REQUEST,
                              **schemas.NOT_FOUND, **schemas.COMMON_ERRORS})
    def get(self, request, campaign_id):
        campaign = access_campaign_by_id(self.workspace, campaign_id)
        tasks = Task.objects.filter(campaign=campaign)
        status = request.query_params.get("status")
        if status is not None:
            if status not in TaskStatus.values:
                raise ValidationError({"status": f"must be one of {', '.join(TaskStatus.values)}"})
            tasks = tasks.filter(status=status)
        page, next_cursor = paginate(tasks, request)
        return Response({"results": [task_json(task) for task in page], "nextCursor": next_cursor})


class CampaignHistoryView(WorkspaceView):
    @extend_schema(operation_id="campaigns_history", summary="A campaign's controls, newest first",
                   description="Every pause, resume, archive and update of the campaign or of one of its tasks "
                               "(`task`), from the API, the admin or a management command: who made it (an API "
                               "key's prefix and name, a user, or a command's operator), when, and how many "
                               "tasks it changed.",
                   parameters=schemas.PAGE_PARAMETERS,
                   responses={200: OpenApiResponse(schemas.page_of(schemas.CONTROL_RECORD)), **schemas.BAD_REQUEST,
                              **schemas.NOT_FOUND, **schemas.COMMON_ERRORS})
    def get(self, request, campaign_id):
        campaign = access_campaign_by_id(self.workspace, campaign_id)
        page, next_cursor = paginate(campaign_history(campaign.id), request, newest_first=True)
        return Response({"results": [control_record_json(record) for record in page], "nextCursor": next_cursor})
