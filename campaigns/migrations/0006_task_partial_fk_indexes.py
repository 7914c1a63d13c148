import django.db.models.deletion
from django.db import migrations, models

# The foreign keys' single-column indexes are dropped by name, keeping the constraints: letting
# Django alter the fields would drop and re-add (and so re-validate) each constraint on the whole
# task table.
FOREIGN_KEY_INDEXES = ["campaigns_task_agent_id_ca146ae7", "campaigns_task_calling_number_id_1f000c78",
                       "campaigns_task_campaign_id_6c34d6b3"]


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0005_campaign_control'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='task',
                    name='agent',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='campaigns.agent'),
                ),
                migrations.AlterField(
                    model_name='task',
                    name='calling_number',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='campaigns.callingnumber'),
                ),
                migrations.AlterField(
                    model_name='task',
                    name='campaign',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='tasks', to='campaigns.campaign'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [f'DROP INDEX IF EXISTS "{name}"' for name in FOREIGN_KEY_INDEXES],
                    reverse_sql=[
                        'CREATE INDEX "campaigns_task_agent_id_ca146ae7" ON "campaigns_task" ("agent_id")',
                        'CREATE INDEX "campaigns_task_calling_number_id_1f000c78" ON "campaigns_task" ("calling_number_id")',
                        'CREATE INDEX "campaigns_task_campaign_id_6c34d6b3" ON "campaigns_task" ("campaign_id")',
                    ],
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='task',
            index=models.Index(condition=models.Q(('agent__isnull', False)), fields=['agent'], name='task_agent'),
        ),
        migrations.AddIndex(
            model_name='task',
            index=models.Index(condition=models.Q(('calling_number__isnull', False)), fields=['calling_number'], name='task_calling_number'),
        ),
    ]
