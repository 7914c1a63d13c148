"""Deliveries that failed before outbound requests were guarded kept up to 1,000 characters of the
receiver's reply (or of the connection error) in `last_error`, shown to the organisation's admin:
replace them by the short reasons stored now, so no internal service's answer stays readable."""
from django.db import migrations

FORGET_REPLIES = """
UPDATE telephony_webhookdelivery
SET last_error = CASE WHEN last_response_status IS NULL THEN 'connection failed'
                      ELSE 'HTTP ' || last_response_status END
WHERE last_error <> ''
"""


class Migration(migrations.Migration):

    dependencies = [
        ("telephony", "0004_upkeep_and_wakeup_indexes"),
    ]

    operations = [migrations.RunSQL(FORGET_REPLIES, reverse_sql=migrations.RunSQL.noop)]
