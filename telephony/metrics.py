"""Telephony's metric (registered with `config.metrics` by the app):
dialer_call_outcomes_total{organisation, campaign, outcome}, ended calls counted from Call rows.
"""
from django.db.models import Count
from prometheus_client.core import CounterMetricFamily

from telephony.models import Call, CallStatus


class CallOutcomesCollector:
    def collect(self):
        family = CounterMetricFamily("dialer_call_outcomes", "Ended calls by outcome.",
                                     labels=["organisation", "campaign", "outcome"])
        rows = (Call.objects.filter(status=CallStatus.ENDED).order_by()
                .values("organisation_id", "campaign_id", "outcome").annotate(n=Count("id")))
        for row in rows:
            family.add_metric([str(row["organisation_id"]), str(row["campaign_id"]), row["outcome"]], row["n"])
        yield family
