"""Workspace API keys: `Authorization: Bearer <key>`, per-key throttling."""
import datetime as dt

from django.utils import timezone as django_timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from campaigns.api_keys import key_matches
from campaigns.models import ApiKey
from campaigns.actions.tenancy import authenticate_api_key

# last_used_at is for people ("is this key still in use?"); writing it once a minute keeps the
# hot path free of a write per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class KeyHolder:
    """The authenticated client: whoever holds a workspace's API key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.workspace = api_key.workspace


def touch_last_used(api_key, now):
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
        api_key.last_used_at = now


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != "bearer" or not raw_key or " " in raw_key:
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        api_key = authenticate_api_key(raw_key)
        if api_key is None or not key_matches(raw_key, api_key.key_hash):
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        touch_last_used(api_key, django_timezone.now())
        return KeyHolder(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword


class HasWorkspaceKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, KeyHolder)


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Rate from settings REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"], counted per key."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, KeyHolder):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.api_key.id}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer API key in the OpenAPI schema (drf-spectacular finds it by target class)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A workspace API key: `Bearer dk_…`."}
