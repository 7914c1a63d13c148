"""Every Celery queue, named once. Dial queues are consumed in this order (callback first); a
worker consumes `events` before `controls`, so a free process always takes the dispatcher's runs
before another batch of a campaign control."""
from enum import StrEnum


class Queue(StrEnum):
    DIAL_CALLBACK = "dial.callback"
    DIAL_HIGH = "dial.high"
    DIAL_NORMAL = "dial.normal"
    DIAL_LOW = "dial.low"
    EVENTS = "events"
    CONTROLS = "controls"


DIAL_QUEUES_IN_ORDER = [Queue.DIAL_CALLBACK, Queue.DIAL_HIGH, Queue.DIAL_NORMAL, Queue.DIAL_LOW]
ALL_QUEUES = [*DIAL_QUEUES_IN_ORDER, Queue.EVENTS, Queue.CONTROLS]
