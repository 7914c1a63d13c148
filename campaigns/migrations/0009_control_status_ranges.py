import django.contrib.postgres.fields
from django.db import migrations, models

# An unfinished control keeps its place: its flip walks the statuses it takes tasks from, from its
# cursor; a re-timing still to do walks the pending statuses.
RANGES_FROM_PREVIOUS_FIELDS = """
UPDATE campaigns_campaigncontrol SET
    flip_ranges = CASE flip WHEN '' THEN '{}'::varchar[] WHEN 'pause' THEN '{queued}' WHEN 'resume' THEN '{paused}'
                  ELSE '{queued,paused}' END,
    retime_ranges = CASE WHEN retime THEN '{queued,paused}'::varchar[] ELSE '{}' END
WHERE finished_at IS NULL
"""


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0008_compliance'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaigncontrol',
            name='flip_ranges',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=11), blank=True, default=list, size=None),
        ),
        migrations.AddField(
            model_name='campaigncontrol',
            name='retime_ranges',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=11), blank=True, default=list, size=None),
        ),
        migrations.RunSQL(RANGES_FROM_PREVIOUS_FIELDS, migrations.RunSQL.noop),
        migrations.RemoveField(
            model_name='campaigncontrol',
            name='retime',
        ),
    ]
