"""The request handler the local stand-ins of third-party APIs share (the benchmark's and the
tests'): it logs nothing and answers JSON."""
import json
from http.server import BaseHTTPRequestHandler


class QuietJsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
