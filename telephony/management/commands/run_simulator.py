"""Run the simulated carrier: apply due call events as they come due, forever."""
import signal

from django.core.management.base import BaseCommand

from telephony.simulator import run_forever


class Command(BaseCommand):
    help = "Apply the simulated carrier's due events in a loop (sleeps briefly only when idle)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=500, help="Most events applied per pop.")
        parser.add_argument("--idle-sleep", type=float, default=0.01, help="Seconds to sleep when nothing is due.")
        parser.add_argument("--until-idle", action="store_true", help="Stop as soon as no event is due.")

    def handle(self, *args, batch, idle_sleep, until_idle, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        self.stdout.write(f"simulated carrier running (batch {batch}, idle sleep {idle_sleep}s)")
        run_forever(idle_sleep=idle_sleep, limit=batch, stop=lambda: bool(stopping), until_idle=until_idle)
        self.stdout.write("simulated carrier stopped")
