"""The CPU of one call's web requests, in-process or through gunicorn: what the web tier spends per call.

Run from the repository root with PostgreSQL and Redis up:

    .venv/bin/python bench/carrier_requests.py [--calls 200] [--rounds 3] [--profile completed]
        [--redis-url redis://127.0.0.1:6379/6]

It calls the deployment's WSGI application (`config.wsgi.application`, its middleware and all)
in this process, as gunicorn's threads do, with the requests a Twilio call brings (the bodies
and signatures `bench/twilio_standin.py` sends for the events our provider asks for): `ringing`,
`in-progress`, the answering-machine result (`AnsweredBy=human`), `completed`, and the agent's
analysis (`connected`, with the workspace's API key), which ends the call and finishes its task.
Each round seeds `--calls` tasks in one organisation (as many slots), admits them with the
dispatcher, records them as placed (as a dial job would) and sends every call's requests in
order. Printed per request: CPU (`time.process_time`) p50 and mean, and its SQL queries (counted
on a separate call, since counting costs CPU of its own); per round, the CPU per call of the
PostgreSQL backend serving them (this process's connection). `--profile KIND` prints the
cProfile of that request over a round instead. `--gunicorn 2x4,4x1` sends them over HTTP instead, to
gunicorn started as the Procfile's `web` line in each workers × threads shape (`--access-log`
adds gunicorn's access log, which the Procfile leaves off), from `--connections` kept-alive connections at once, and prints the gunicorn processes'
CPU per call for each round.

Production settings (DEBUG off) over plain HTTP; a throwaway database (`dialer_bench_requests`,
dropped at the end) and Redis db 6 (`--redis-url`; flushed before and after).
"""
import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from live_system import cpu_seconds_of, free_port, process_parents, process_tree
from throwaway_database import use_throwaway_database

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "bench-requests-token"
PUBLIC_BASE_URL = "http://127.0.0.1:8000"
KINDS = ["ringing", "in-progress", "amd", "completed", "analysis"]

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
    """The (kind, URL, body, headers) of one call's requests, in the order the carrier and the agent send them."""
    from twilio.request_validator import RequestValidator

    from telephony.calls import status_callback_url

    call_id, sid, from_number, to_number = call
    url = status_callback_url("twilio", call_id)
    validator = RequestValidator(AUTH_TOKEN)
    params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid, "From": from_number,
              "To": to_number, "Caller": from_number, "Called": to_number, "Direction": "outbound-api",
              "CallbackSource": "call-progress-events", "Timestamp": formatdate(usegmt=True)}
    forms = [("ringing", {"CallStatus": "ringing", "SequenceNumber": "1"}),
             ("in-progress", {"CallStatus": "in-progress", "SequenceNumber": "2"}),
             ("amd", {"AnsweredBy": "human", "MachineDetectionDuration": "800"}),
             ("completed", {"CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "2", "Duration": "1"})]
    requests = []
    for kind, extra in forms:
        form = {**params, **extra}
        requests.append((kind, url, urlencode(form), {"Content-Type": "application/x-www-form-urlencoded",
                                                      "X-Twilio-Signature": validator.compute_signature(url, form)}))
    body = json.dumps({"callId": str(call_id), "outcome": "connected", "summary": "Spoke with the contact.",
                       "transcript": "agent: Hello! user: Hi."})
    requests.append(("analysis", f"{PUBLIC_BASE_URL}/webhooks/agent/analysis/", body,
                     {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}))
    return requests


def send(application, url, body, headers):
    """One request through the WSGI application in this thread."""
    statuses = []
    env = environ(url, body, headers.get("Content-Type", ""),
                  {name: value for name, value in headers.items() if name != "Content-Type"})
    response = application(env, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(response)
    finally:
        if hasattr(response, "close"):
            response.close()
    if not statuses[0].startswith("2"):
        raise RuntimeError(f"{url} answered {statuses[0]}")


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
    for kind, *request in call_requests(call, api_key):
        with CaptureQueriesContext(connection) as queries:
            send(application, *request)
        counts[kind] = len(queries)
    return counts


def run_round(application, calls, api_key, profile_kind):
    cpu = {kind: [] for kind in KINDS}
    profiler = cProfile.Profile(time.process_time) if profile_kind else None
    for call in calls:
        for kind, *request in call_requests(call, api_key):
            if profiler and kind == profile_kind:
                profiler.enable()
            started = time.process_time()
            send(application, *request)
            cpu[kind].append((time.process_time() - started) * 1000)
            if profiler and kind == profile_kind:
                profiler.disable()
    return cpu, profiler


class Gunicorn:
    """`with Gunicorn(workers, threads, access_log) as web:` the Procfile's web line on a free port."""

    def __init__(self, workers, threads, access_log):
        self.port = free_port()
        self.command = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind",
                        f"127.0.0.1:{self.port}", "--workers", str(workers), "--worker-class", "gthread",
                        "--threads", str(threads), *(["--access-logfile", "-"] if access_log else [])]

    def __enter__(self):
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=os.environ, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/webhooks/")
                connection.getresponse().read()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.2)

    def cpu_seconds(self):
        return cpu_seconds_of(process_tree(process_parents(), self.process.pid))

    def send_all(self, calls, api_key, connections):
        """Every call's requests, `connections` kept-alive connections at once (a call's in order)."""
        failures = []

        def sender(share):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            for call in share:
                for _, url, body, headers in call_requests(call, api_key):
                    parts = urlsplit(url)
                    connection.request("POST", f"{parts.path}?{parts.query}" if parts.query else parts.path,
                                       body, headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status >= 300:
                        failures.append(f"{parts.path} answered {response.status}")
            connection.close()

        threads = [threading.Thread(target=sender, args=(calls[n::connections],)) for n in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=20)


def through_gunicorn(shapes, args):
    """CPU ms per call of the gunicorn processes, per round, for each workers × threads shape."""
    figures = {}
    for number, (workers, threads) in enumerate(shapes):
        with Gunicorn(workers, threads, args.access_log) as web:
            calls, api_key = placed_calls(workers * threads * 4, f"bench gunicorn warm-up {number}")
            web.send_all(calls, api_key, args.connections)  # every worker and thread imports and connects
            figures[(workers, threads)] = []
            for round_number in range(args.rounds):
                calls, api_key = placed_calls(args.calls, f"bench gunicorn {number}.{round_number}")
                before = web.cpu_seconds()
                web.send_all(calls, api_key, args.connections)
                figures[(workers, threads)].append((web.cpu_seconds() - before) * 1000 / len(calls))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=KINDS, help="print this request's cProfile instead of figures")
    parser.add_argument("--gunicorn", metavar="WORKERSxTHREADS,…",
                        help="send the requests over HTTP to gunicorn in each of these shapes instead (e.g. 2x4,4x1)")
    parser.add_argument("--connections", type=int, default=8, help="with --gunicorn: kept-alive connections at once")
    parser.add_argument("--access-log", action="store_true", help="with --gunicorn: with gunicorn's access log")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    args = parser.parse_args()
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.gunicorn.split(",")] if args.gunicorn else []

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
    from django.db import connection, connections

    from config.redis_client import get_redis
    from config.wsgi import application

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    call_command("migrate", verbosity=0)
    get_redis().flushdb()
    cpu = {kind: [] for kind in KINDS}
    database_cpu = []
    try:
        if shapes:
            figures = through_gunicorn(shapes, args)
        else:
            # Two calls: the counted one leaves a task unfinished, as in a campaign of many.
            calls, api_key = placed_calls(2, "bench requests warm-up")
            counts = query_counts(application, calls[0], api_key)
        for number in range(0 if shapes else args.rounds):
            calls, api_key = placed_calls(args.calls, f"bench requests {number}")
            backend = [connection.connection.get_backend_pid()]
            backend_before = cpu_seconds_of(backend)
            round_cpu, profiler = run_round(application, calls, api_key, args.profile)
            if connection.connection is not None and connection.connection.get_backend_pid() == backend[0]:
                database_cpu.append((cpu_seconds_of(backend) - backend_before) * 1000 / len(calls))
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
    if shapes:
        print(f"one call's web requests through gunicorn (gthread{', access log' if args.access_log else ''}), "
              f"{args.connections} connections, {args.rounds} × {args.calls} calls; "
              f"load {' '.join(load_before)} → {' '.join(load_after)}")
        for (workers, threads), rounds in figures.items():
            print(f"  {workers} workers × {threads} threads: CPU ms per call "
                  + " / ".join(f"{figure:.1f}" for figure in rounds) + f" (median {statistics.median(rounds):.1f})")
        return
    print(f"one call's web requests in-process, {args.rounds} × {args.calls} calls; "
          f"load {' '.join(load_before)} → {' '.join(load_after)}")
    for kind in KINDS:
        print(f"  {kind:12} CPU p50 {statistics.median(cpu[kind]):5.2f} ms, mean {statistics.mean(cpu[kind]):5.2f} ms, "
              f"{counts[kind]} queries")
    total = sum(statistics.mean(cpu[kind]) for kind in KINDS)
    print(f"  all          CPU {total:5.2f} ms (mean), {sum(counts.values())} queries")
    print("  PostgreSQL   CPU ms per call, per round: " + " / ".join(f"{figure:.2f}" for figure in database_cpu))


if __name__ == "__main__":
    main()
