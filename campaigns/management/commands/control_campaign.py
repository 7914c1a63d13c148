"""Pause, resume or archive a campaign from the shell, recorded in its audit trail."""
import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from campaigns.actions.audit import Actor
from campaigns.actions.controls import ControlRefused, do_archive_campaign, do_pause_campaign, do_resume_campaign
from campaigns.models import Campaign

CONTROLS = {"pause": do_pause_campaign, "resume": do_resume_campaign, "archive": do_archive_campaign}


class Command(BaseCommand):
    help = ("Pause, resume or archive a campaign; the campaign's history records it with the operator's name. "
            "Prints one JSON object.")

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=sorted(CONTROLS))
        parser.add_argument("campaign", type=int, help="The campaign's id.")
        parser.add_argument("--operator", help="Who is making the change (default: the system user running this).")

    def handle(self, *args, verb, campaign, operator=None, **options):
        found = Campaign.objects.select_related("workspace").filter(id=campaign).first()
        if found is None:
            raise CommandError(f"No campaign {campaign}.")
        actor = Actor.for_command(operator or getpass.getuser())
        try:
            changed = CONTROLS[verb](found, actor=actor)
        except ControlRefused as exc:
            raise CommandError(exc.reason) from None
        self.stdout.write(json.dumps({"campaign": str(found.id), "status": found.status, "changed": changed}))
