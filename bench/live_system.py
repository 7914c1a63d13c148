"""Real processes for end-to-end tests: Celery workers (with beat) and the simulated carrier.

They run against the test database and the test Redis db, so the test must commit its data
(`transactional_db`). Everything started here is stopped on exit, killed if need be.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "dial.callback,dial.high,dial.normal,dial.low,events"


def process_env(**extra):
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.REDIS_URL,
        DEBUG="true",
        # Plain HTTP on loopback, and local receivers stand in for customers' webhook endpoints.
        SECURE_HTTPS="false",
        OUTBOUND_ALLOW_PRIVATE="true",
        DATABASE_CONN_MAX_AGE="0",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


class LiveSystem:
    """`with LiveSystem(time_scale=0.01) as system:` starts one worker with beat and the simulator."""

    def __init__(self, workers=1, concurrency=2, time_scale=0.01, beat=True, simulator=True, **env):
        self.workers = workers
        self.concurrency = concurrency
        self.beat = beat
        self.simulator = simulator
        self.env = process_env(SIMULATED_TIME_SCALE=time_scale, **env)
        self.processes = []
        self.worker_processes = []
        self.log_dir = ROOT / "test-artifacts"
        self.log_dir.mkdir(exist_ok=True)

    def _spawn(self, name, args, env=None):
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(args, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def start_worker(self, index):
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES, "-c", str(self.concurrency),
                "-P", "prefork", "-l", "info", "-n", f"test-worker-{index}-{os.getpid()}@%h", "--without-mingle",
                "--without-gossip"]
        if self.beat and index == 0:
            args += ["-B", "-s", str(self.log_dir / f"beat-{os.getpid()}")]
        process = self._spawn(f"worker-{index}", args)
        self.worker_processes.append(process)
        return process

    def __enter__(self):
        connections.close_all()
        for index in range(self.workers):
            self.start_worker(index)
        if self.simulator:
            self._spawn("simulator", [sys.executable, "manage.py", "run_simulator"])
        return self

    def kill_worker(self, process):
        """SIGKILL a worker and its pool children, as a crashed machine would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.worker_processes.remove(process)

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return False


def wait_until(predicate, timeout=60, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
