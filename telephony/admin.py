from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from campaigns.admin_scoping import OrganisationScopedAdmin
from telephony.models import Call, CallEvent, WebhookDelivery
from telephony.webhooks_out import do_retry_webhook_deliveries


class ReadOnlyAdmin(OrganisationScopedAdmin):
    """Records written by carrier events and the dialer: shown, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Call)
class CallAdmin(ReadOnlyAdmin):
    """Every call; its task page (linked) shows it with the task's other attempts and config."""

    organisation_path = "organisation_id"
    list_display = ["id", "task_link", "to_number", "attempt", "status", "outcome", "carrier", "created_at", "ended_at"]
    list_filter = ["status", "carrier"]
    search_fields = ["to_number", "carrier_call_id"]
    show_full_result_count = False

    @admin.display(description="Task")
    def task_link(self, call):
        url = reverse("admin:campaigns_task_change", args=[call.task_id])
        return format_html('<a href="{}#tab-calls">Task #{}</a>', url, call.task_id)


@admin.register(CallEvent)
class CallEventAdmin(ReadOnlyAdmin):
    organisation_path = "call__organisation_id"
    list_display = ["id", "call_id", "carrier", "kind", "applied", "received_at"]
    list_filter = ["carrier", "kind", "applied"]
    show_full_result_count = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OrganisationScopedAdmin):
    """The delivery log: every outbound webhook, its tries, the last response and when it goes next."""

    organisation_path = "workspace__organisation_id"
    list_display = ["id", "workspace", "event", "status", "attempts", "last_response_status", "next_attempt_at",
                    "delivered_at", "created_at"]
    list_filter = ["status", "event"]
    search_fields = ["url", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace__organisation"]
    readonly_fields = ["id", "workspace", "event", "url", "payload", "status", "attempts", "next_attempt_at",
                       "last_response_status", "last_error", "created_at", "delivered_at"]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry the selected deliveries now")
    def retry_now(self, request, queryset):
        count = do_retry_webhook_deliveries(queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} deliveries will be retried on the next delivery run.")
