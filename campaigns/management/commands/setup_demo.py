"""Idempotent first-run setup: an admin login and a demo tenant, printed to the console."""
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from campaigns.models import Agent, CallingNumber
from campaigns.tenancy import do_upsert_organisation, do_upsert_workspace

DEMO_PROMPT = "You are calling ${name} to confirm their appointment on ${date}. Be brief and friendly."


class Command(BaseCommand):
    help = "Create the admin login and a demo organisation, workspace, agent and calling number."

    def handle(self, *args, **options):
        username = os.environ.get("ADMIN_USERNAME", "admin")
        password = os.environ.get("ADMIN_PASSWORD", "admin")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, email="", password=password)
        organisation = do_upsert_organisation("Demo", 20)
        workspace = do_upsert_workspace(organisation, "Demo workspace", 10, "soft")
        Agent.objects.get_or_create(workspace=workspace, name="Appointment reminder",
                                    defaults={"prompt": DEMO_PROMPT, "outcomes": ["rescheduled"]})
        CallingNumber.objects.get_or_create(workspace=workspace, number="+14155550100")
        base = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
        self.stdout.write(self.style.SUCCESS(f"Admin: {base}/admin/  login: {username} / "
                                             f"{password if user is None else '(unchanged)'}"))
