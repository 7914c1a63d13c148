from django.contrib import admin

from campaigns.admin_scoping import OrganisationScopedAdmin
from telephony.models import Call, CallEvent, WebhookDelivery


@admin.register(Call)
class CallAdmin(OrganisationScopedAdmin):
    organisation_path = "organisation_id"
    list_display = ["id", "to_number", "attempt", "status", "outcome", "carrier", "created_at", "ended_at"]
    list_filter = ["status", "carrier"]
    search_fields = ["to_number", "carrier_call_id"]
    raw_id_fields = ["task", "campaign"]
    show_full_result_count = False


@admin.register(CallEvent)
class CallEventAdmin(OrganisationScopedAdmin):
    organisation_path = "call__organisation_id"
    list_display = ["id", "call", "carrier", "kind", "applied", "received_at"]
    list_filter = ["carrier", "kind", "applied"]
    raw_id_fields = ["call"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OrganisationScopedAdmin):
    organisation_path = "workspace__organisation_id"
    list_display = ["id", "workspace", "event", "status", "attempts", "last_response_status", "next_attempt_at"]
    list_filter = ["status", "event"]
