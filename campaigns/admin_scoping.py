"""Admin scoping: a staff user who belongs to an organisation sees only that organisation's rows."""
from django.contrib import admin


def organisation_of(user):
    """The organisation a staff user belongs to; None for superusers (who see everything)."""
    if user.is_superuser:
        return None
    membership = getattr(user, "membership", None)
    return membership.organisation if membership else False


class OrganisationScopedAdmin(admin.ModelAdmin):
    """Filters the changelist, change pages and foreign-key choices by `organisation_path`.

    `organisation_path` is the ORM path from the model to its Organisation id, e.g.
    "workspace__organisation". A staff user without a membership sees nothing.
    """

    organisation_path = None

    def scope(self, request, queryset, path=None):
        organisation = organisation_of(request.user)
        if organisation is None:
            return queryset
        if organisation is False:
            return queryset.none()
        return queryset.filter(**{path or self.organisation_path: organisation.id})

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        path = FOREIGN_KEY_ORGANISATION_PATHS.get(db_field.related_model._meta.label)
        if path is not None and field is not None:
            field.queryset = self.scope(request, field.queryset, path)
        return field


FOREIGN_KEY_ORGANISATION_PATHS = {
    "campaigns.Organisation": "id",
    "campaigns.Workspace": "organisation_id",
    "campaigns.Agent": "workspace__organisation_id",
    "campaigns.CallingNumber": "workspace__organisation_id",
    "campaigns.Campaign": "workspace__organisation_id",
    "campaigns.Task": "campaign__workspace__organisation_id",
    "telephony.Call": "organisation_id",
}
