"""Workspace allocations may not sum past the organisation total, enforced by PostgreSQL too.

The action layer validates first with a clear message; this constraint trigger is the
backstop against any write that bypasses it (a race between two admins, a raw UPDATE).
"""
from django.db import migrations

CREATE = r"""
CREATE FUNCTION campaigns_check_workspace_allocations() RETURNS trigger AS $$
DECLARE
    org_id bigint;
    allocated bigint;
    total bigint;
BEGIN
    IF TG_TABLE_NAME = 'campaigns_organisation' THEN
        org_id := NEW.id;
    ELSE
        org_id := NEW.organisation_id;
    END IF;
    SELECT total_slots INTO total FROM campaigns_organisation WHERE id = org_id;
    SELECT COALESCE(SUM(slots), 0) INTO allocated FROM campaigns_workspace WHERE organisation_id = org_id;
    IF allocated > total THEN
        RAISE EXCEPTION 'workspace allocations (%) exceed the organisation total (%)', allocated, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER workspace_allocations_within_org
    AFTER INSERT OR UPDATE OF slots, organisation_id ON campaigns_workspace
    DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW
    EXECUTE FUNCTION campaigns_check_workspace_allocations();

CREATE CONSTRAINT TRIGGER organisation_total_covers_workspaces
    AFTER UPDATE OF total_slots ON campaigns_organisation
    DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW
    EXECUTE FUNCTION campaigns_check_workspace_allocations();
"""

DROP = r"""
DROP TRIGGER IF EXISTS organisation_total_covers_workspaces ON campaigns_organisation;
DROP TRIGGER IF EXISTS workspace_allocations_within_org ON campaigns_workspace;
DROP FUNCTION IF EXISTS campaigns_check_workspace_allocations();
"""


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, DROP)]
