"""Admin pages of campaigns and tasks: the operator dashboard, controls, settings and contact
uploads. The tenant objects' pages are in `campaigns/admin_tenants.py`."""
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from campaigns import admin_logins, admin_tenants, dashboard  # noqa: F401 (the first two register their pages)
from campaigns.actions.audit import Actor, campaign_history, do_record_control
from campaigns.admin_scoping import OrganisationScopedAdmin
from campaigns.actions.campaigns import do_create_campaign
from campaigns.actions.control_jobs import running_controls
from campaigns.actions.controls import (
    ControlRefused, do_archive_campaign, do_archive_task, do_pause_campaign, do_pause_task, do_resume_campaign,
    do_resume_task, do_update_campaign,
)
from campaigns.actions.csv_import import ImportRefused, do_import_contacts, error_report_csv
from campaigns.forms import WEEKDAYS, CampaignCreateForm, CampaignUpdateForm, ContactUploadForm
from campaigns.models import (
    Agent, CallingNumber, Campaign, CampaignStatus, CampaignType, Organisation, Task, TaskStatus, Workspace,
)
from campaigns.actions.realtime import sample_task_body
from dialer.lifecycle import OPEN_CAMPAIGN_STATUSES, PENDING_TASK_STATUSES, can_transition_campaign
from dialer.scheduling import resolve_config
from dialer.windows import time_to_hhmm

# Rows of an import's report shown on the upload page; the downloadable CSV has them all.
SHOWN_REPORT_ENTRIES = 200
# Controls shown on the campaign page, newest first; GET /api/v1/campaigns/{id}/history has them all.
SHOWN_CONTROL_RECORDS = 20



@dataclass(frozen=True)
class Control:
    """One campaign control as the admin offers it: which campaigns it applies to, which of
    their tasks it changes, and the action in `campaigns.actions.controls` that does it."""

    verb: str
    past: str
    action: object
    task_statuses: tuple
    task_effect: str

    def applies_to(self, campaign):
        if self.verb == "resume":
            return campaign.status == CampaignStatus.PAUSED
        target = CampaignStatus.PAUSED if self.verb == "pause" else CampaignStatus.ARCHIVED
        return can_transition_campaign(campaign.status, target)

    def tasks_affected(self, campaign_ids):
        """{campaign_id: tasks this control would change}, one grouped query on (campaign, status, id)."""
        rows = (Task.objects.filter(campaign_id__in=campaign_ids, status__in=self.task_statuses)
                .values_list("campaign_id").annotate(count=Count("id")).order_by())
        counts = dict(rows)
        return {campaign_id: counts.get(campaign_id, 0) for campaign_id in campaign_ids}


CONTROLS = {
    control.verb: control for control in (
        Control("pause", "paused", do_pause_campaign, (TaskStatus.QUEUED,), "queued → paused"),
        Control("resume", "resumed", do_resume_campaign, (TaskStatus.PAUSED,), "paused → queued"),
        Control("archive", "archived", do_archive_campaign, PENDING_TASK_STATUSES, "queued or paused → archived"),
    )
}
TASK_CONTROLS = {"pause": do_pause_task, "resume": do_resume_task, "archive": do_archive_task}


class CampaignChangeList(ChangeList):
    """Attaches each shown campaign's task counts (one grouped query for the page) and live slot
    use (one Redis call per organisation on the page) to the rows, for the list's columns."""

    def get_results(self, request):
        super().get_results(request)
        campaigns = list(self.result_list)
        progress = dashboard.progress_by_campaign([campaign.id for campaign in campaigns])
        usage = dashboard.live_slots(campaign.workspace.organisation_id for campaign in campaigns)
        for campaign in campaigns:
            campaign.dashboard_progress = progress[campaign.id]
            campaign.dashboard_slots = dashboard.campaign_slots(campaign, usage[campaign.workspace.organisation_id])
        self.result_list = campaigns


def status_badge(status, label):
    return format_html('<span class="dash-badge dash-status-{}" data-role="status">{}</span>', status, label)


@admin.register(Campaign)
class CampaignAdmin(OrganisationScopedAdmin):
    """The operator dashboard. The list shows progress, task counts and live calls; the campaign
    page edits settings through `validate_campaign_body` and `do_update_campaign` while the
    campaign is open, and shows charts, the tasks and (realtime) the sample Create Task body.
    Pause, resume and archive go through `campaigns.actions.controls` after a confirmation page."""

    organisation_path = "workspace__organisation_id"
    list_display = ["name", "status_column", "type", "priority", "progress_column", "tasks_column", "live_column",
                    "created_at", "end_at"]
    list_filter = ["status", "type", "priority"]
    search_fields = ["name"]
    list_select_related = ["workspace"]
    actions = ["pause_campaigns", "resume_campaigns", "archive_campaigns"]

    class Media:
        css = {"all": ["campaigns/dashboard.css"]}
        js = ["campaigns/dashboard.js"]

    def get_changelist(self, request, **kwargs):
        return CampaignChangeList

    def get_actions(self, request):
        # Campaigns are archived, not deleted: their calls are the record of what was done.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Status", ordering="status")
    def status_column(self, campaign):
        return status_badge(campaign.status, campaign.get_status_display())

    @admin.display(description="Progress")
    def progress_column(self, campaign):
        progress = campaign.dashboard_progress
        return format_html(
            '<div class="dash-progress" title="{} of {} tasks completed or archived"><div class="dash-progress-bar" '
            'style="width: {}%"></div></div><span class="dash-progress-label">{} / {}</span>',
            progress.done, progress.total, progress.percent, progress.done, progress.total)

    @admin.display(description="Tasks by status")
    def tasks_column(self, campaign):
        counts = campaign.dashboard_progress.counts
        chips = format_html_join("", '<span class="dash-chip dash-status-{}" title="{}">{}</span>',
                                 ((status, TaskStatus(status).label, counts[status])
                                  for status in dashboard.TASK_STATUSES))
        return format_html('<span class="dash-chips">{}</span>', chips)

    @admin.display(description="Live / slots")
    def live_column(self, campaign):
        node = campaign.dashboard_slots
        return format_html('<span data-live-campaign="{}" title="live calls / slots ({}), borrowed in brackets">'
                           '{} / {}{}</span>', campaign.id, node["mode"], node["used"], node["allocation"],
                           f" (+{node['borrowed']})" if node["borrowed"] else "")

    def changelist_view(self, request, extra_context=None):
        organisations = list(self.scope(request, Organisation.objects.all(), "id"))
        extra_context = {**(extra_context or {}), "slots_panel": dashboard.slots_panel(organisations),
                         "slots_url": reverse("admin:campaigns_campaign_slots_json")}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("slots/", view(self.slots_view), name="%s_%s_slots" % info),
            path("slots.json", view(self.slots_json_view), name="%s_%s_slots_json" % info),
            path("<path:object_id>/contacts/", view(self.upload_contacts_view), name="%s_%s_upload_contacts" % info),
            path("<path:object_id>/contacts/<uuid:import_id>/errors.csv", view(self.error_report_view),
                 name="%s_%s_error_report" % info),
            path("<path:object_id>/stats.json", view(self.stats_json_view), name="%s_%s_stats" % info),
            path("<path:object_id>/control/<slug:verb>/", view(self.control_view), name="%s_%s_control" % info),
        ] + super().get_urls()

    # Pause, resume, archive: a confirmation page saying how many tasks change, then the action.

    def _confirm_or_apply(self, request, control, campaigns, single=False):
        applicable = [campaign for campaign in campaigns if control.applies_to(campaign)]
        skipped = [campaign for campaign in campaigns if not control.applies_to(campaign)]
        if request.method == "POST" and request.POST.get("post") == "yes":
            changed, refused = 0, []
            for campaign in applicable:
                try:
                    changed += control.action(campaign, actor=Actor.for_admin_user(request.user))
                except ControlRefused as exc:
                    refused.append(f"{campaign}: {exc.reason}")
                else:
                    self.log_change(request, campaign, f"{control.past.capitalize()} from the dashboard.")
            done = len(applicable) - len(refused)
            continuing = len(running_controls([campaign.id for campaign in applicable]))
            self.message_user(request, f"{done} campaign{'s' if done != 1 else ''} {control.past}; "
                                       f"{changed} task{'s' if changed != 1 else ''} changed"
                                       + (f", the rest in the background ({continuing} campaign"
                                          f"{'s' if continuing != 1 else ''})." if continuing else "."))
            for reason in refused + [f"{campaign}: cannot {control.verb} a campaign that is {campaign.status}"
                                     for campaign in skipped]:
                self.message_user(request, reason, messages.WARNING)
            return None
        affected = control.tasks_affected([campaign.id for campaign in applicable])
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "control": control,
            "title": f"{control.verb.capitalize()} campaign{'' if single else 's'}?",
            "rows": [(campaign, affected[campaign.id]) for campaign in applicable], "skipped": skipped,
            "total_tasks": sum(affected.values()), "single": single,
            "selected_ids": [campaign.pk for campaign in campaigns],
            "action_name": f"{control.verb}_campaigns", "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "campaign": campaigns[0] if single else None,
            "back_url": reverse("admin:campaigns_campaign_change", args=[campaigns[0].pk]) if single
            else reverse("admin:campaigns_campaign_changelist"),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/control_confirmation.html", context)

    def _bulk_control(self, request, queryset, verb):
        return self._confirm_or_apply(request, CONTROLS[verb], list(queryset.select_related("workspace")))

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause_campaigns(self, request, queryset):
        return self._bulk_control(request, queryset, "pause")

    @admin.action(description="Resume selected campaigns", permissions=["change"])
    def resume_campaigns(self, request, queryset):
        return self._bulk_control(request, queryset, "resume")

    @admin.action(description="Archive selected campaigns", permissions=["change"])
    def archive_campaigns(self, request, queryset):
        return self._bulk_control(request, queryset, "archive")

    def control_view(self, request, object_id, verb):
        campaign = self._campaign_or_404(request, object_id)
        control = CONTROLS.get(verb)
        if control is None:
            raise Http404("No such control.")
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        response = self._confirm_or_apply(request, control, [campaign], single=True)
        return response or HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    # The campaign page.

    def _scoped_campaign(self, request, object_id):
        # Scoped by organisation: another tenant's campaign is "not found", as a missing one.
        object_id = str(unquote(object_id))
        campaign = (self.get_queryset(request).select_related("workspace", "agent", "calling_number")
                    .filter(pk=object_id).first() if object_id.isdigit() else None)
        if campaign is not None and not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def _campaign_or_404(self, request, object_id):
        campaign = self._scoped_campaign(request, object_id)
        if campaign is None:
            raise Http404("No such campaign.")
        return campaign

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CampaignCreateForm(
            request.POST or None,
            workspaces=self.scope(request, Workspace.objects.select_related("organisation"), "organisation_id"),
            agents=self.scope(request, Agent.objects.all(), "workspace__organisation_id"),
            numbers=self.scope(request, CallingNumber.objects.all(), "workspace__organisation_id"),
        )
        if request.method == "POST" and form.is_valid():
            campaign = do_create_campaign(form.cleaned_data["workspace"], form.cleaned_fields)
            self.log_addition(request, campaign, [{"added": {}}])
            self.message_user(request, f"Campaign “{campaign}” created.")
            view = "upload_contacts" if campaign.type == CampaignType.BATCH else "change"
            return HttpResponseRedirect(reverse(f"admin:campaigns_campaign_{view}", args=[campaign.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Add campaign", "form": form,
            "media": self.media + form.media, "add": True, **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/add_form.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self._scoped_campaign(request, object_id)
        if campaign is None:
            # As Django's own change page: back to the index with a "does not exist" message.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        can_change = self.has_change_permission(request, campaign)
        form = None
        if campaign.status in OPEN_CAMPAIGN_STATUSES and can_change:
            form = CampaignUpdateForm(
                request.POST or None, campaign=campaign,
                agents=Agent.objects.filter(workspace_id=campaign.workspace_id),
                numbers=CallingNumber.objects.filter(workspace_id=campaign.workspace_id),
            )
        if request.method == "POST":
            if form is None:
                raise PermissionDenied
            if form.is_valid():
                return self._apply_settings(request, campaign, form)
        return TemplateResponse(request, "admin/campaigns/campaign/dashboard.html",
                                {**self._campaign_context(request, campaign, form, can_change),
                                 **(extra_context or {})})

    def _apply_settings(self, request, campaign, form):
        changed = form.changed_fields()
        if not changed:
            self.message_user(request, "No setting changed.")
        else:
            try:
                retimed = do_update_campaign(campaign, changed, actor=Actor.for_admin_user(request.user))
            except ControlRefused as exc:
                self.message_user(request, exc.reason, messages.ERROR)
            else:
                self.log_change(request, campaign, [{"changed": {"fields": sorted(changed)}}])
                more = ", the rest in the background" if running_controls([campaign.id]) else ""
                self.message_user(request, f"Settings saved ({', '.join(sorted(changed))}); "
                                           f"{retimed} pending task{'s' if retimed != 1 else ''} re-timed{more}.")
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    def _campaign_context(self, request, campaign, form, can_change):
        progress = dashboard.progress_by_campaign([campaign.id])[campaign.id]
        usage = dashboard.live_slots([campaign.workspace.organisation_id])[campaign.workspace.organisation_id]
        status_filter = request.GET.get("task_status", "")
        if status_filter not in dashboard.TASK_STATUSES:
            status_filter = ""
        after = request.GET.get("after", "")
        tasks, next_after = dashboard.task_page(campaign, status_filter or None, int(after) if after.isdigit() else None)
        unit, buckets = dashboard.calls_over_time(campaign)
        sample = None
        if campaign.type == CampaignType.REALTIME:
            sample = json.dumps(sample_task_body(campaign), indent=2)
        return {
            **self.admin_site.each_context(request), "opts": self.opts, "original": campaign, "campaign": campaign,
            "title": str(campaign), "media": self.media + form.media if form else self.media,
            "form": form, "can_change": can_change, "progress": progress,
            "control_text": dashboard.control_text(running_controls([campaign.id]).get(campaign.id)),
            "live": dashboard.campaign_slots(campaign, usage),
            "status_filters": [(status, TaskStatus(status).label, progress.counts[status])
                               for status in dashboard.TASK_STATUSES],
            "status_filter": status_filter, "tasks": tasks, "next_after": next_after, "after": after,
            "outcomes": dashboard.outcome_bars(dashboard.outcome_breakdown(campaign)),
            "compliance": dashboard.compliance_holds(campaign),
            "timeline": dashboard.timeline_bars(unit, buckets), "sample_body": sample,
            "controls": [control for control in CONTROLS.values() if control.applies_to(campaign)] if can_change else [],
            "settings": self._settings_rows(campaign),
            "stats_url": reverse("admin:campaigns_campaign_stats", args=[campaign.pk]),
            "control_history": list(campaign_history(campaign.id).select_related("task")[:SHOWN_CONTROL_RECORDS]),
        }

    @staticmethod
    def _settings_rows(campaign):
        days = ", ".join(label for day, label in WEEKDAYS if day in campaign.calling_days)
        return [
            ("Workspace", campaign.workspace.name), ("Type", campaign.get_type_display()),
            ("Agent", campaign.agent.name), ("Calling number", campaign.calling_number or "—"),
            ("Priority", campaign.get_priority_display()), ("Timezone", campaign.timezone),
            ("Start", _instant(campaign.start_at)), ("End", _instant(campaign.end_at)),
            ("Calling hours", f"{time_to_hhmm(campaign.calling_start):04d}–{time_to_hhmm(campaign.calling_end):04d}"),
            ("Calling days", days), ("Max retries", campaign.max_retries),
            ("Retry interval", f"{campaign.retry_interval_ms // 60_000} min"),
            ("Retry outcomes", ", ".join(campaign.retry_outcomes) or "—"),
            ("Slots", f"{campaign.slots} ({campaign.slot_mode})"),
        ]

    def stats_json_view(self, request, object_id):
        """The figures the campaign page refreshes in place: status, task counts, live calls, and a
        running control's progress."""
        campaign = self._campaign_or_404(request, object_id)
        progress = dashboard.progress_by_campaign([campaign.id])[campaign.id]
        usage = dashboard.live_slots([campaign.workspace.organisation_id])[campaign.workspace.organisation_id]
        control = running_controls([campaign.id]).get(campaign.id)
        return JsonResponse({"status": campaign.status, "status_label": campaign.get_status_display(),
                             **progress.as_json(), "live": dashboard.campaign_slots(campaign, usage),
                             "control": control, "control_text": dashboard.control_text(control)})

    # Live slots.

    def _slots_panel(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard.slots_panel(list(self.scope(request, Organisation.objects.all(), "id")))

    def slots_view(self, request):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Live slots",
                   "slots_panel": self._slots_panel(request), "media": self.media,
                   "slots_url": reverse("admin:campaigns_campaign_slots_json")}
        return TemplateResponse(request, "admin/campaigns/campaign/slots.html", context)

    def slots_json_view(self, request):
        return JsonResponse({"organisations": self._slots_panel(request)})

    # Contacts (batch).

    def upload_contacts_view(self, request, object_id):
        """Upload a CSV of contacts (POST), then show the import's report (GET ?import=<id>)."""
        campaign = self._campaign_or_404(request, object_id)
        form = ContactUploadForm(request.POST or None, request.FILES or None)
        refusal = None
        if request.method == "POST":
            if not self.has_change_permission(request, campaign):
                raise PermissionDenied
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    contact_import = do_import_contacts(campaign, upload, filename=upload.name,
                                                        skip_invalid=form.cleaned_data["skip_invalid"])
                except ImportRefused as exc:
                    refusal = str(exc)
                else:
                    url = reverse("admin:campaigns_campaign_upload_contacts", args=[campaign.pk])
                    return HttpResponseRedirect(f"{url}?import={contact_import.id}")
        shown = self._shown_import(campaign, request.GET.get("import"))
        progress = dashboard.progress_by_campaign([campaign.id])[campaign.id]
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": campaign,
            "title": f"Contacts of {campaign}", "form": form, "refusal": refusal, "contact_import": shown,
            "report": shown.errors[:SHOWN_REPORT_ENTRIES] if shown else [],
            "imports": campaign.imports.all()[:20], "progress": progress, "media": self.media,
            "task_counts": campaign.tasks.values("status", "completion_reason").annotate(count=Count("id"))
                                        .order_by("status", "completion_reason"),
            "has_change_permission": self.has_change_permission(request, campaign),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/upload_contacts.html", context)

    @staticmethod
    def _shown_import(campaign, import_id):
        try:
            return campaign.imports.filter(id=uuid.UUID(import_id or "")).first()
        except ValueError:
            return None

    def error_report_view(self, request, object_id, import_id):
        campaign = self._campaign_or_404(request, object_id)
        contact_import = campaign.imports.filter(id=import_id).first()
        if contact_import is None:
            raise Http404("No such import.")
        response = HttpResponse(error_report_csv(contact_import), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{contact_import.id}-errors.csv"'
        return response


@admin.register(Task)
class TaskAdmin(OrganisationScopedAdmin):
    """Tasks are listed here and opened on a page with two tabs: their calls, and their config as
    submitted and as resolved. Tasks change only through the controls (pause, resume, archive)."""

    organisation_path = "campaign__workspace__organisation_id"
    list_display = ["id", "phone", "campaign", "status", "attempts_made", "next_attempt_at", "final_outcome"]
    list_filter = ["status"]
    search_fields = ["phone"]
    list_select_related = ["campaign"]
    show_full_result_count = False

    class Media:
        css = {"all": ["campaigns/dashboard.css"]}
        js = ["campaigns/dashboard.js"]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/control/<slug:verb>/", self.admin_site.admin_view(self.control_view),
                 name="%s_%s_control" % info),
        ] + super().get_urls()

    def _scoped_task(self, request, object_id):
        object_id = str(unquote(object_id))
        task = (self.get_queryset(request).select_related(
            "campaign__workspace", "campaign__agent", "campaign__calling_number", "agent", "calling_number")
            .filter(pk=object_id).first() if object_id.isdigit() else None)
        if task is not None and not self.has_view_permission(request, task):
            raise PermissionDenied
        return task

    def control_view(self, request, object_id, verb):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        task = self._scoped_task(request, object_id)
        action = TASK_CONTROLS.get(verb)
        if task is None or action is None:
            raise Http404("No such task or control.")
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        try:
            with transaction.atomic():
                changed = action(task)
                do_record_control(verb, Actor.for_admin_user(request.user), changed, task=task)
        except ControlRefused as exc:
            self.message_user(request, exc.reason, messages.ERROR)
        else:
            self.log_change(request, task, f"Task {task.status} from the dashboard.")
            self.message_user(request, f"Task {task.phone} is now {task.get_status_display().lower()}.")
        return HttpResponseRedirect(reverse("admin:campaigns_task_change", args=[task.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        task = self._scoped_task(request, object_id)
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        campaign = task.campaign
        calls = list(task.calls.select_related("agent").order_by("attempt"))
        for call in calls:
            call.analysis_json = json.dumps(call.analysis, indent=2, ensure_ascii=False)
        can_change = self.has_change_permission(request, task)
        controls = []
        if can_change:
            controls = [verb for verb, allowed in (
                ("pause", task.status == TaskStatus.QUEUED), ("resume", task.status == TaskStatus.PAUSED),
                ("archive", task.status in PENDING_TASK_STATUSES)) if allowed]
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": task, "task": task,
            "campaign": campaign, "title": f"Task {task.phone}", "calls": calls, "media": self.media,
            "submitted": json.dumps(task.submitted_config, indent=2) if task.submitted_config else "",
            "context_json": json.dumps(task.context, indent=2, ensure_ascii=False),
            "resolved": self._resolved_rows(task, campaign), "controls": controls,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/campaigns/task/task_page.html", context)

    @staticmethod
    def _resolved_rows(task, campaign):
        config = resolve_config(task, campaign)
        agent = task.agent if task.agent_id else campaign.agent
        number = task.calling_number if task.calling_number_id else campaign.calling_number
        window = config.window
        hours = ("all day" if window.start == window.end
                 else f"{time_to_hhmm(window.start):04d}–{time_to_hhmm(window.end):04d}")
        return [
            ("Agent", agent.name if agent else "—"), ("Calling number", number or "—"),
            ("Calling window", hours), ("Timezone", window.timezone),
            ("Callee timezones (legal hours)", f"{', '.join(task.callee_timezones) or window.timezone} "
                                               f"({task.get_callee_timezone_source_display().lower()})"),
            ("Held by", task.get_held_by_display() if task.held_by and task.status in PENDING_TASK_STATUSES else "—"),
            ("Calling days", ", ".join(label for day, label in WEEKDAYS if day in window.days)),
            ("Start after", _instant(config.start_after)), ("End at", _instant(config.end_at)),
            ("Max attempts", config.max_attempts),
            ("Retry intervals", ", ".join(_duration(ms) for ms in config.intervals_ms) or "—"),
            ("Priorities", ", ".join(str(p) for p in config.priorities) if config.priorities else "—"),
            ("Retry outcomes", ", ".join(sorted(config.retry_outcomes)) or "—"),
        ]


def _instant(value):
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if value else "—"


def _duration(ms):
    """A retry interval for people: 180000 → "3 min", 5400000 → "90 min", 1500 → "1.5 s"."""
    if ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    return f"{ms / 1000:g} s"
