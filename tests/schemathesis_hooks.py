"""Schemathesis hooks for `tests/test_api_schema.py`'s run (loaded through SCHEMATHESIS_HOOKS).

What the schema cannot express is excluded by name here, and only that: a schema-valid request
the server refuses is dropped from the findings when every error it answers with is one of the
rules below (the field it names and the reason it gives). Any other refusal is a finding. Each
of these rules is also stated in the field's description in the schema.
"""
import json

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

# (field, fragment of the server's message) → why a schema cannot say it.
NOT_EXPRESSIBLE = {
    ("phone", "valid phone number for its country"): "validity for the country code: phonenumbers' rules",
    ("phone", "is not a phone number"): "an E.164-shaped string with a country code that does not exist",
    ("number", "valid phone number for its country"): "validity for the country code: phonenumbers' rules",
    ("number", "is not a phone number"): "an E.164-shaped string with a country code that does not exist",
    ("from", "valid phone number for its country"): "validity for the country code: phonenumbers' rules",
    ("from", "is not a phone number"): "an E.164-shaped string with a country code that does not exist",
    ("from", "not a calling number of this workspace"): "a calling number that exists in the workspace",
    ("from", "A batch campaign needs a calling number"): "null only for a realtime campaign: its stored type",
    ("from", "the campaign has no default calling number"): "required only when the campaign has none",
    ("agent", "no agent"): "an agent that exists in the workspace",
    ("agent", "no such agent"): "an agent that exists in the workspace",
    ("campaign", "no such campaign"): "a campaign that exists in the workspace",
    ("campaign", "is a batch campaign"): "a realtime campaign: its stored type",
    ("campaign", "takes no new tasks"): "a campaign still open: its stored status",
    ("retryOutcomes", "not an outcome"): "custom outcomes are those the agent defines",
    ("slots", "the workspace's slots"): "at most the workspace's slots: stored, not in the schema",
    ("startAt", "before the campaign's end"): "the start before the end: a rule across fields",
    ("endAt", "after startAt"): "the end after the start: a rule across fields",
    ("endAt", "in the future"): "an end in the future: depends on the clock",
    ("endAfter", "after startAfter"): "the end after the start: a rule across fields",
    ("intervals", "must have exactly retries - 1"): "its length follows retries (or the campaign's)",
    ("priorities", "must have exactly retries"): "its length follows retries (or the campaign's)",
    ("cursor", "not a cursor this API returned"): "only a nextCursor this API returned names a position",
    ("Idempotency-Key", "already used for a different request"): "a key names one request: stored state",
    ("webhookUrl", "is not a valid URL"): "a URL that splits (a port in range, brackets closed): past a pattern",
    ("webhookUrl", "does not resolve"): "a host name that resolves: DNS at save time, not the URL's shape",
    ("webhookUrl", "only public internet addresses"): "a host on the public internet: where it points, not its shape",
    ("baseUrl", "is not a valid URL"): "a URL that splits (a port in range, brackets closed): past a pattern",
    ("baseUrl", "does not resolve"): "a host name that resolves: DNS at save time, not the URL's shape",
    ("baseUrl", "only public internet addresses"): "a host on the public internet: where it points, not its shape",
    ("apiKey", "required: the platform's secret"): "required unless simulate is true or one is stored",
    ("webhookSecret", "required: the platform's secret"): "required unless simulate is true or one is stored",
    ("runtime.kind", "has no"): "the workspace's credentials for the runtime's platform: stored state",
    ("context", "cannot be stored"): "no NUL character nor lone surrogate anywhere in a free-form object",
    ("predialWebhookUrl", "is not a valid URL"): "a URL that splits (a port in range, brackets closed): past a pattern",
    ("predialWebhookUrl", "does not resolve"): "a host name that resolves: DNS at save time, not the URL's shape",
    ("predialWebhookUrl", "only public internet addresses"): "a host on the public internet: where it points",
}
# A contacts file is read row by row: errors that carry a row are about the CSV's content.
CSV_ROW_ERRORS = "a CSV's content (UTF-8, `phone` first, valid numbers) is not something a schema describes"


def _excluded(error):
    if "row" in error:
        return True
    field, message = error.get("field") or "", (error.get("message") or "").lower()
    return any(field == name and fragment.lower() in message for name, fragment in NOT_EXPRESSIBLE)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but a refusal made only of the rules above."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code not in (400, 422):
        return True
    try:
        errors = json.loads(response.content)["errors"]
    except (ValueError, KeyError, TypeError):
        return True
    return not (errors and all(_excluded(error) for error in errors))
