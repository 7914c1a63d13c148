"""The deployment's WSGI application (gunicorn's `config.wsgi`).

Carrier and agent webhooks (`/webhooks/`) go to a Django handler of their own built with
`settings.WEBHOOK_MIDDLEWARE`, everything else to the one built with `settings.MIDDLEWARE`.
Webhooks are most of the web tier's requests (six per call) and are signed or carry an API key:
sessions, CSRF, authentication, messages, axes and static files do nothing for them but cost CPU.
"""
import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

WEBHOOK_PATH_PREFIX = "/webhooks/"


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler with `settings.WEBHOOK_MIDDLEWARE` in place of `settings.MIDDLEWARE`."""

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE alone; swapped only while it does, at
        # start-up, before any request thread runs.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.WEBHOOK_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class PathRoutedApplication:
    """Sends `/webhooks/` requests to the webhook handler and every other request to the full one."""

    def __init__(self, full, webhooks):
        self.full = full
        self.webhooks = webhooks

    def __call__(self, environ, start_response):
        handler = self.webhooks if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIX) else self.full
        return handler(environ, start_response)


application = PathRoutedApplication(get_wsgi_application(), WebhookHandler())
