import pytest
from django.conf import settings

from config.celery import app as celery_app

# Tests never touch a developer's Redis db: they get their own (TEST_REDIS_URL, default db 15),
# flushed around every test. pytest-django has loaded the settings before this module runs, so
# the URL is switched on the live settings and the Celery app rather than through the environment.
TEST_REDIS_URL = __import__("os").environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
settings.REDIS_URL = TEST_REDIS_URL
settings.CELERY_BROKER_URL = TEST_REDIS_URL
celery_app.conf.broker_url = TEST_REDIS_URL


@pytest.fixture(autouse=True)
def clean_redis():
    from config.redis_client import get_redis

    client = get_redis()
    assert client.connection_pool.connection_kwargs["db"] == int(TEST_REDIS_URL.rsplit("/", 1)[1])
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def redis_client(clean_redis):
    return clean_redis
