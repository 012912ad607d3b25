#!/usr/bin/env python3
"""A user's program for the local platform, in Python with only the
standard library: it listens on $PORT, answers "<GREETING> from <revision>
(python)!" on every path but /healthz, which answers "ok", and stops on SIGTERM.

    go run ./examples/platform -f examples/platform/manifests/greeter-python.yaml
"""
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))  # set by the platform, as by Knative
GREETING = os.environ.get("GREETING", "Hello")
REVISION = os.environ.get("K_REVISION", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            body = f"{GREETING} from {REVISION} (python)!\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        if self.path == "/healthz":
            return
        print(f"{self.command} {self.path} from {self.headers.get('X-Forwarded-For')}", flush=True)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)


def stop(signum, frame):
    print("SIGTERM: stopping", flush=True)
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, stop)
print(f"greeter (python) {REVISION} listening on {PORT}", flush=True)
server.serve_forever()
sys.exit(0)
