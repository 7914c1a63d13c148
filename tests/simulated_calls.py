"""Simulated calls ended ahead of time in tests, and the wait that makes that look on time."""
import time

from django.db.models import Max
from django.utils import timezone

from telephony.models import Call


def wait_past_call_ends():
    """Return once the wall clock is past every call's end. Tests apply the simulator's events at
    once (`now_ms` far ahead), and each event stamps its call with its own due instant, a scripted
    ring and talk ahead: a retry due at a call's end is due only once that instant has passed."""
    last_end = Call.objects.aggregate(last_end=Max("ended_at"))["last_end"]
    if last_end is not None:
        time.sleep(max(0.0, (last_end - timezone.now()).total_seconds()))
