"""Every write to campaigns' data, one module per noun, each `do_<verb>_<noun>` with its validation
beside it: campaigns (`campaigns.py`), controls and end of life (`controls.py`), realtime tasks
(`realtime.py`), CSV contacts (`csv_import.py`), tenants and API keys (`tenancy.py`), agents and
calling numbers (`workspace_setup.py`), the do-not-call list (`dnc.py`), the audit trail of
controls (`audit.py`) and the fast task insert they share (`task_store.py`).

The REST API, the admin, management commands and Celery jobs call these; they never save models
themselves. The dialer keeps its own writes (recording and finishing attempts).
"""
