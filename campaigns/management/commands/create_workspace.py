"""Create or update an organisation and a workspace; optionally mint an API key (shown once)."""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.models import SlotMode
from campaigns.actions.tenancy import do_create_api_key, do_upsert_organisation, do_upsert_workspace


class Command(BaseCommand):
    help = "Create or update an organisation and workspace idempotently; prints one JSON object."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True)
        parser.add_argument("--org-slots", type=int, required=True)
        parser.add_argument("--workspace", required=True)
        parser.add_argument("--slots", type=int, required=True)
        parser.add_argument("--slot-mode", choices=[m.value for m in SlotMode], default=SlotMode.HARD)
        parser.add_argument("--api-key", action="store_true", help="Create a new API key and print it once.")

    def handle(self, *args, **options):
        if options["org_slots"] < 0 or options["slots"] < 0:
            raise CommandError("Slot counts must be zero or more.")
        try:
            organisation = do_upsert_organisation(options["org"], options["org_slots"])
            workspace = do_upsert_workspace(organisation, options["workspace"], options["slots"], options["slot_mode"])
        except ValidationError as error:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()))
        result = {"organisation": str(organisation.id), "workspace": str(workspace.id)}
        if options["api_key"]:
            _, raw_key = do_create_api_key(workspace, name="create_workspace")
            result["apiKey"] = raw_key
        self.stdout.write(json.dumps(result))
