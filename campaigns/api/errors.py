"""One error body for the whole API: `{"errors": [{"field": ..., "message": ...}]}`.

`field` is the camelCase field at fault, or null for the request as a whole; bulk requests add
`index`, the position of the body in the array.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from config.job_policy import TRANSIENT_DATABASE_ERRORS

# A request that met a connection lost mid-way (a database restart or failover) answers 503 and
# says when to retry, rather than a 500: nothing was committed, and Django replaces the broken
# connection before the next request.
DATABASE_RETRY_AFTER_SECONDS = 1


def error(field, message, **extra):
    return {"field": field, "message": message, **extra}


def error_response(status_code, errors, headers=None, **extra):
    return Response({"errors": errors, **extra}, status=status_code, headers=headers)


def errors_from_django_validation(exc):
    """[{"field", "message"}] from a Django ValidationError keyed by camelCase field (or not keyed)."""
    if hasattr(exc, "error_dict"):
        return [error(None if field == "__all__" else field, message)
                for field, messages in exc.message_dict.items() for message in messages]
    return [error(None, message) for message in exc.messages]


def _flatten_drf_detail(detail, field=None):
    if isinstance(detail, dict):
        return [e for key, value in detail.items()
                for e in _flatten_drf_detail(value, None if key == "non_field_errors" else key)]
    if isinstance(detail, list):
        return [e for item in detail for e in _flatten_drf_detail(item, field)]
    return [error(field, str(detail))]


def exception_handler(exc, context):
    """DRF's exceptions (and Django's 404 and ValidationError, and a lost database) in the API's error body."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, DjangoValidationError):
        return error_response(status.HTTP_400_BAD_REQUEST, errors_from_django_validation(exc))
    if isinstance(exc, TRANSIENT_DATABASE_ERRORS):
        return error_response(status.HTTP_503_SERVICE_UNAVAILABLE,
                              [error(None, "The database is unavailable for a moment; retry.")],
                              headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_drf_detail(exc.detail)
    else:
        errors = [error(None, str(exc.detail))]
    return error_response(exc.status_code, errors, headers=headers or None)


def unknown_endpoint(request, path):
    """404 in the API's error body for a path under /api/v1/ that names no endpoint (instead of
    Django's HTML page), pointing at the reference."""
    message = f"No such endpoint: {request.method} {request.path}. The endpoints are listed at /api/v1/docs/."
    return JsonResponse({"errors": [error(None, message)]}, status=404)
