"""Re-create slot leases from live calls in PostgreSQL after Redis lost its data."""
from django.core.management.base import BaseCommand

from dialer.slots import rebuild_leases


class Command(BaseCommand):
    help = "Rebuild slot leases from live calls (all organisations, or one) and reopen admission."

    def add_arguments(self, parser):
        parser.add_argument("--organisation", type=int, help="Only this organisation id.")

    def handle(self, *args, organisation=None, **options):
        restored = rebuild_leases(organisation)
        for organisation_id, live_calls in sorted(restored.items()):
            self.stdout.write(f"organisation {organisation_id}: {live_calls} live call leases")
