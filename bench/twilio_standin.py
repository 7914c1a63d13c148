"""A local stand-in for Twilio's REST API and its status callbacks, for `bench/carrier.py`.

It answers `POST /2010-04-01/Accounts/{sid}/Calls.json` (Basic auth with the account's SID and
token, as the official SDK sends it) after `create_latency` seconds with a queued call, then
plays the call's life back to the `StatusCallback` URL as Twilio does: those of `initiated`,
`ringing` and `in-progress` (after `ring` seconds) that `StatusCallbackEvent` asks for, an
answering-machine-detection callback (`AnsweredBy=human`) when `AsyncAmdStatusCallback` is given,
and `completed` after another `talk` seconds, each form-encoded and signed with the SDK's own
`RequestValidator` (`X-Twilio-Signature`). Right after `completed` the agent runtime's analysis
(outcome `connected`) is posted to `analysis_url` with the workspace's API key, picked by the
call's `From` number from `agent_keys`.

Optional `rate_limit` (calls per second per `From` number): a create request beyond it is
answered 429 with `Retry-After: 1`, as a carrier enforcing its limit does.

Every create request is recorded (`records`): when it arrived, our call id (from the callback
URL), from/to, the HTTP status answered and, for calls taken, when the call ends. The call is
"held" from the request's arrival to its end: that is what the benchmark's utilisation counts.
Binds to 127.0.0.1 only. Run in-process (`TwilioStandIn(...).start()`) or alone:

    .venv/bin/python bench/twilio_standin.py --port 8790 --latency-ms 300 --ring-ms 300 --talk-ms 1500
"""
import argparse
import base64
import heapq
import http.client
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

from json_http import QuietJsonHandler

CREATE = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Calls\.json$")


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a burst of dial jobs opens hundreds of connections at once
    daemon_threads = True


class _Connection(http.client.HTTPConnection):
    """`http.client` sends a request's headers and body in two writes and leaves Nagle's algorithm
    on: the body then waits for the server's delayed ACK of the headers, ~40 ms a callback on
    Linux. Carriers' webhook senders do not add that, so neither does the stand-in."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TwilioStandIn:
    def __init__(self, account_sid, auth_token, create_latency=0.3, ring=0.3, talk=1.5, rate_limit=None,
                 analysis_url="", agent_keys=None, senders=32, port=0):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.create_latency = create_latency
        self.ring = ring
        self.talk = talk
        self.rate_limit = rate_limit
        self.analysis_url = analysis_url
        self.agent_keys = dict(agent_keys or {})
        self.validator = RequestValidator(auth_token)
        self.records = []
        self.callback_failures = 0
        self.callback_timings = []  # (ms late against its due time, ms the POST took) per callback sent
        self._lock = threading.Lock()
        self._recent = defaultdict(deque)  # from number → arrival times in the last second (rate limit)
        self._schedule = []  # heap of (due monotonic, seq, action, args)
        self._outstanding = 0  # callbacks scheduled or being sent
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._senders = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="standin-callback")
        self._connections = threading.local()
        self.server = _Server(("127.0.0.1", port), self._handler())
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._run_schedule, daemon=True)]

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._senders.shutdown(wait=False, cancel_futures=True)

    def pending_callbacks(self):
        """Callbacks and analyses not sent yet, or being sent."""
        with self._wake:
            return self._outstanding

    # The create request -------------------------------------------------------------------------

    def _admit(self, from_number, now):
        """Whether the per-number rate limit lets this request through (counting it)."""
        if not self.rate_limit:
            return True
        with self._lock:
            recent = self._recent[from_number]
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                return False
            recent.append(now)
            return True

    def create_call(self, form, arrived_wall, arrived):
        """(status, body, headers) for a create request, recording it."""
        from_number, to_number = form.get("From", [""])[0], form.get("To", [""])[0]
        callback = form.get("StatusCallback", [""])[0]
        call_id = parse_qs(urlsplit(callback).query).get("call", [""])[0]
        record = {"arrived": arrived_wall, "call_id": call_id, "from": from_number, "to": to_number,
                  "status": 201, "ends": None}
        if not self._admit(from_number, arrived):
            record["status"] = 429
            with self._lock:
                self.records.append(record)
            return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "1"}
        if self.create_latency:
            time.sleep(max(0.0, arrived + self.create_latency - time.monotonic()))
        sid = "CA" + uuid.uuid4().hex
        answered = time.monotonic()
        ring, talk = self.ring, self.talk
        record["ends"] = arrived_wall + (answered - arrived) + ring + talk
        with self._lock:
            self.records.append(record)
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid, "From": from_number,
                  "To": to_number, "Caller": from_number, "Called": to_number, "Direction": "outbound-api",
                  "CallbackSource": "call-progress-events"}
        # Twilio sends only the progress events asked for (`answered` names `in-progress`).
        events = set(form.get("StatusCallbackEvent", []))
        if "initiated" in events:
            self._later(answered, self._callback, callback, {**params, "CallStatus": "initiated", "SequenceNumber": "0"})
        if "ringing" in events:
            self._later(answered + min(0.05, ring / 2), self._callback, callback,
                        {**params, "CallStatus": "ringing", "SequenceNumber": "1"})
        if "answered" in events:
            self._later(answered + ring, self._callback, callback,
                        {**params, "CallStatus": "in-progress", "SequenceNumber": "2"})
        amd_callback = form.get("AsyncAmdStatusCallback", [""])[0]
        if amd_callback:
            self._later(answered + ring + 0.01, self._callback, amd_callback,
                        {**params, "AnsweredBy": "human", "MachineDetectionDuration": "800"})
        self._later(answered + ring + talk, self._end_call, callback, call_id, from_number,
                    {**params, "CallStatus": "completed", "SequenceNumber": "3",
                     "CallDuration": str(max(1, round(talk))), "Duration": "1"})
        body = {"sid": sid, "account_sid": self.account_sid, "status": "queued", "from": from_number,
                "to": to_number, "direction": "outbound-api", "api_version": "2010-04-01",
                "date_created": formatdate(usegmt=True), "price_unit": "USD",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"}
        return 201, body, {}

    # Callbacks ----------------------------------------------------------------------------------

    def _later(self, due, action, *args):
        with self._wake:
            heapq.heappush(self._schedule, (due, next(self._seq), action, args))
            self._outstanding += 1
            self._wake.notify()

    def _run_schedule(self):
        while True:
            with self._wake:
                while not self._stopped and (not self._schedule or self._schedule[0][0] > time.monotonic()):
                    timeout = self._schedule[0][0] - time.monotonic() if self._schedule else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                due, _, action, args = heapq.heappop(self._schedule)
            self._senders.submit(self._timed, due, action, args)

    def _timed(self, due, action, args):
        started = time.monotonic()
        try:
            action(*args)
        finally:
            self.callback_timings.append(((started - due) * 1000, (time.monotonic() - started) * 1000))
            with self._wake:
                self._outstanding -= 1

    def _post(self, url, body, headers):
        """POST over this sender thread's kept-alive connection to the URL's host; True when accepted.

        Plain `http.client`, not `requests`: the stand-in runs in the bench's process, and its CPU
        per callback counts against the machine the system under test runs on."""
        parts = urlsplit(url)
        connections = self._connections.__dict__
        for _ in range(2):  # a kept-alive connection the server closed meanwhile: reconnect once
            connection = connections.get(parts.netloc)
            if connection is None:
                connection = connections[parts.netloc] = _Connection(parts.netloc, timeout=10)
            try:
                connection.request("POST", f"{parts.path}?{parts.query}" if parts.query else parts.path, body, headers)
                response = connection.getresponse()
                response.read()
                if response.will_close:
                    connection.close()
                    del connections[parts.netloc]
                return response.status < 300
            except (OSError, http.client.HTTPException):
                connection.close()
                del connections[parts.netloc]
        return False

    def _callback(self, url, params):
        params = {**params, "Timestamp": formatdate(usegmt=True)}
        signature = self.validator.compute_signature(url, params)
        if not self._post(url, urlencode(params), {"X-Twilio-Signature": signature,
                                                   "Content-Type": "application/x-www-form-urlencoded"}):
            self.callback_failures += 1

    def _end_call(self, url, call_id, from_number, params):
        self._callback(url, params)
        key = self.agent_keys.get(from_number)
        if not (self.analysis_url and key and call_id):
            return
        body = {"callId": call_id, "outcome": "connected", "summary": "Spoke with the contact.",
                "transcript": "agent: Hello! user: Hi."}
        if not self._post(self.analysis_url, json.dumps(body), {"Authorization": f"Bearer {key}",
                                                                "Content-Type": "application/json"}):
            self.callback_failures += 1

    # HTTP ---------------------------------------------------------------------------------------

    def _handler(self):
        standin = self
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()

        class Handler(QuietJsonHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the SDK's sessions reuse their connections
            # The answer's headers and body go in two writes: without this the body waits ~40 ms
            # for the client's delayed ACK, which Twilio's API does not make a dial job wait.
            disable_nagle_algorithm = True

            def do_POST(self):
                arrived, arrived_wall = time.monotonic(), time.time()
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                match = CREATE.match(self.path.split("?")[0])
                if self.headers.get("Authorization") != expected:
                    return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if not match or match["account"] != standin.account_sid:
                    return self.reply(404, {"code": 20404, "message": "Not found", "status": 404})
                self.reply(*standin.create_call(form, arrived_wall, arrived))

            def do_GET(self):
                self.reply(404, {"code": 20404, "message": "Not found", "status": 404})

        return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="standin-auth-token")
    parser.add_argument("--latency-ms", type=float, default=300)
    parser.add_argument("--ring-ms", type=float, default=300)
    parser.add_argument("--talk-ms", type=float, default=1500)
    parser.add_argument("--rate-limit", type=float, default=None, help="calls per second per From number")
    parser.add_argument("--analysis-url", default="")
    parser.add_argument("--agent-key", action="append", default=[], metavar="FROM=KEY")
    args = parser.parse_args()
    standin = TwilioStandIn(args.account_sid, args.auth_token, args.latency_ms / 1000, args.ring_ms / 1000,
                            args.talk_ms / 1000, args.rate_limit, args.analysis_url,
                            dict(pair.split("=", 1) for pair in args.agent_key), port=args.port).start()
    print(f"Twilio stand-in on {standin.base_url} (account {args.account_sid})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
