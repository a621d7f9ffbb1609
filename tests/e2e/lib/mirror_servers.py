"""The two small servers of the e2e tier's air-gapped site, run as processes of their own.

    python mirror_servers.py files DIR HOST PORT ACCESS_LOG
        kubespray's `files_repo`: serves DIR read-only over HTTP (GET/HEAD), one JSON line per
        request in ACCESS_LOG (client, path, status, bytes).
    python mirror_servers.py proxy HOST PORT ACCESS_LOG ALLOWED_HOST...
        the site's HTTP proxy (the notes' `http://proxy.com:10086`): forwards plain-HTTP
        requests and CONNECT tunnels to the ALLOWED_HOSTs only (the Debian mirror), refuses
        everything else with 403, and logs each request.

Both stop on SIGTERM; the e2e tier starts and stops them by PID.
"""

from __future__ import annotations

import http.client
import http.server
import json
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import urlsplit

CHUNK = 64 * 1024
TIMEOUT = 60.0


class _Logger:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, **entry: object) -> None:
        entry = {"t": round(time.time(), 3), **entry}
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def files(root: str, host: str, port: int, access_log: str) -> None:
    log = _Logger(access_log)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=root, **kw)  # type: ignore[arg-type]

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log(client=self.client_address[0], method=self.command, path=self.path, status=int(code), bytes=size)

        def log_message(self, format: str, *args: object) -> None:
            pass

        def list_directory(self, path: str):  # type: ignore[no-untyped-def]
            self.send_error(403, "no listings")
            return None

    _serve(_Server((host, port), Handler))


def proxy(host: str, port: int, access_log: str, allowed: list[str]) -> None:
    log = _Logger(access_log)
    allow = {a.lower() for a in allowed}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = TIMEOUT

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _refuse(self, target: str) -> None:
            log(client=self.client_address[0], method=self.command, target=target, status=403)
            body = b"k8s-platform e2e proxy: only the Debian mirror is reachable\n"
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def do_CONNECT(self) -> None:
            target_host, _, target_port = self.path.rpartition(":")
            if target_host.lower() not in allow or target_port != "443":
                return self._refuse(self.path)
            try:
                upstream = socket.create_connection((target_host, 443), timeout=TIMEOUT)
            except OSError as exc:
                log(client=self.client_address[0], method="CONNECT", target=self.path, status=502, error=str(exc))
                self.send_error(502)
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            sent = _pipe(self.connection, upstream)
            log(client=self.client_address[0], method="CONNECT", target=self.path, status=200, bytes=sent)
            self.close_connection = True

        def _forward(self) -> None:
            url = urlsplit(self.path)
            if url.scheme != "http" or (url.hostname or "").lower() not in allow:
                return self._refuse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("proxy-connection", "connection", "keep-alive", "proxy-authorization")}  # fmt: skip
            try:
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=TIMEOUT)
                conn.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body, headers)
                resp = conn.getresponse()
            except OSError as exc:
                log(client=self.client_address[0], method=self.command, target=self.path, status=502, error=str(exc))
                self.send_error(502)
                return
            self.send_response(resp.status, resp.reason)
            chunked = False
            for k, v in resp.getheaders():
                if k.lower() in ("connection", "keep-alive", "transfer-encoding"):
                    chunked |= k.lower() == "transfer-encoding"
                    continue
                self.send_header(k, v)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            while data := resp.read(CHUNK):
                sent += len(data)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            conn.close()
            log(client=self.client_address[0], method=self.command, target=self.path, status=resp.status, bytes=sent)

        do_GET = do_HEAD = do_POST = _forward

    _serve(_Server((host, port), Handler))


def _pipe(a: socket.socket, b: socket.socket) -> int:
    sent = 0
    socks = [a, b]
    try:
        while True:
            ready, _, _ = select.select(socks, [], [], TIMEOUT)
            if not ready:
                return sent
            for s in ready:
                data = s.recv(CHUNK)
                if not data:
                    return sent
                (b if s is a else a).sendall(data)
                sent += len(data)
    finally:
        b.close()


def _serve(server: http.server.HTTPServer) -> None:
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"serving on {server.server_address}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "files":
        files(argv[1], argv[2], int(argv[3]), argv[4])
    elif len(argv) >= 5 and argv[0] == "proxy":
        proxy(argv[1], int(argv[2]), argv[3], argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
