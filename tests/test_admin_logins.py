"""Admin login protection (django-axes): repeated failures for one username from one address lock
that pair out, the right password included, until a superuser resets it; only superusers see it."""
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.factories import OrganisationMemberFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"


def log_in(username, password, address="203.0.113.7"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return response, client


def fail_until_locked(username, address="203.0.113.7"):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response, _ = log_in(username, "wrong", address)
    return response


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Dozens of logins per test: the production hasher's deliberate slowness is not under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def operator():
    user = UserFactory(is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def test_the_right_password_logs_in_before_any_failure(operator):
    response, client = log_in(operator.username, PASSWORD)
    assert response.status_code == 302 and client.get("/admin/").status_code == 200


def test_after_the_failure_limit_the_right_password_is_refused(operator):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(operator.username, "wrong")[0].status_code == 200
    assert fail_until_locked(operator.username).status_code == 429
    response, client = log_in(operator.username, PASSWORD)
    assert response.status_code == 429
    assert client.get("/admin/").status_code == 302


def test_the_lockout_is_per_username_and_address(operator):
    fail_until_locked(operator.username)
    assert log_in(operator.username, PASSWORD, address="198.51.100.9")[0].status_code == 302
    other = UserFactory(is_staff=True)
    other.set_password(PASSWORD)
    other.save()
    assert log_in(other.username, PASSWORD)[0].status_code == 302


def test_a_superuser_sees_the_lockout_and_resets_it(operator):
    admin = UserFactory(is_staff=True, is_superuser=True)
    fail_until_locked(operator.username)
    browser = Client()
    browser.force_login(admin)
    page = browser.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and operator.username in page.content.decode()
    attempt = AccessAttempt.objects.get(username=operator.username)
    browser.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.id],
                                                "post": "yes"})
    assert not AccessAttempt.objects.exists()
    assert log_in(operator.username, PASSWORD)[0].status_code == 302


def test_organisation_staff_cannot_see_login_attempts(operator):
    fail_until_locked(operator.username)
    member = OrganisationMemberFactory().user
    browser = Client()
    browser.force_login(member)
    assert browser.get("/admin/axes/accessattempt/").status_code == 403
    assert "axes" not in browser.get("/admin/").content.decode()
