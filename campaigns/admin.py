from django.contrib import admin

from campaigns.admin_scoping import OrganisationScopedAdmin
from campaigns.models import (
    Agent, ApiKey, CallingNumber, Campaign, ContactImport, DoNotCall, Organisation, OrganisationMember, Task, Workspace,
)


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
    organisation_path = "workspace__organisation_id"
    list_display = ["name", "type", "status", "priority", "workspace", "slots", "slot_mode", "created_at", "end_at"]
    list_filter = ["status", "type", "priority"]
    search_fields = ["name"]


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
