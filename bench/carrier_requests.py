"""The CPU of one call's six web requests, in-process: what the web tier spends per call.

Run from the repository root with PostgreSQL and Redis up:

    .venv/bin/python bench/carrier_requests.py [--calls 200] [--rounds 3] [--profile completed]
        [--redis-url redis://127.0.0.1:6379/6]

It calls the deployment's WSGI application (`config.wsgi.application`, its middleware and all)
in this process, as gunicorn's threads do, with the requests a Twilio call brings (the bodies
and signatures `bench/twilio_standin.py` sends): `initiated`, `ringing`, `in-progress`, the
answering-machine result (`AnsweredBy=human`), `completed`, and the agent's analysis
(`connected`, with the workspace's API key), which ends the call and finishes its task. Each
round seeds `--calls` tasks in one organisation (as many slots), admits them with the
dispatcher, records them as placed (as a dial job would) and sends every call's six requests in
order. Printed per request: CPU (`time.process_time`) p50 and mean, and its SQL queries (counted
on a separate call, since counting costs CPU of its own). `--profile KIND` prints the cProfile
of that request over a round instead.

Production settings (DEBUG off) over plain HTTP; a throwaway database (`dialer_bench_requests`,
dropped at the end) and Redis db 6 (`--redis-url`; flushed before and after).
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from throwaway_database import use_throwaway_database

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "bench-requests-token"
PUBLIC_BASE_URL = "http://127.0.0.1:8000"
KINDS = ["initiated", "ringing", "in-progress", "amd", "completed", "analysis"]

RECORD_PLACED_SQL = """
UPDATE telephony_call SET status = 'dialing', carrier = 'twilio', placed_at = now(),
       carrier_call_id = 'CA' || md5(id::text)
WHERE campaign_id = %s AND status = 'admitted'
RETURNING id, carrier_call_id, from_number, to_number
"""


def environ(url, body, content_type, headers):
    parts = urlsplit(url)
    raw = body.encode()
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
           "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(raw)), "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(raw),
           "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
           "wsgi.run_once": False, "wsgi.version": (1, 0)}
    env.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return env


def call_requests(call, api_key):
    """The six (kind, WSGI environ) of one call, in the order the carrier and the agent send them."""
    from twilio.request_validator import RequestValidator

    from telephony.calls import status_callback_url

    call_id, sid, from_number, to_number = call
    url = status_callback_url("twilio", call_id)
    validator = RequestValidator(AUTH_TOKEN)
    params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid, "From": from_number,
              "To": to_number, "Caller": from_number, "Called": to_number, "Direction": "outbound-api",
              "CallbackSource": "call-progress-events", "Timestamp": formatdate(usegmt=True)}
    forms = [("initiated", {"CallStatus": "initiated", "SequenceNumber": "0"}),
             ("ringing", {"CallStatus": "ringing", "SequenceNumber": "1"}),
             ("in-progress", {"CallStatus": "in-progress", "SequenceNumber": "2"}),
             ("amd", {"AnsweredBy": "human", "MachineDetectionDuration": "800"}),
             ("completed", {"CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "2", "Duration": "1"})]
    requests = []
    for kind, extra in forms:
        form = {**params, **extra}
        requests.append((kind, environ(url, urlencode(form), "application/x-www-form-urlencoded",
                                       {"X-Twilio-Signature": validator.compute_signature(url, form)})))
    body = json.dumps({"callId": str(call_id), "outcome": "connected", "summary": "Spoke with the contact.",
                       "transcript": "agent: Hello! user: Hi."})
    requests.append(("analysis", environ(f"{PUBLIC_BASE_URL}/webhooks/agent/analysis/", body, "application/json",
                                         {"Authorization": f"Bearer {api_key}"})))
    return requests


def send(application, env):
    statuses = []
    response = application(env, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(response)
    finally:
        if hasattr(response, "close"):
            response.close()
    if not statuses[0].startswith("2"):
        raise RuntimeError(f"{env['PATH_INFO']} answered {statuses[0]}")


def placed_calls(count, label):
    from django.db import connection
    from django.utils import timezone

    from carrier import make_tenant, seed_tasks
    from dialer.dispatcher import dispatch_pass

    organisation, campaign, api_key = make_tenant(label, count, "+14155550100", 1000)
    seed_tasks(organisation, campaign, count, "+442071")
    admitted = dispatch_pass(organisation.id, timezone.now())
    if admitted != count:
        raise RuntimeError(f"the dispatcher admitted {admitted} of {count} calls")
    with connection.cursor() as cursor:
        cursor.execute(RECORD_PLACED_SQL, [campaign.id])
        return cursor.fetchall(), api_key


def query_counts(application, call, api_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for kind, env in call_requests(call, api_key):
        with CaptureQueriesContext(connection) as queries:
            send(application, env)
        counts[kind] = len(queries)
    return counts


def run_round(application, calls, api_key, profile_kind):
    cpu = {kind: [] for kind in KINDS}
    profiler = cProfile.Profile(time.process_time) if profile_kind else None
    for call in calls:
        for kind, env in call_requests(call, api_key):
            if profiler and kind == profile_kind:
                profiler.enable()
            started = time.process_time()
            send(application, env)
            cpu[kind].append((time.process_time() - started) * 1000)
            if profiler and kind == profile_kind:
                profiler.disable()
    return cpu, profiler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=KINDS, help="print this request's cProfile instead of figures")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    args = parser.parse_args()

    database = use_throwaway_database("dialer_bench_requests")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": args.redis_url, "CELERY_BROKER_URL": args.redis_url,
        "DEBUG": "false", "SECURE_HTTPS": "false", "SECRET_KEY": "bench-only", "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING", "TELEPHONY_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE_URL})
    sys.path.insert(0, str(ROOT))
    database.recreate()
    import django
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from config.redis_client import get_redis
    from config.wsgi import application

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    call_command("migrate", verbosity=0)
    get_redis().flushdb()
    cpu = {kind: [] for kind in KINDS}
    try:
        # Two calls: the counted one leaves a task unfinished, as in a campaign of many.
        calls, api_key = placed_calls(2, "bench requests warm-up")
        counts = query_counts(application, calls[0], api_key)
        for number in range(args.rounds):
            calls, api_key = placed_calls(args.calls, f"bench requests {number}")
            round_cpu, profiler = run_round(application, calls, api_key, args.profile)
            for kind in KINDS:
                cpu[kind] += round_cpu[kind]
            if profiler:
                stream = io.StringIO()
                pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(45)
                print(stream.getvalue())
    finally:
        connections.close_all()
        get_redis().flushdb()
        database.drop()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"one call's web requests in-process, {args.rounds} × {args.calls} calls; "
          f"load {' '.join(load_before)} → {' '.join(load_after)}")
    for kind in KINDS:
        print(f"  {kind:12} CPU p50 {statistics.median(cpu[kind]):5.2f} ms, mean {statistics.mean(cpu[kind]):5.2f} ms, "
              f"{counts[kind]} queries")
    total = sum(statistics.mean(cpu[kind]) for kind in KINDS)
    print(f"  all six      CPU {total:5.2f} ms (mean), {sum(counts.values())} queries")


if __name__ == "__main__":
    main()
