"""The deployment's WSGI application: webhooks and the API on their own lean middleware stack, the rest on the full one."""
import io
import sys

import pytest
from django.core.handlers.wsgi import WSGIHandler

from config.wsgi import PathRoutedApplication, MachineHandler

pytestmark = pytest.mark.django_db


def request(application, method, path, host="testserver", body=b"", scheme="http", content_type=""):
    """(status code, headers) of one request through a WSGI application."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
               "SERVER_PORT": "80", "HTTP_HOST": host, "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "wsgi.errors": sys.stderr, "wsgi.url_scheme": scheme, "wsgi.multithread": True,
               "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0)}
    answered = []
    response = application(environ, lambda status, headers, exc_info=None: answered.append((status, headers)))
    b"".join(response)
    response.close()
    status, headers = answered[0]
    return int(status.split()[0]), headers


def deployed_application():
    """Built as config/wsgi.py builds it, after the test's settings are in place."""
    return PathRoutedApplication(WSGIHandler(), MachineHandler())


def header_names(headers):
    return {name.lower() for name, _ in headers}


def test_an_unsigned_carrier_callback_is_refused_with_the_security_headers():
    status, headers = request(deployed_application(), "POST", "/webhooks/twilio/status/", body=b"CallSid=CA1",
                              content_type="application/x-www-form-urlencoded")
    assert status == 403
    assert dict(headers)["X-Frame-Options"] == "DENY"
    assert dict(headers)["X-Content-Type-Options"] == "nosniff"
    assert "set-cookie" not in header_names(headers)


def test_a_webhook_for_a_host_not_allowed_is_a_400():
    status, _ = request(deployed_application(), "POST", "/webhooks/twilio/status/", host="evil.example")
    assert status == 400


def test_webhooks_over_plain_http_are_redirected_when_https_is_required(settings):
    settings.SECURE_SSL_REDIRECT = True
    status, headers = request(deployed_application(), "POST", "/webhooks/twilio/status/")
    assert status == 301
    assert dict(headers)["Location"] == "https://testserver/webhooks/twilio/status/"


def test_other_paths_keep_the_full_stack_sessions_and_csrf():
    application = deployed_application()
    status, headers = request(application, "GET", "/admin/login/")
    assert status == 200
    assert any(name.lower() == "set-cookie" and value.strip().startswith("csrftoken=") for name, value in headers)
    status, _ = request(application, "POST", "/admin/login/", body=b"username=a&password=b",
                        content_type="application/x-www-form-urlencoded")
    assert status == 403  # no CSRF token


def test_the_api_answers_through_the_lean_stack_with_its_own_errors(settings):
    status, headers = request(deployed_application(), "GET", "/api/v1/campaigns")
    assert status == 401
    assert dict(headers)["X-Content-Type-Options"] == "nosniff"
    assert "set-cookie" not in header_names(headers)


def test_the_machines_handler_leaves_the_full_stack_as_configured(settings):
    MachineHandler()
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    assert "django.middleware.csrf.CsrfViewMiddleware" not in settings.MACHINE_MIDDLEWARE
