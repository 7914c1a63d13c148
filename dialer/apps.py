from django.apps import AppConfig


class DialerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dialer"

    def ready(self):
        from campaigns.signals import tasks_changed
        from telephony.signals import call_ended

        from config.metrics import register_collector
        from dialer.metrics import DialerCollector

        call_ended.connect(_finish_attempt, dispatch_uid="dialer.finish_attempt")
        tasks_changed.connect(_nudge, dispatch_uid="dialer.nudge_on_tasks_changed")
        register_collector(DialerCollector())


def _finish_attempt(sender, call_id, outcome, ended_at, callback_at=None, **kwargs):
    from dialer.attempts import do_finish_attempt

    do_finish_attempt(call_id, outcome, ended_at, callback_at)


def _nudge(sender, organisation_id, **kwargs):
    from dialer.dispatch_lock import nudge_dispatcher

    nudge_dispatcher(organisation_id)
