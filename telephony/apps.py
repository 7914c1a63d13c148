from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'telephony'

    def ready(self):
        from config.metrics import register_collector
        from telephony.metrics import CallOutcomesCollector

        register_collector(CallOutcomesCollector())
