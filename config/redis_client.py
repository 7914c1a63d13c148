"""One Redis connection pool per process, from REDIS_URL."""
from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=None)
def _client_for(url):
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def get_redis():
    """The shared client for live state (slot leases, locks, simulator events)."""
    return _client_for(settings.REDIS_URL)
