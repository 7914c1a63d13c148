"""Prometheus metrics at /metrics, computed at scrape time so every process's work is counted.

Web, worker, beat and simulator processes share nothing in memory, so nothing here is a
per-process counter. Each app registers the collector that reads its own data
(`register_collector`, from its AppConfig.ready): `dialer/metrics.py` (live calls, allocations,
admissions and dispatcher run time), `telephony/metrics.py` (call outcomes). This module serves
the registry and the Celery queue depth, which is configuration's own:

- dialer_queue_depth{queue}: messages waiting in each Celery queue (LLEN).

Set METRICS_TOKEN in the environment to require `Authorization: Bearer <token>` on scrapes.
"""
import hmac
import os

from django.http import HttpResponse
from django.urls import path
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from config.queues import ALL_QUEUES
from config.redis_client import get_redis


class QueueDepthCollector:
    def collect(self):
        family = GaugeMetricFamily("dialer_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        pipe = get_redis().pipeline(transaction=False)
        for queue in ALL_QUEUES:
            pipe.llen(str(queue))
        for queue, depth in zip(ALL_QUEUES, pipe.execute()):
            family.add_metric([str(queue)], depth)
        yield family


registry = CollectorRegistry(auto_describe=False)
registry.register(QueueDepthCollector())
_registered = set()


def register_collector(collector):
    """Add an app's collector once (AppConfig.ready may run more than once in tests)."""
    if type(collector) not in _registered:
        _registered.add(type(collector))
        registry.register(collector)


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
