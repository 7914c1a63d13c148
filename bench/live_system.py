"""Real processes for end-to-end tests and benchmarks: Celery workers (with beat) and the
simulated carrier (`LiveSystem`), or the Procfile's processes under honcho (`ProcfileProcesses`),
and what they cost (`process_parents`, `process_tree`, `cpu_seconds_of`).

They run against the test database and the test Redis db, so the test must commit its data
(`transactional_db`). Everything started here is stopped on exit, killed if need be.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "dial.callback,dial.high,dial.normal,dial.low,events,controls"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    """A free TCP port on the loopback address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcfileProcesses:
    """`with ProcfileProcesses(env, log_path, names) as processes:` runs the Procfile's processes
    (those named, or all) under honcho, as `make run` does, in their own session so they stop
    together: SIGTERM, then SIGKILL after 20 s."""

    def __init__(self, env, log_path, names=()):
        self.env = env
        self.log_path = log_path
        self.names = list(names)
        self.process = None

    def __enter__(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "honcho"), "-f", "Procfile", "start",
                                         *self.names], cwd=ROOT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def pids(self):
        """honcho and every process it started."""
        return process_tree(process_parents(), self.process.pid)

    def __exit__(self, *exc):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        return False


def _stat_fields(pid):
    """/proc/<pid>/stat after the command name (which may hold spaces), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_parents():
    """{pid: parent pid} of every process, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(parents, top):
    """`top` and its descendants, from a `process_parents()` map."""
    children = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    tree, frontier = set(), [top]
    while frontier:
        pid = frontier.pop()
        tree.add(pid)
        frontier += children.get(pid, [])
    return tree


def cpu_seconds_of(pids):
    """User + system CPU seconds the processes have used so far (those gone count nothing)."""
    total = 0
    for pid in pids:
        if (fields := _stat_fields(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


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
