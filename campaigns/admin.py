import uuid

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from campaigns.admin_scoping import OrganisationScopedAdmin
from campaigns.campaign_actions import do_create_campaign
from campaigns.csv_import import ImportRefused, do_import_contacts, error_report_csv
from campaigns.forms import CampaignCreateForm, ContactUploadForm
from campaigns.models import (
    Agent, ApiKey, CallingNumber, Campaign, CampaignType, ContactImport, DoNotCall, Organisation, OrganisationMember,
    Task, Workspace,
)

# Rows of an import's report shown on the upload page; the downloadable CSV has them all.
SHOWN_REPORT_ENTRIES = 200


@admin.register(Organisation)
class OrganisationAdmin(OrganisationScopedAdmin):
    organisation_path = "id"
    list_display = ["name", "total_slots", "created_at"]
    search_fields = ["name"]


@admin.register(OrganisationMember)
class OrganisationMemberAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    list_display = ["user", "organisation"]


@admin.register(Workspace)
class WorkspaceAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    list_display = ["name", "organisation", "slots", "slot_mode", "webhook_url"]
    list_filter = ["slot_mode"]
    search_fields = ["name"]


@admin.register(Agent)
class AgentAdmin(OrganisationScopedAdmin):
    organisation_path = "workspace__organisation_id"
    list_display = ["name", "workspace", "created_at"]
    search_fields = ["name"]


@admin.register(CallingNumber)
class CallingNumberAdmin(OrganisationScopedAdmin):
    organisation_path = "workspace__organisation_id"
    list_display = ["number", "workspace", "carrier", "calls_per_second"]
    search_fields = ["number"]


@admin.register(ApiKey)
class ApiKeyAdmin(OrganisationScopedAdmin):
    organisation_path = "workspace__organisation_id"
    list_display = ["prefix", "name", "workspace", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    exclude = []


@admin.register(Campaign)
class CampaignAdmin(OrganisationScopedAdmin):
    """Campaigns are created with a form validated like the REST API's body and shown read-only
    afterwards (changes go through the campaign controls); batch campaigns get an upload page."""

    organisation_path = "workspace__organisation_id"
    list_display = ["name", "type", "status", "priority", "workspace", "slots", "slot_mode", "created_at", "end_at"]
    list_filter = ["status", "type", "priority"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.concrete_fields]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/contacts/", self.admin_site.admin_view(self.upload_contacts_view),
                 name="%s_%s_upload_contacts" % info),
            path("<path:object_id>/contacts/<uuid:import_id>/errors.csv", self.admin_site.admin_view(self.error_report_view),
                 name="%s_%s_error_report" % info),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                         "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, extra_context)

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

    def _campaign_or_404(self, request, object_id):
        # Scoped by organisation: another tenant's campaign is "not found", as a missing one.
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No such campaign.")
        return campaign

    def upload_contacts_view(self, request, object_id):
        """Upload a CSV of contacts (POST), then show the import's report (GET ?import=<id>)."""
        campaign = self._campaign_or_404(request, object_id)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
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
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": campaign,
            "title": f"Contacts of {campaign}", "form": form, "refusal": refusal, "contact_import": shown,
            "report": shown.errors[:SHOWN_REPORT_ENTRIES] if shown else [],
            "imports": campaign.imports.all()[:20],
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
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        contact_import = campaign.imports.filter(id=import_id).first()
        if contact_import is None:
            raise Http404("No such import.")
        response = HttpResponse(error_report_csv(contact_import), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{contact_import.id}-errors.csv"'
        return response


@admin.register(Task)
class TaskAdmin(OrganisationScopedAdmin):
    organisation_path = "campaign__workspace__organisation_id"
    list_display = ["id", "phone", "campaign", "status", "attempts_made", "next_attempt_at", "final_outcome"]
    list_filter = ["status"]
    search_fields = ["phone"]
    raw_id_fields = ["campaign"]
    show_full_result_count = False


@admin.register(DoNotCall)
class DoNotCallAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    list_display = ["phone", "organisation", "reason", "created_at"]
    search_fields = ["phone"]


@admin.register(ContactImport)
class ContactImportAdmin(OrganisationScopedAdmin):
    organisation_path = "campaign__workspace__organisation_id"
    list_display = ["id", "campaign", "rows_total", "rows_imported", "duplicates", "error_count", "created_at"]
