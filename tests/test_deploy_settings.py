"""Production settings: Django's deploy check passes with no warning, and one switch
(SECURE_HTTPS=false) turns HTTPS-only behaviour off for a deployment served over plain HTTP."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"DEBUG": "false", "ALLOWED_HOSTS": "dialer.example.com",
              "SECRET_KEY": "test-deploy-check-8f3kq0Zr7Lm2Vx9Pa4Wn6Ty1Bc5Hd0Js3Gu8Ee2Ri7Ok4",
              "INTEGRATIONS_ENCRYPTION_KEY": "nKhgBDRDd5F1Ao1qhBLdEpvyXwK23RAxCNR9cOe3ruk="}
SHOWN = ["SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
         "SECURE_PROXY_SSL_HEADER"]


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("SECURE_HTTPS", "SECURE_PROXY_SSL_HEADER")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **PRODUCTION, **env},
                          capture_output=True, text=True, timeout=120)


def production_settings(**env):
    code = f"from django.conf import settings; print(__import__('json').dumps([getattr(settings, n) for n in {SHOWN}]))"
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return dict(zip(SHOWN, json.loads(result.stdout.strip().splitlines()[-1])))


def test_production_settings_pass_the_deploy_check_with_no_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_notes_a_missing_integrations_key_without_failing():
    result = manage("check", "--deploy", "--fail-level", "WARNING", INTEGRATIONS_ENCRYPTION_KEY="")
    assert result.returncode == 0, result.stderr
    assert "campaigns.I001" in result.stdout + result.stderr


def test_a_key_that_cannot_open_secrets_fails_the_check():
    result = manage("check", INTEGRATIONS_ENCRYPTION_KEY="not-a-fernet-key")
    assert result.returncode != 0
    assert "campaigns.E001" in result.stderr and "not a valid Fernet key" in result.stderr


def test_production_redirects_to_https_with_hsts_and_secure_cookies_behind_the_proxy_header():
    assert production_settings(SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https") == {
        "SECURE_SSL_REDIRECT": True, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000, "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_secure_https_false_turns_redirect_hsts_and_secure_cookies_off_together():
    assert production_settings(SECURE_HTTPS="false") == {
        "SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0, "SECURE_PROXY_SSL_HEADER": None}
