"""Requests to customer-chosen URLs (telephony/outbound.py): only public addresses, pinned to the
address checked, no redirects, bounded; failures stored without the remote's reply; the same rule
when a webhook URL is saved (API and admin). Host names are resolved by a stand-in for
`socket.getaddrinfo`: no test uses real DNS or sends traffic past loopback."""
import datetime as dt
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from campaigns.models import Workspace
from telephony import outbound, webhooks_out
from telephony.models import WebhookDeliveryStatus
from tests.factories import ApiKeyFactory, OrganisationFactory, UserFactory, WebhookDeliveryFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"
FORBIDDEN = [
    ("127.0.0.1", "loopback"), ("127.1.2.3", "loopback"), ("10.0.0.5", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("100.64.0.1", "shared"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"), ("192.0.0.1", "private"), ("198.18.0.1", "private"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("ff02::1", "multicast"), ("fec0::1", "site-local"), ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.5", "private"),
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:5", "private"),
]
REAL_GETADDRINFO = socket.getaddrinfo


def url_host(address):
    return f"[{address}]" if ":" in address else address


class FakeDns:
    """Stands in for `socket.getaddrinfo`: host names answer from `answers` (one list per lookup,
    the last repeated); numeric hosts go to the real resolver, which needs no network."""

    def __init__(self, monkeypatch, *answers):
        self.answers = list(answers)
        self.lookups = []
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, *args, **kwargs):
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except OSError:
            pass
        else:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.lookups.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]


class Receiver:
    """A local HTTP(S) endpoint; `respond(handler)` answers (default 200), `received` records requests."""

    def __init__(self, respond=None, address="127.0.0.1", port=0, tls=None):
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append({"headers": dict(self.headers), "body": body, "path": self.path})
                (respond or answer(200))(self)

            do_GET = do_POST

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def answer(status, body=b"", headers=()):
    def respond(handler):
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


@pytest.fixture
def receiver():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def deliver_once(url):
    delivery = WebhookDeliveryFactory(url=url, next_attempt_at=NOW)
    webhooks_out.deliver_due_webhooks(now=NOW)
    delivery.refresh_from_db()
    return delivery


class TestTheAddressRule:
    @pytest.mark.parametrize("address, kind", FORBIDDEN)
    def test_a_literal_forbidden_address_is_refused_naming_its_kind(self, address, kind):
        with pytest.raises(outbound.OutboundRefused, match=f"is a {kind} address"):
            outbound.check_url(f"https://{url_host(address)}/hook")

    @pytest.mark.parametrize("address, kind", FORBIDDEN)
    def test_a_host_name_resolving_to_a_forbidden_address_is_refused(self, monkeypatch, address, kind):
        FakeDns(monkeypatch, [address])
        with pytest.raises(outbound.OutboundRefused, match=f"hooks.example.com resolves to a {kind} address"):
            outbound.check_url("https://hooks.example.com/hook")

    def test_one_forbidden_address_among_public_ones_is_enough_to_refuse(self, monkeypatch):
        FakeDns(monkeypatch, [PUBLIC, "10.1.2.3"])
        with pytest.raises(outbound.OutboundRefused, match="private"):
            outbound.check_url("https://hooks.example.com/hook")

    @pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://017700000001/"])
    def test_numeric_spellings_of_loopback_are_refused(self, url):
        with pytest.raises(outbound.OutboundRefused, match="loopback"):
            outbound.check_url(url)

    @pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://example.com/",
                                     "//example.com/", "https:///path", "http://example.com:99999/"])
    def test_only_http_and_https_urls_with_a_host_are_accepted(self, url):
        with pytest.raises(outbound.OutboundRefused):
            outbound.check_url(url)

    def test_a_public_address_is_accepted_with_the_path_and_host_kept(self, monkeypatch):
        FakeDns(monkeypatch, [PUBLIC, "2606:4700::1111"])
        target = outbound.check_url("https://Hooks.Example.com:8443/in?x=1")
        assert (target.host, target.port, target.path, target.addresses, target.host_header) == (
            "hooks.example.com", 8443, "/in?x=1", (PUBLIC, "2606:4700::1111"), "hooks.example.com:8443")

    def test_a_host_name_that_does_not_resolve_is_refused(self, monkeypatch):
        def no_answer(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        monkeypatch.setattr(socket, "getaddrinfo", no_answer)
        with pytest.raises(outbound.OutboundRefused, match="does not resolve"):
            outbound.check_url("https://nowhere.example.com/")

    def test_allow_private_lets_internal_addresses_through(self, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        assert outbound.check_url("http://127.0.0.1:9/hook").addresses == ("127.0.0.1",)

    def test_the_worked_examples_hold(self):
        import doctest
        assert doctest.testmod(outbound).failed == 0


class TestDeliveries:
    def test_a_webhook_to_loopback_is_refused_and_nothing_is_sent(self, receiver):
        hook = receiver()
        delivery = deliver_once(f"http://127.0.0.1:{hook.port}/hooks")
        assert hook.received == []
        assert (delivery.status, delivery.attempts, delivery.last_response_status) == ("pending", 1, None)
        assert delivery.last_error.startswith("127.0.0.1 is a loopback address")

    def test_a_host_public_when_saved_and_private_when_delivered_is_refused_then(self, monkeypatch, receiver):
        hook = receiver()
        FakeDns(monkeypatch, [PUBLIC], ["127.0.0.1"])
        url = f"http://hooks.example.com:{hook.port}/hooks"
        response = api_client(WorkspaceFactory()).patch("/api/v1/workspace", {"webhookUrl": url}, format="json")
        assert response.status_code == 200
        delivery = deliver_once(url)
        assert hook.received == []
        assert "resolves to a loopback address (127.0.0.1)" in delivery.last_error

    def test_the_connection_goes_to_the_address_checked_whatever_dns_answers_next(
            self, monkeypatch, receiver, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        checked = receiver(address="127.0.0.1")
        other = receiver(address="127.0.0.2", port=checked.port)
        dns = FakeDns(monkeypatch, ["127.0.0.1"], ["127.0.0.2"])
        with outbound.OutboundSession() as session:
            response = session.request("POST", f"http://hooks.example.test:{checked.port}/in", body=b"{}")
        assert response.status == 200 and dns.lookups == ["hooks.example.test"]
        assert len(checked.received) == 1 and other.received == []
        assert checked.received[0]["headers"]["Host"] == f"hooks.example.test:{checked.port}"

    def test_https_is_verified_for_the_host_name_while_connecting_to_the_checked_address(
            self, monkeypatch, receiver, settings, certificate):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        server_names = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate)
        context.sni_callback = lambda sock, name, ctx: server_names.append(name)
        hook = receiver(tls=context)
        FakeDns(monkeypatch, ["127.0.0.1"])
        with outbound.OutboundSession(ca_certs=str(certificate)) as session:
            assert session.request("POST", f"https://hooks.example.test:{hook.port}/in", body=b"{}").status == 200
            with pytest.raises(outbound.OutboundError, match="certificate verification failed"):
                session.request("POST", f"https://other.example.test:{hook.port}/in", body=b"{}")
        assert server_names[0] == "hooks.example.test" and len(hook.received) == 1

    def test_a_redirect_is_not_followed(self, receiver, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        target = receiver()
        hook = receiver(answer(302, headers=[("Location", f"http://127.0.0.1:{target.port}/stolen")]))
        delivery = deliver_once(f"http://127.0.0.1:{hook.port}/hooks")
        assert target.received == [] and len(hook.received) == 1
        assert (delivery.last_response_status, delivery.last_error) == (302, "HTTP 302 Found")

    def test_a_failed_delivery_stores_the_status_and_never_the_reply(self, receiver, settings, client):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        hook = receiver(answer(500, b'{"internal": "redis-password-hunter2"}'))
        delivery = deliver_once(f"http://127.0.0.1:{hook.port}/hooks")
        assert (delivery.last_response_status, delivery.last_error) == (500, "HTTP 500 Internal Server Error")
        client.force_login(UserFactory(is_superuser=True))
        page = client.get(f"/admin/telephony/webhookdelivery/{delivery.id}/change/")
        assert page.status_code == 200 and "hunter2" not in page.content.decode()

    def test_a_reply_larger_than_the_limit_is_a_failure(self, receiver, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        hook = receiver(answer(200, b"x" * 5000))
        with outbound.OutboundSession() as session, pytest.raises(outbound.OutboundError, match="larger than 1000"):
            session.request("GET", f"http://127.0.0.1:{hook.port}/", max_bytes=1000)

    def test_a_receiver_that_does_not_answer_is_given_up_on_within_the_time_bound(self, receiver, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        hook = receiver(lambda handler: time.sleep(2))
        started = time.monotonic()
        with outbound.OutboundSession() as session, pytest.raises(outbound.OutboundError, match="timed out"):
            session.request("POST", f"http://127.0.0.1:{hook.port}/", body=b"{}", total_timeout=0.3)
        assert time.monotonic() - started < 1.5

    def test_allow_private_lets_a_local_receiver_get_a_signed_webhook(self, receiver, settings):
        settings.OUTBOUND_ALLOW_PRIVATE = True
        hook = receiver()
        workspace = WorkspaceFactory(webhook_url=f"http://127.0.0.1:{hook.port}/hooks")
        webhooks_out.enqueue_webhook(workspace, "task.finished", {"task": 1}, now=NOW)
        assert webhooks_out.deliver_due_webhooks(now=NOW) == 1
        request = hook.received[0]
        assert webhooks_out.verify_signature(workspace.webhook_secret, request["headers"]["X-Dialer-Timestamp"],
                                             request["body"], request["headers"]["X-Dialer-Signature"])
        assert workspace.webhook_deliveries.get().status == WebhookDeliveryStatus.DELIVERED


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate and key (one PEM file) for hooks.example.test."""
    path = tmp_path_factory.mktemp("tls") / "hooks.pem"
    key = path.with_suffix(".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test",
                    "-keyout", str(key), "-out", str(path)], check=True, capture_output=True)
    path.write_text(path.read_text() + key.read_text())
    return path


def api_client(workspace):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKeyFactory(workspace=workspace).raw_key}")
    return client


class TestSavingAWebhookUrl:
    @pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::1]:6379/",
                                     "http://10.0.0.5/", "ftp://hooks.example.com/"])
    def test_the_api_refuses_a_url_it_may_not_call_with_a_400_naming_webhookurl(self, url):
        workspace = WorkspaceFactory()
        response = api_client(workspace).patch("/api/v1/workspace", {"webhookUrl": url}, format="json")
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["webhookUrl"]
        workspace.refresh_from_db()
        assert workspace.webhook_url == ""

    def test_the_api_refuses_a_host_name_that_resolves_inside(self, monkeypatch):
        FakeDns(monkeypatch, ["192.168.0.10"])
        response = api_client(WorkspaceFactory()).patch(
            "/api/v1/workspace", {"webhookUrl": "https://hooks.example.com/in"}, format="json")
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"].startswith("hooks.example.com resolves to a private address")

    def test_the_api_stores_a_public_url_and_an_empty_one_turns_webhooks_off(self, monkeypatch):
        FakeDns(monkeypatch, [PUBLIC])
        workspace = WorkspaceFactory()
        slots = workspace.slots
        client = api_client(workspace)
        response = client.patch("/api/v1/workspace", {"webhookUrl": "https://hooks.example.com/in"}, format="json")
        assert response.status_code == 200 and response.json()["webhookUrl"] == "https://hooks.example.com/in"
        assert client.get("/api/v1/workspace").json()["webhookUrl"] == "https://hooks.example.com/in"
        assert client.patch("/api/v1/workspace", {"webhookUrl": ""}, format="json").json()["webhookUrl"] == ""
        assert client.patch("/api/v1/workspace", {"slots": 99}, format="json").status_code == 400
        workspace.refresh_from_db()
        assert (workspace.webhook_url, workspace.slots) == ("", slots)

    def test_the_admin_shows_a_form_error_on_the_webhook_url(self, client, monkeypatch):
        FakeDns(monkeypatch, ["100.64.3.4"])
        organisation = OrganisationFactory(total_slots=10)
        client.force_login(UserFactory(is_superuser=True))
        response = client.post("/admin/campaigns/workspace/add/", {
            "organisation": organisation.id, "name": "Inside", "slots": 1, "slot_mode": "hard",
            "webhook_url": "https://hooks.example.com/in"})
        assert response.status_code == 200
        assert "resolves to a shared address (100.64.3.4)" in response.context["adminform"].form.errors["webhook_url"][0]
        assert not Workspace.objects.filter(name="Inside").exists()

