"""A webhook receiver in Python for the tests: verifies each delivery's Standard Webhooks signature with
the lines of the README (the `standardwebhooks` package when it is installed), prints one JSON line per
request on stdout, and answers 204 when the signature verifies, else 400.

Usage: webhook_receiver.py PORT SECRET
"""
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def verify(secret: str, headers, raw_body: bytes) -> bool:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > 300:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    want = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + raw_body, hashlib.sha256).digest()).decode()
    return any(v == "v1" and hmac.compare_digest(sig, want)
               for v, _, sig in (s.partition(",") for s in headers["webhook-signature"].split(" ")))


def verify_with_package(secret: str, headers, raw_body: bytes):
    try:
        from standardwebhooks.webhooks import Webhook  # type: ignore
    except ImportError:
        return None
    try:
        Webhook(secret).verify(raw_body, dict(headers))
        return True
    except Exception:  # noqa: BLE001 - any refusal is a failed verification
        return False


PORT, SECRET = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        valid = verify(SECRET, headers, raw)
        line = {
            "id": headers.get("webhook-id"), "type": json.loads(raw).get("type"), "valid": valid,
            "tampered_valid": verify(SECRET, headers, raw + b" "), "package_valid": verify_with_package(SECRET, headers, raw),
        }
        print(json.dumps(line), flush=True)
        self.send_response(204 if valid else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", PORT), Handler)
print(json.dumps({"listening": PORT}), flush=True)
server.serve_forever()
