"""Real receivers for notifications, on 127.0.0.1 with a free port: a webhook (HTTP) server and a small SMTP server.

Both record what they received, so tests assert on the bytes that really crossed a socket.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class WebhookServer:
    """``responses`` is a list of HTTP codes answered in turn (the last one repeats); ``delay`` seconds are
    slept before answering; ``requests`` holds (path, headers, parsed JSON body) of every POST."""

    def __init__(self, responses=(200,), delay: float = 0.0) -> None:
        self.responses = list(responses)
        self.delay = delay
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                server.requests.append((self.path, dict(self.headers), body))
                if server.delay:
                    time.sleep(server.delay)
                code = server.responses.pop(0) if len(server.responses) > 1 else server.responses[0]
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere?token=secret")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpServer:
    """Just enough SMTP (HELO/EHLO, MAIL, RCPT, DATA, QUIT, RSET, NOOP) to receive a mail from smtplib.
    Recipients in ``refuse`` get a 550. ``messages`` holds (sender, recipients, data) of every mail."""

    def __init__(self, refuse=()) -> None:
        self.messages = []
        self.refuse = set(refuse)
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 test SMTP ready")
                sender, recipients = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode(errors="replace").strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb in ("HELO", "EHLO"):
                        self.reply("250 test")
                    elif verb == "MAIL":
                        sender, recipients = command.split(":", 1)[1].strip(), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        address = command.split(":", 1)[1].strip().strip("<>")
                        if address in server.refuse:
                            self.reply("550 no such user")
                        else:
                            recipients.append(address)
                            self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go ahead")
                        data = []
                        while True:
                            chunk = self.rfile.readline()
                            if chunk in (b".\r\n", b".\n", b""):
                                break
                            data.append(chunk.decode(errors="replace"))
                        server.messages.append((sender, recipients, "".join(data)))
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.port = self.tcp.server_address[1]
        self.thread = threading.Thread(target=self.tcp.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def webhook():
    """A webhook server answering 200; set ``.responses`` or ``.delay`` to change that."""
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def smtp():
    server = SmtpServer(refuse={"nobody@example.com"})
    yield server
    server.close()
