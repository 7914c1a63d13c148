"""The soak's CI variant: ~1,200 tasks through real workers, beat and the simulator under faults.

The same code as `make soak` (`bench/soak.py`), smaller: workers killed with SIGKILL and
restarted, the test's Redis db emptied, every PostgreSQL backend of the test database killed,
carrier events delivered twice and out of order, campaigns paused, resumed and archived; an API
client calls the REST API throughout.
"""
import pytest

from bench.soak import SHORT, run_soak

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_short_soak_under_faults_loses_nothing_and_breaks_no_invariant(redis_client):
    report = run_soak(SHORT, wipe_redis=redis_client.flushdb)
    print("\n".join(report.lines()))
    assert report.faults["kill-worker"] == SHORT.worker_kills and report.faults["wipe-redis"] == SHORT.redis_wipes
    assert report.samples > 20 and report.calls >= 150
    assert report.cap_exceeded == []
    assert report.double_dials == 0
    assert report.leaked_leases == 0
    assert report.lost_tasks == []
    assert report.violations == []
    assert report.api_requests > 50 and report.api_errors_outside_faults == []
