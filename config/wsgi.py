"""The deployment's WSGI application (gunicorn's `config.wsgi`).

Requests from machines — carrier and agent webhooks (`/webhooks/`) and the REST API (`/api/`) —
go to a Django handler of their own built with `settings.MACHINE_MIDDLEWARE`, everything else (the
admin, static files, `/metrics`) to the one built with `settings.MIDDLEWARE`. Webhooks are most of
the web tier's requests (five per call); they and the API are signed or carry an API key, so
sessions, CSRF, authentication, messages, axes and static files do nothing for them but cost CPU.
"""
import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

MACHINE_PATH_PREFIXES = ("/webhooks/", "/api/")


class MachineHandler(WSGIHandler):
    """Django's WSGI handler with `settings.MACHINE_MIDDLEWARE` in place of `settings.MIDDLEWARE`."""

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE alone; swapped only while it does, at
        # start-up, before any request thread runs.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MACHINE_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class PathRoutedApplication:
    """Sends webhook and API requests to the machines' handler and every other request to the full one."""

    def __init__(self, full, machines):
        self.full = full
        self.machines = machines

    def __call__(self, environ, start_response):
        handler = self.machines if environ.get("PATH_INFO", "").startswith(MACHINE_PATH_PREFIXES) else self.full
        return handler(environ, start_response)


application = PathRoutedApplication(get_wsgi_application(), MachineHandler())
