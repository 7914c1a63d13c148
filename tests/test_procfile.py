"""The Procfile's `web` line binds where a Procfile runner asks: `PORT`, unless `WEB_BIND` says otherwise."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def web_command():
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.removeprefix("web:").strip()


def bound_addresses(**env):
    """What gunicorn would bind, run through a shell as Procfile runners (honcho, Heroku) do."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_BIND")}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    result = subprocess.run(["sh", "-c", f"{web_command()} --print-config"], env={**environ, **env},
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return re.search(r"^bind\s*=\s*(.+)$", result.stdout, re.MULTILINE).group(1)


@pytest.mark.parametrize(("env", "bind"), [
    ({}, "['127.0.0.1:8000']"),
    ({"PORT": "5123"}, "['0.0.0.0:5123']"),
    ({"PORT": "5123", "WEB_BIND": "127.0.0.1:9001"}, "['127.0.0.1:9001']"),
])
def test_web_binds_port_when_set_and_web_bind_overrides_it(env, bind):
    assert bound_addresses(**env) == bind
