"""Every Redis key telephony uses, named in one place (the dialer's are in `dialer/keys.py`).

The simulated carrier (`telephony/simulator.py`, `lua/pop_due_events.lua`):
- `sim:due` sorted set: event id → when it is due (ms); `sim:events` hash: event id → event JSON;
- `sim:call:<carrier call id>` hash: a simulated call's state; `sim:idem:<idempotency key>`
  string: the carrier call id a placing request created, so a retried request creates no second.

Calls per second (`telephony/cps.py`, `lua/cps_take.lua`, `lua/cps_give_back.lua`):
- `cps:<calling number>` string: the number's GCRA bucket (the theoretical arrival time of its next call, µs).
"""
SIMULATOR_DUE = "sim:due"
SIMULATOR_EVENTS = "sim:events"
SIMULATOR_CALL_PREFIX = "sim:call:"
SIMULATOR_IDEMPOTENCY_PREFIX = "sim:idem:"


def cps_bucket(number):
    return f"cps:{number}"
