"""Prometheus metrics at /metrics, computed at scrape time so every process's work is counted.

Web, worker, beat and simulator processes share nothing in memory, so nothing here is a
per-process counter. Gauges and call outcomes are read from where the truth already lives
(Redis slot leases, Call rows, Celery's Redis lists); what the dispatcher measures about itself
it adds to a few Redis counters with `record_dispatch`, which any process may call.

- dialer_live_calls{organisation, scope, node}: live calls per organisation, workspace and
  campaign, from `dialer.slots.usage` (leases not past expiry); dialer_slot_allocation likewise.
- dialer_call_outcomes_total{organisation, campaign, outcome}: ended calls, from Call rows.
- dialer_admissions_total{organisation}, dialer_dispatch_runs_total{organisation} and the
  dialer_dispatch_seconds histogram: from `record_dispatch`.
- dialer_queue_depth{queue}: messages waiting in each Celery queue (LLEN).

Set METRICS_TOKEN in the environment to require `Authorization: Bearer <token>` on scrapes.
"""
import hmac
import os

from django.db.models import Count
from django.http import HttpResponse
from django.urls import path
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from config.queues import ALL_QUEUES
from config.redis_client import get_redis

DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ADMISSIONS_KEY = "metrics:dispatch:admitted"  # hash: organisation id → calls admitted
RUNS_KEY = "metrics:dispatch:runs"  # hash: organisation id → dispatcher runs
SECONDS_KEY = "metrics:dispatch:seconds"  # hash: "<org>:<le>" → runs at or under le; "<org>:sum" → seconds


def _bucket_label(bound):
    return "+Inf" if bound == float("inf") else repr(bound)


def record_dispatch(organisation_id, admitted, seconds):
    """Count one dispatcher run of `organisation_id`: calls it admitted and how long it took.

    One pipelined round trip; call it after each `dispatch_organisation` run (any process).
    """
    pipe = get_redis().pipeline(transaction=False)
    pipe.hincrby(ADMISSIONS_KEY, organisation_id, int(admitted))
    pipe.hincrby(RUNS_KEY, organisation_id, 1)
    pipe.hincrbyfloat(SECONDS_KEY, f"{organisation_id}:sum", float(seconds))
    for bound in (*DISPATCH_BUCKETS, float("inf")):
        if seconds <= bound:
            pipe.hincrby(SECONDS_KEY, f"{organisation_id}:{_bucket_label(bound)}", 1)
    pipe.execute()


class DialerCollector:
    """Reads PostgreSQL and Redis on each scrape (a handful of queries and round trips)."""

    def collect(self):
        from campaigns.models import Organisation
        from dialer import slots

        live = GaugeMetricFamily("dialer_live_calls", "Live calls holding a slot lease.",
                                 labels=["organisation", "scope", "node"])
        allocation = GaugeMetricFamily("dialer_slot_allocation", "Slots allocated (the organisation total for "
                                       "scope=organisation).", labels=["organisation", "scope", "node", "mode"])
        for organisation_id in Organisation.objects.order_by("id").values_list("id", flat=True):
            usage = slots.usage(organisation_id)
            org = str(organisation_id)
            nodes = [("organisation", org, usage["organisation"])]
            nodes += [("workspace", str(w), n) for w, n in sorted(usage["workspaces"].items())]
            nodes += [("campaign", str(c), n) for c, n in sorted(usage["campaigns"].items())]
            for scope, node, figures in nodes:
                live.add_metric([org, scope, node], figures["used"])
                allocation.add_metric([org, scope, node, figures["mode"]], figures["allocation"])
        yield live
        yield allocation
        yield self._outcomes()
        yield from self._dispatch()
        yield self._queue_depth()

    @staticmethod
    def _outcomes():
        from telephony.models import Call, CallStatus

        family = CounterMetricFamily("dialer_call_outcomes", "Ended calls by outcome.",
                                     labels=["organisation", "campaign", "outcome"])
        rows = (Call.objects.filter(status=CallStatus.ENDED).order_by()
                .values("organisation_id", "campaign_id", "outcome").annotate(n=Count("id")))
        for row in rows:
            family.add_metric([str(row["organisation_id"]), str(row["campaign_id"]), row["outcome"]], row["n"])
        return family

    @staticmethod
    def _dispatch():
        pipe = get_redis().pipeline(transaction=False)
        pipe.hgetall(ADMISSIONS_KEY)
        pipe.hgetall(RUNS_KEY)
        pipe.hgetall(SECONDS_KEY)
        admitted, runs, seconds = pipe.execute()
        admissions = CounterMetricFamily("dialer_admissions", "Calls admitted by the dispatcher.",
                                         labels=["organisation"])
        for org, value in sorted(admitted.items()):
            admissions.add_metric([org], int(value))
        run_count = CounterMetricFamily("dialer_dispatch_runs", "Dispatcher runs.", labels=["organisation"])
        for org, value in sorted(runs.items()):
            run_count.add_metric([org], int(value))
        histogram = HistogramMetricFamily("dialer_dispatch_seconds", "Dispatcher run time.",
                                          labels=["organisation"])
        for org in sorted(runs):
            buckets = [(_bucket_label(b), int(seconds.get(f"{org}:{_bucket_label(b)}", 0)))
                       for b in (*DISPATCH_BUCKETS, float("inf"))]
            histogram.add_metric([org], buckets, float(seconds.get(f"{org}:sum", 0)))
        return admissions, run_count, histogram

    @staticmethod
    def _queue_depth():
        family = GaugeMetricFamily("dialer_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        pipe = get_redis().pipeline(transaction=False)
        for queue in ALL_QUEUES:
            pipe.llen(str(queue))
        for queue, depth in zip(ALL_QUEUES, pipe.execute()):
            family.add_metric([str(queue)], depth)
        return family


registry = CollectorRegistry(auto_describe=False)
registry.register(DialerCollector())


def metrics_view(request):
    """GET /metrics: the Prometheus text format; 401 without the token when METRICS_TOKEN is set."""
    token = os.environ.get("METRICS_TOKEN", "")
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return HttpResponse("metrics token required", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# Mounted from config/urls.py with include("config.metrics").
urlpatterns = [path("", metrics_view, name="metrics")]
