"""Tasks (the Create Task API, detail, controls) and calls."""
from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from campaigns.actions import controls
from campaigns.access import access_call_by_id, access_task_by_id
from campaigns.api import schemas
from campaigns.api.base import WorkspaceView
from campaigns.api.campaign_views import control_schema
from campaigns.api.errors import error, error_response
from campaigns.api.idempotency import respond_idempotently
from campaigns.api.representations import (
    call_json, call_summary_json, callee_timezone_json, resolved_config_json, task_json,
)
from campaigns.actions.audit import do_record_control
from campaigns.models import Task
from campaigns.actions.realtime import MAX_TASKS_PER_REQUEST, InvalidTasks, do_create_tasks
from dialer.scheduling import resolve_config
from telephony.models import Call

SEED_BODY = {
    "phone": "+919876543210", "from": "+918012345678", "agent": "7", "start": 1000, "end": 1800,
    "timezone": "Asia/Kolkata", "startAfter": 1748629800000, "endAfter": 1748716200000,
    "priorities": [100, 50], "retries": 2, "intervals": [180000], "retryOutcomes": ["voicemail"],
    "context": {"name": "Tarun"}, "campaign": "12",
}


class TaskCreateView(WorkspaceView):
    @extend_schema(
        operation_id="tasks_create", summary="Create one task, or up to 1,000 at once (realtime campaigns)",
        description=(
            "Send one Create Task body, or an array of up to "
            f"{MAX_TASKS_PER_REQUEST}: all are created or none, and errors carry the body's `index`. Only "
            "`phone` and `campaign` are required; every other setting defaults from the campaign. A number "
            "on the organisation's do-not-call list is accepted and its task created `archived` with "
            "`completionReason` `dnc` (never dialed); one whose end comes before any calling window opens is "
            "created `archived` with `ended`. Honours `Idempotency-Key`. Returns the task (single body) or "
            "`{\"tasks\": [...]}` in body order (array)."),
        request={"application/json": {"oneOf": [
            schemas.CREATE_TASK_BODY,
            {"type": "array", "items": schemas.CREATE_TASK_BODY, "minItems": 1, "maxItems": MAX_TASKS_PER_REQUEST},
        ]}},
        parameters=[schemas.IDEMPOTENCY_KEY],
        examples=[OpenApiExample("The Create Task body", value=SEED_BODY, request_only=True)],
        responses={201: OpenApiResponse({"oneOf": [schemas.TASK, schemas.obj(
                       {"tasks": {"type": "array", "items": schemas.TASK}}, required=["tasks"])]}),
                   **schemas.BAD_REQUEST, 422: schemas.err("Idempotency-Key already used for another request."),
                   **schemas.COMMON_ERRORS})
    def post(self, request):
        data = request.data
        if not isinstance(data, dict | list):
            return error_response(400, [error("body", "must be a Create Task object or an array of them")])
        single = isinstance(data, dict)

        def create():
            try:
                tasks = do_create_tasks(self.workspace, [data] if single else data)
            except InvalidTasks as exc:
                errors = [{k: v for k, v in e.items() if k != "index"} for e in exc.errors] if single else exc.errors
                return error_response(400, errors)
            if single:
                return Response(task_json(tasks[0]), status=201)
            return Response({"tasks": [task_json(task) for task in tasks]}, status=201)

        return respond_idempotently(request, self.workspace, create)


class TaskDetailView(WorkspaceView):
    @extend_schema(operation_id="tasks_retrieve", summary="A task, its config (submitted and resolved) and calls",
                   responses={200: OpenApiResponse(schemas.TASK_DETAIL), **schemas.NOT_FOUND,
                              **schemas.COMMON_ERRORS})
    def get(self, request, task_id):
        task = access_task_by_id(self.workspace, task_id, queryset=Task.objects.select_related(
            "campaign__calling_number", "calling_number"))
        numbers = {n.id: n.number for n in (task.calling_number, task.campaign.calling_number) if n is not None}
        calls = Call.objects.filter(task=task).order_by("attempt")
        return Response({
            **task_json(task),
            "config": {"submitted": task.submitted_config,
                       "resolved": resolved_config_json(resolve_config(task, task.campaign), numbers)},
            "calleeTimezone": callee_timezone_json(task),
            "calls": [call_summary_json(call) for call in calls],
        })


class TaskControlView(WorkspaceView):
    """Base of pause/resume/archive of one task: each subclass names its action in `control`, its
    `verb` in the campaign's audit trail."""

    control = None
    verb = None

    def apply_control(self, task_id):
        task = access_task_by_id(self.workspace, task_id)
        try:
            with transaction.atomic():
                changed = type(self).control(task)
                do_record_control(self.verb, self.actor, changed, task=task)
        except controls.ControlRefused as exc:
            return error_response(409, [error(None, str(exc))])
        task.refresh_from_db(fields=["status"])
        return Response({"changed": changed, "status": task.status})


class TaskPauseView(TaskControlView):
    control = controls.do_pause_task
    verb = "pause"

    @control_schema("task", "pause", "A queued task becomes paused; a live call finishes first.")
    def post(self, request, task_id):
        return self.apply_control(task_id)


class TaskResumeView(TaskControlView):
    control = controls.do_resume_task
    verb = "resume"

    @control_schema("task", "resume", "A paused task becomes queued, keeping its retry timing.")
    def post(self, request, task_id):
        return self.apply_control(task_id)


class TaskArchiveView(TaskControlView):
    control = controls.do_archive_task
    verb = "archive"

    @control_schema("task", "archive", "A task neither completed nor in progress is archived, permanently.")
    def post(self, request, task_id):
        return self.apply_control(task_id)


class CallDetailView(WorkspaceView):
    @extend_schema(operation_id="calls_retrieve", summary="A call in full",
                   responses={200: OpenApiResponse(schemas.CALL), **schemas.NOT_FOUND, **schemas.COMMON_ERRORS})
    def get(self, request, call_id):
        return Response(call_json(access_call_by_id(self.workspace, call_id)))
