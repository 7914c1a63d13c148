"""Measure how many simultaneous calls the simulated carrier carries on this machine.

Creates a throwaway organisation with N admitted calls, places them all (scripted to stay live
for a while, so they overlap), applies their events as they come due, and prints placement rate,
peak simultaneous live calls, events applied per second and event lag (due → applied). The
organisation is deleted afterwards. Figures are printed, never asserted.
"""
import json
import random
import statistics
import time
import uuid

from django.core.management.base import BaseCommand
from django.utils import timezone

from campaigns.models import Agent, CallingNumber, Campaign, Organisation, Task, Workspace
from telephony import simulator
from telephony.calls import place_call
from telephony.events import handle_event
from telephony.models import Call, CallStatus

OUTCOMES = ["connected", "no-answer", "busy", "voicemail", "callback", "failed"]


class Command(BaseCommand):
    help = "Benchmark the simulated carrier with N overlapping calls (prints figures)."

    def add_arguments(self, parser):
        parser.add_argument("--calls", type=int, default=3000)
        parser.add_argument("--talk-ms", type=int, default=20_000, help="Scripted talk time of answered calls.")
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args, calls, talk_ms, batch, **options):
        rng = random.Random(7)
        organisation = self._setup(calls, talk_ms, rng)
        try:
            self._run(organisation, calls, batch)
        finally:
            Call.objects.filter(organisation=organisation).delete()
            Campaign.objects.filter(workspace__organisation=organisation).delete()
            organisation.delete()

    def _setup(self, n, talk_ms, rng):
        tag = uuid.uuid4().hex[:8]
        organisation = Organisation.objects.create(name=f"bench-sim-{tag}", total_slots=n)
        workspace = Workspace.objects.create(organisation=organisation, name="bench", slots=n)
        agent = Agent.objects.create(workspace=workspace, name="bench", prompt="Hello ${name}")
        number = CallingNumber.objects.create(workspace=workspace, number="+14155550100")
        now = timezone.now()
        campaign = Campaign.objects.create(
            workspace=workspace, type="batch", name="bench", agent=agent, calling_number=number, start_at=now,
            calling_start="00:00", calling_end="00:00", slots=n)
        tasks = Task.objects.bulk_create(Task(
            campaign=campaign, phone=f"+4420{i:08d}", status="in_progress", attempts_made=1,
            context={"name": f"Contact {i}", "_sim": json.dumps([{
                "outcome": rng.choice(OUTCOMES), "ring_ms": rng.randint(1_000, 4_000),
                "talk_ms": rng.randint(talk_ms // 2, talk_ms)}])}) for i in range(n))
        Call.objects.bulk_create(Call(
            task=task, campaign=campaign, organisation=organisation, attempt=1, agent=agent, carrier="simulated",
            from_number=number.number, to_number=task.phone) for task in tasks)
        return organisation

    def _run(self, organisation, n, batch):
        ids = list(Call.objects.filter(organisation=organisation).values_list("id", flat=True))
        redis = simulator.get_redis()
        started = time.perf_counter()
        for call_id in ids:
            place_call(call_id)
        placing = time.perf_counter() - started
        self.stdout.write(f"placed {n} calls in {placing:.2f}s: {n / placing:,.0f} calls/s (one process)")

        live = Call.objects.filter(organisation=organisation).exclude(status=CallStatus.ENDED)
        peak, lags, applied, busy = live.count(), [], 0, 0.0
        loop_started = time.perf_counter()
        last_sample = 0.0
        while True:
            now_ms = simulator.redis_now_ms(redis)
            payloads = simulator.pop_due_events(now_ms=now_ms, limit=batch)
            busy_from = time.perf_counter()
            for payload in payloads:
                handle_event(simulator._event_from_json(payload))
                lags.append(simulator.redis_now_ms(redis) - json.loads(payload)["at_ms"])
                applied += 1
            busy += time.perf_counter() - busy_from
            if time.perf_counter() - last_sample > 1:
                last_sample = time.perf_counter()
                remaining = live.count()
                peak = max(peak, remaining)
                if remaining == 0:
                    break
            if not payloads:
                time.sleep(0.01)
        elapsed = time.perf_counter() - loop_started
        lags.sort()
        self.stdout.write(f"apply capacity {applied / busy:,.0f} events/s while busy (one process)")
        self.stdout.write(
            f"peak simultaneous live calls {peak}; {applied} events applied in {elapsed:.1f}s of simulated "
            f"life ({applied / elapsed:,.0f} events/s average)")
        self.stdout.write(
            f"event lag due → applied: p50 {statistics.median(lags):.0f} ms, "
            f"p99 {lags[int(len(lags) * 0.99) - 1]:.0f} ms, max {lags[-1]:.0f} ms")
        outcomes = Call.objects.filter(organisation=organisation).values_list("outcome", flat=True)
        self.stdout.write(f"all {len(outcomes)} calls ended: {dict(sorted(_count(outcomes).items()))}")


def _count(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
