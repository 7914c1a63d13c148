from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

OPEN = "('admitted', 'dialing', 'ringing', 'answered', 'wrapup')"


class Migration(migrations.Migration):
    # The new partial indexes are built without blocking writes: the call table may hold millions
    # of rows. They are in place before the old ones go, so no moment is left unguarded.
    atomic = False

    dependencies = [
        ('telephony', '0006_call_number_recent_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='call',
            name='carrier_ended_at',
            field=models.DateTimeField(blank=True, help_text="When the carrier reported an answered call completed; the call is in wrap-up (its slot free) until the agent's analysis arrives or ANALYSIS_WAIT_SECONDS pass.", null=True),
        ),
        migrations.AlterField(
            model_name='call',
            name='status',
            field=models.CharField(choices=[('admitted', 'Admitted'), ('dialing', 'Dialing'), ('ringing', 'Ringing'), ('answered', 'Answered'), ('wrapup', 'Wrap-up (awaiting analysis)'), ('ended', 'Ended')], default='admitted', max_length=8),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='call',
                    constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['admitted', 'dialing', 'ringing', 'answered', 'wrapup'])), fields=('task',), name='call_one_open_per_task'),
                ),
                migrations.AddConstraint(
                    model_name='call',
                    constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['admitted', 'dialing', 'ringing', 'answered', 'wrapup'])), fields=('organisation', 'to_number'), name='call_one_open_per_number_in_org'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS call_one_open_per_task "
                    f"ON telephony_call (task_id) WHERE status IN {OPEN}",
                    "DROP INDEX CONCURRENTLY IF EXISTS call_one_open_per_task"),
                migrations.RunSQL(
                    f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS call_one_open_per_number_in_org "
                    f"ON telephony_call (organisation_id, to_number) WHERE status IN {OPEN}",
                    "DROP INDEX CONCURRENTLY IF EXISTS call_one_open_per_number_in_org"),
            ],
        ),
        # Calls the carrier completed that waited for their analysis as `answered` wait in wrap-up
        # now; the lease reaper frees their slots (their call is no longer live).
        migrations.RunSQL(
            "UPDATE telephony_call SET status = 'wrapup' WHERE status = 'answered' AND carrier_ended_at IS NOT NULL",
            "UPDATE telephony_call SET status = 'answered' WHERE status = 'wrapup'"),
        migrations.RemoveConstraint(
            model_name='call',
            name='call_one_live_per_task',
        ),
        migrations.RemoveConstraint(
            model_name='call',
            name='call_one_live_per_number_in_org',
        ),
        RemoveIndexConcurrently(
            model_name='call',
            name='call_awaiting_analysis',
        ),
        AddIndexConcurrently(
            model_name='call',
            index=models.Index(condition=models.Q(('status', 'wrapup')), fields=['carrier_ended_at'], name='call_awaiting_analysis'),
        ),
    ]
