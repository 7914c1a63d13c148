"""Structured logs: one JSON object per line, carrying the call, task and Celery job ids.

`ContextFilter` adds to every record:
- `call_id` and `task_id` (our Task) from `log_context(...)`, or from `extra={...}` on the call,
  or failing both the first UUID in the message (our call ids are UUIDs: "placing call <id> failed");
- `job_id` and `job` (the Celery task id and name) inside a Celery worker;
and removes secrets from the message: API keys (`dk_…`) and Bearer tokens never reach a log line.
`JsonFormatter` writes the record as JSON. Both are wired in `config.settings.LOGGING`.
"""
import contextvars
import json
import logging
import re
from contextlib import contextmanager

_context = contextvars.ContextVar("log_context", default={})
UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
SECRET_RES = [
    (re.compile(r"dk_[A-Za-z0-9_\-]{6,}"), "dk_[redacted]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"(?i)(X-(?:Twilio|Dialer)-Signature['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1[redacted]"),
]
CONTEXT_FIELDS = ("call_id", "task_id", "job_id", "job")


@contextmanager
def log_context(**ids):
    """Attach ids (call_id=…, task_id=…) to every log record emitted inside the block."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def redact(text):
    for pattern, replacement in SECRET_RES:
        text = pattern.sub(replacement, text)
    return text


def _celery_job():
    try:
        from celery import current_task
    except ImportError:
        return None, None
    if current_task and current_task.request and current_task.request.id:
        return current_task.request.id, current_task.name
    return None, None


class ContextFilter(logging.Filter):
    """Adds call/task/job ids to the record and redacts secrets from its message. Never drops a record."""

    def filter(self, record):
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        if getattr(record, "call_id", None) is None:
            match = UUID_RE.search(message)
            record.call_id = match.group(0) if match else None
        if getattr(record, "job_id", None) is None:
            record.job_id, record.job = _celery_job()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids present, and any traceback."""

    def format(self, record):
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "message": redact(record.getMessage())}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)
