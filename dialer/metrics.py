"""The dialer's metrics (registered with `config.metrics` by the app): live calls and allocations
per organisation, workspace and campaign (from `dialer.slots.usage`, leases not past expiry), and
what the dispatcher measures about itself with `record_dispatch`, which any process may call:

- dialer_live_calls{organisation, scope, node}, dialer_slot_allocation{organisation, scope, node, mode};
- dialer_admissions_total{organisation}, dialer_dispatch_runs_total{organisation} and the
  dialer_dispatch_seconds histogram.
"""
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from campaigns.models import Organisation
from config.redis_client import get_redis
from dialer import keys, slots

DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ADMISSIONS_KEY, RUNS_KEY, SECONDS_KEY = keys.METRICS_ADMISSIONS, keys.METRICS_RUNS, keys.METRICS_SECONDS


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
        yield from self._dispatch()

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
