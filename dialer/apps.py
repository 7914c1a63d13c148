from django.apps import AppConfig


class DialerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dialer"

    def ready(self):
        from campaigns.signals import tasks_changed
        from telephony.signals import call_ended, call_ineligible, call_line_freed, call_not_placed

        from config.metrics import register_collector
        from dialer.metrics import DialerCollector

        call_ended.connect(_finish_attempt, dispatch_uid="dialer.finish_attempt")
        call_line_freed.connect(_free_slot, dispatch_uid="dialer.free_slot")
        call_not_placed.connect(_requeue_not_placed, dispatch_uid="dialer.requeue_not_placed")
        call_ineligible.connect(_archive_ineligible, dispatch_uid="dialer.archive_ineligible")
        tasks_changed.connect(_nudge, dispatch_uid="dialer.nudge_on_tasks_changed")
        register_collector(DialerCollector())


def _finish_attempt(sender, call_id, outcome, ended_at, callback_at=None, task_id=None, attempt=None,
                    lease_token=None, organisation_id=None, slot_freed=False, to_number="", **kwargs):
    from dialer.attempts import do_finish_attempt

    call = None
    if task_id is not None:
        call = {"task_id": task_id, "attempt": attempt, "lease_token": lease_token, "organisation_id": organisation_id,
                "slot_freed": slot_freed, "to_number": to_number}
    do_finish_attempt(call_id, outcome, ended_at, callback_at, call=call)


def _free_slot(sender, call_id, organisation_id, lease_token, **kwargs):
    from dialer.attempts import do_free_slot_of_call

    do_free_slot_of_call(call_id, organisation_id, lease_token)


def _requeue_not_placed(sender, call_id, task_id, attempt, organisation_id, lease_token, is_callback,
                        retry_after=None, **kwargs):
    from dialer.attempts import do_requeue_not_placed_attempt

    do_requeue_not_placed_attempt(call_id, task_id, attempt, organisation_id, lease_token, is_callback, retry_after)


def _archive_ineligible(sender, call_id, task_id, attempt, organisation_id, lease_token, **kwargs):
    from dialer.attempts import do_archive_ineligible_attempt

    do_archive_ineligible_attempt(call_id, task_id, attempt, organisation_id, lease_token)


def _nudge(sender, organisation_id, due_at=None, **kwargs):
    from django.utils import timezone

    from dialer.dispatch_lock import nudge_dispatcher_for

    nudge_dispatcher_for(organisation_id, due_at, timezone.now())
