"""Admin pages of the tenant objects: organisations, members, workspaces, agents, calling numbers,
API keys, the do-not-call list and contact imports. Every save goes through the same validation
and actions as the REST API."""
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from campaigns.admin_scoping import OrganisationScopedAdmin
from campaigns.actions.workspace_setup import (
    do_create_agent, do_create_calling_number, do_update_agent, do_update_calling_number,
)
from campaigns.actions.dnc import do_add_dnc_numbers, do_remove_dnc_number
from campaigns.actions.integrations import do_remove_integration, do_set_integration, integration_in_use
from campaigns.forms import (
    AgentForm, ApiKeyForm, CallingNumberForm, DoNotCallForm, IntegrationForm, OrganisationForm, WorkspaceForm,
)
from campaigns.models import (
    Agent, ApiKey, CallingNumber, ContactImport, DoNotCall, Integration, Organisation, OrganisationMember, Workspace,
)
from campaigns.actions.compliance import do_set_compliance_policy
from campaigns.actions.tenancy import (
    do_create_api_key, do_revoke_api_key, do_save_membership, do_save_organisation, do_save_workspace,
)


@admin.register(Organisation)
class OrganisationAdmin(OrganisationScopedAdmin):
    organisation_path = "id"
    form = OrganisationForm
    list_display = ["name", "total_slots", "created_at"]
    search_fields = ["name"]

    def save_model(self, request, obj, form, change):
        do_save_organisation(obj)


@admin.register(OrganisationMember)
class OrganisationMemberAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    list_display = ["user", "organisation"]

    def save_model(self, request, obj, form, change):
        do_save_membership(obj)


@admin.register(Workspace)
class WorkspaceAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    form = WorkspaceForm
    list_display = ["name", "organisation", "slots", "slot_mode", "webhook_url"]
    list_filter = ["slot_mode"]
    search_fields = ["name"]

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        do_save_workspace(obj)
        do_set_compliance_policy(obj, form.cleaned_data.get("compliance_policy") or {}, replace=True)


def _copy_saved(saved, obj):
    """Make the admin's unsaved `obj` the row an action saved, for the admin's log and redirect."""
    obj.__dict__.update({key: value for key, value in saved.__dict__.items() if key != "_state"})
    obj._state.adding = False


class WorkspaceObjectAdmin(OrganisationScopedAdmin):
    """A workspace's agent or calling number, saved through the API's own create and update
    actions with the fields the form validated (`form.cleaned_fields`)."""

    organisation_path = "workspace__organisation_id"
    create = update = None  # the actions: create(workspace, fields), update(instance, fields)

    def save_model(self, request, obj, form, change):
        if change:
            type(self).update(obj, form.cleaned_fields)
        else:
            _copy_saved(type(self).create(form.cleaned_data["workspace"], form.cleaned_fields), obj)


@admin.register(Agent)
class AgentAdmin(WorkspaceObjectAdmin):
    form = AgentForm
    create, update = staticmethod(do_create_agent), staticmethod(do_update_agent)
    list_display = ["name", "workspace", "runtime_kind", "created_at"]
    search_fields = ["name"]


@admin.register(Integration)
class IntegrationAdmin(OrganisationScopedAdmin):
    """A workspace's voice-AI platform credentials, saved through the API's own action."""

    organisation_path = "workspace__organisation_id"
    form = IntegrationForm
    list_display = ["platform", "workspace", "simulate", "concurrency", "updated_at"]
    list_filter = ["platform", "simulate"]

    def get_readonly_fields(self, request, obj=None):
        return ["workspace", "platform"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        workspace = obj.workspace if change else form.cleaned_data["workspace"]
        platform = obj.platform if change else form.cleaned_data["platform"]
        integration, _ = do_set_integration(workspace, platform, form.cleaned_fields)
        _copy_saved(integration, obj)

    def get_deleted_objects(self, objs, request):
        # Credentials still in use show as protected: the admin then refuses the deletion and says why.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = [f"{integration}: {reason}" for integration in objs if (reason := integration_in_use(integration))]
        return deleted, counts, perms_needed, [*protected, *in_use]

    def delete_model(self, request, obj):
        do_remove_integration(obj)

    def delete_queryset(self, request, queryset):
        for integration in queryset:
            do_remove_integration(integration)


@admin.register(CallingNumber)
class CallingNumberAdmin(WorkspaceObjectAdmin):
    form = CallingNumberForm
    create, update = staticmethod(do_create_calling_number), staticmethod(do_update_calling_number)
    list_display = ["number", "workspace", "carrier", "calls_per_second"]
    search_fields = ["number"]


@admin.register(ApiKey)
class ApiKeyAdmin(OrganisationScopedAdmin):
    """Keys are created here like `create_workspace --api-key` does: generated, shown once, stored
    hashed. An existing key can only be revoked (the list's action)."""

    organisation_path = "workspace__organisation_id"
    form = ApiKeyForm
    list_display = ["prefix", "name", "workspace", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke_keys"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["workspace", "name", "prefix", "created_at", "revoked_at", "last_used_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        api_key, raw_key = do_create_api_key(form.cleaned_data["workspace"], form.cleaned_data["name"])
        _copy_saved(api_key, obj)
        messages.warning(request, format_html(
            "The new API key is <code>{}</code>. Copy it now: it is stored hashed and never shown again.", raw_key))

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request, queryset):
        for api_key in queryset:
            do_revoke_api_key(api_key)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).")


@admin.register(DoNotCall)
class DoNotCallAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    form = DoNotCallForm
    list_display = ["phone", "organisation", "reason", "created_at"]
    search_fields = ["phone"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)  # an entry is added or removed

    def save_model(self, request, obj, form, change):
        entry, = do_add_dnc_numbers(form.cleaned_data["organisation"].id,
                                    [(form.cleaned_data["phone"], form.cleaned_data["reason"])])
        _copy_saved(entry, obj)

    def delete_model(self, request, obj):
        do_remove_dnc_number(obj.organisation_id, obj.phone)

    def delete_queryset(self, request, queryset):
        for entry in queryset:
            do_remove_dnc_number(entry.organisation_id, entry.phone)


@admin.register(ContactImport)
class ContactImportAdmin(OrganisationScopedAdmin):
    organisation_path = "campaign__workspace__organisation_id"
    list_display = ["id", "campaign", "rows_total", "rows_imported", "duplicates", "error_count", "created_at"]
    list_select_related = ["campaign"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # An import is a record of what a file did; imports happen on the campaign's contacts page.
        return False
