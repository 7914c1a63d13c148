import os

# Tests never touch a developer's Redis db: they get their own, flushed around every test.
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DEBUG", "true")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def clean_redis():
    from config.redis_client import get_redis

    client = get_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def redis_client(clean_redis):
    return clean_redis
