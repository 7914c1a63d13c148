"""Campaign creation. Settings are validated first by `campaign_validation.validate_campaign_body`."""
from django.db import transaction

from campaigns.models import Campaign, CampaignStatus


@transaction.atomic
def do_create_campaign(workspace, fields):
    """Create a `scheduled` campaign in `workspace` from validated `fields`; sends nothing else.

    `fields` is the dict `validate_campaign_body` returns. No task exists yet, so the dispatcher
    has nothing to be told: batch tasks arrive with the CSV import, realtime ones through the API.
    """
    return Campaign.objects.create(workspace=workspace, status=CampaignStatus.SCHEDULED, **fields)
