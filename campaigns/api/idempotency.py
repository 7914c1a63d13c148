"""`Idempotency-Key`: the first response to a keyed request is stored and replayed on retries.

Per workspace, a key names one request: a retry with the same body gets the stored status and
body back (header `Idempotent-Replayed: true`) and creates nothing; the same key with another
body or endpoint is refused with 422. Concurrent duplicates serialise on a transaction-scoped
advisory lock for (workspace, key), and the unique constraint on IdempotencyRecord backs it up.
Every response is stored, errors included, except server errors (which roll back).
"""
import hashlib
import json

from django.db import connection, transaction
from rest_framework.response import Response

from campaigns.api.errors import error, error_response
from campaigns.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def request_fingerprint(request):
    canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def _lock_id(workspace_id, key):
    digest = hashlib.sha256(f"{workspace_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def respond_idempotently(request, workspace, produce):
    """`produce()` → Response, run at most once per (workspace, Idempotency-Key) if the header is set."""
    key = request.headers.get(HEADER)
    if key is None:
        return produce()
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return error_response(400, [error(HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters")])
    fingerprint = request_fingerprint(request)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(workspace.id, key)])
        record = IdempotencyRecord.objects.filter(workspace=workspace, key=key).first()
        if record is not None:
            if record.request_hash != fingerprint:
                return error_response(422, [error(HEADER, "was already used for a different request; "
                                                          "use a new key for a new request")])
            return Response(record.response_body, status=record.response_status,
                            headers={"Idempotent-Replayed": "true"})
        response = produce()
        IdempotencyRecord.objects.create(workspace=workspace, key=key, request_hash=fingerprint,
                                         response_status=response.status_code, response_body=response.data)
    return response
