"""Keyset (cursor) pagination on the primary key: stable under inserts, served by an index."""
import base64
import binascii

from rest_framework.exceptions import ValidationError

from campaigns.access import parse_bigint_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _encode(last_id):
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _decode(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    last_id = parse_bigint_id(raw)
    if last_id is None:
        raise ValidationError({"cursor": "is not a cursor this API returned"})
    return last_id


def parse_limit(request):
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationError({"limit": f"must be an integer from 1 to {MAX_LIMIT}"})
    return int(value)


def paginate(queryset, request, newest_first=False):
    """One page of `queryset` by id after `?cursor=` (at most `?limit=`); returns (items, nextCursor)."""
    limit = parse_limit(request)
    cursor = request.query_params.get("cursor")
    if cursor:
        last_id = _decode(cursor)
        queryset = queryset.filter(id__lt=last_id) if newest_first else queryset.filter(id__gt=last_id)
    items = list(queryset.order_by("-id" if newest_first else "id")[:limit + 1])
    if len(items) > limit:
        return items[:limit], _encode(items[limit - 1].id)
    return items, None
