"""Report every violation of docs/product.md §3 visible in PostgreSQL and Redis; exit 1 when any."""
from django.core.management.base import BaseCommand

from dialer.invariants import check_invariants


class Command(BaseCommand):
    help = "Check the stored state against docs/product.md §3; prints each violation, exits non-zero when any."

    def add_arguments(self, parser):
        parser.add_argument("--organisation", type=int, help="Only this organisation id.")

    def handle(self, *args, organisation=None, **options):
        violations = check_invariants(organisation)
        for violation in violations:
            self.stdout.write(str(violation))
        if violations:
            self.stderr.write(f"{len(violations)} invariant violation(s).")
            raise SystemExit(1)
        self.stdout.write("No invariant violations.")
