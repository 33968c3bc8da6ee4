#!/usr/bin/env python3
"""A tasker endpoint in Python with nothing but pika, written from docs/protocol.md "On the wire".

It serves one task type: consumes its queue, runs a handler (it echoes the payload), publishes the
result event with publisher confirms and acks the task after the confirm. A copy that may have run
before (redelivered, or with the x-tasker-resent header) is first checked with the server side by a
state request over direct reply-to. Cancelled tasks are skipped: it asks for them when it connects and
listens to the control exchange after that. With TASKER_PY_TRUSTED_KEYS (docs/security.md "Signed tasks"), a task
whose tasker-signature header is missing, wrong, by another key or past its deadline never runs: it is
reported failed with errnr 259 and dead-lettered (this needs Python's `cryptography`). Settings come from
the environment (see ENV below). It prints one JSON line per thing it does, for the test that drives it.
"""
import base64
import datetime
import hashlib
import json
import os
import signal
import sys
import time
import uuid

import pika

ENV = {
    "host": os.environ.get("TASKER_PY_HOST", "127.0.0.1"),
    "port": int(os.environ.get("TASKER_PY_PORT", "5672")),
    "vhost": os.environ.get("TASKER_PY_VHOST", "/"),
    "user": os.environ.get("TASKER_PY_USER", "guest"),
    "password": os.environ.get("TASKER_PY_PASSWORD", "guest"),
    "prefix": os.environ.get("TASKER_PY_PREFIX", "tasker"),
    "endpoint": os.environ.get("TASKER_PY_ENDPOINT", "pyconsole"),
    "task_type": os.environ.get("TASKER_PY_TASK_TYPE", "worker"),
    # Comma-separated public keys, each the base64 of the raw 32 bytes, bare or after "ed25519:"; empty: unsigned tasks run.
    "trusted_keys": os.environ.get("TASKER_PY_TRUSTED_KEYS", ""),
    "max_skew": float(os.environ.get("TASKER_PY_MAX_SKEW", "60")),
}
ERRNR_TASK_REFUSED = 259


def trusted_keys():
    """key id (first 16 hex of the SHA-256 of the raw key) -> the key."""
    lines = [k.strip() for k in ENV["trusted_keys"].split(",") if k.strip()]
    if not lines:
        return {}
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    keys = {}
    for line in lines:
        raw = base64.b64decode(line[len("ed25519:"):] if line.startswith("ed25519:") else line, validate=True)
        keys[hashlib.sha256(raw).hexdigest()[:16]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


TRUSTED = trusted_keys()
REPLY_TO = "amq.rabbitmq.reply-to"
stopping = False


def log(msg, **fields):
    print(json.dumps({"msg": msg, **fields}), flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signature_problem(task, headers, body):
    """None when the task's signature holds; else why not (docs/security.md "Signed tasks")."""
    from cryptography.exceptions import InvalidSignature
    value = (headers or {}).get("tasker-signature")
    if value is None:
        return "unsigned (no tasker-signature header)"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    version, *parts = str(value).split(";")
    fields = dict(p.split("=", 1) for p in parts if "=" in p)
    if version != "v1" or not {"key", "deadline", "sig"} <= fields.keys():
        return "tasker-signature header is malformed"
    key = TRUSTED.get(fields["key"])
    if key is None:
        return f'signed by key {fields["key"]}, which this endpoint does not trust'
    signed = (f'tasker-task-signature-v1\n{task.get("id")}\n{task.get("type")}\n{task.get("round", 0)}\n'
              f'{fields["deadline"]}\n{hashlib.sha256(body).hexdigest()}\n').encode("utf-8")
    try:
        key.verify(base64.b64decode(fields["sig"]), signed)
    except (InvalidSignature, ValueError):
        return f'signature by key {fields["key"]} does not match the message (altered, or forged)'
    deadline = datetime.datetime.fromisoformat(fields["deadline"].replace("Z", "+00:00"))
    if deadline + datetime.timedelta(seconds=ENV["max_skew"]) < datetime.datetime.now(datetime.timezone.utc):
        return f'deadline {fields["deadline"]} passed (a late or replayed copy)'
    return None


def handle_task(task):
    """The handler: what a real endpoint would do with the task's payload."""
    return {"errnr": 0, "errmsg": None, "payload": {"python": True, "echo": task.get("payload")}}


class Endpoint:
    def __init__(self):
        e = ENV
        params = pika.ConnectionParameters(e["host"], e["port"], e["vhost"], pika.PlainCredentials(e["user"], e["password"]))
        self.conn = pika.BlockingConnection(params)
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()  # publishes raise unless the broker confirmed them
        self.rpc = self.conn.channel()
        self.replies = {}
        self.rpc.basic_consume(REPLY_TO, self.on_reply, auto_ack=True)
        # Cancels: an exclusive queue on the control fanout first, then the list of what was cancelled
        # while this endpoint was away; no task runs before both.
        # task id -> the highest round not to run (cancelled or superseded): it stands for every round up to it.
        self.dead = {}
        control = self.rpc.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.rpc.queue_bind(control, f'{e["prefix"]}.control')
        self.rpc.basic_consume(control, self.on_control, auto_ack=True)
        listed = self.request({"kind": "cancelled", "endpoint": e["endpoint"]})
        for c in listed["cancelled"]:
            self.mark_dead(c["task_id"], c["round"])
        # A cut list is complete only from its oldest task on: older deliveries are asked about first.
        self.complete_from = min((c["task_id"] for c in listed["cancelled"]), default=2 ** 63) if listed.get("truncated") else 0
        self.queue = f'{e["prefix"]}.{e["task_type"]}.{e["endpoint"]}'
        # The same arguments as every other declaration of this queue; where refused messages go is the
        # broker's policy. A queue an older tasker created keeps its x-dead-letter-exchange argument, and
        # RabbitMQ refuses to declare it without (406, closing the channel): then it is declared as it is.
        try:
            self.channel.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "classic"})
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code != 406:
                raise
            self.channel = self.conn.channel()
            self.channel.confirm_delivery()
            self.channel.queue_declare(self.queue, durable=True, arguments={
                "x-dead-letter-exchange": f'{e["prefix"]}.dead-letter', "x-queue-type": "classic"})
        self.channel.queue_bind(self.queue, f'{e["prefix"]}.{e["task_type"]}')
        self.channel.basic_qos(prefetch_count=1)

    def publish_event(self, event, persistent=True):
        self.channel.basic_publish(
            exchange=f'{ENV["prefix"]}.responses', routing_key="event", body=json.dumps(event), mandatory=True,
            properties=pika.BasicProperties(content_type="application/json", delivery_mode=2 if persistent else 1,
                                            user_id=ENV["user"], message_id=str(uuid.uuid4()), type="event"))

    def on_reply(self, _ch, _method, props, body):
        self.replies[props.correlation_id] = json.loads(body)

    def mark_dead(self, task_id, round_):
        self.dead[task_id] = max(round_, self.dead.get(task_id, -1))

    def on_control(self, _ch, _method, _props, body):
        msg = json.loads(body)
        if msg.get("kind") == "cancel" and ENV["endpoint"] in msg["rounds"]:
            self.mark_dead(msg["task_id"], msg["rounds"][ENV["endpoint"]])

    def ask_state(self, task, redelivered, resent):
        """Asks the server side what to do with a copy that may have run before; waits for the answer."""
        return self.request({"kind": "state", "task_id": task["id"], "endpoint": ENV["endpoint"], "redelivered": redelivered,
                             "resent": resent, "round": task.get("round", 0), "max_attempts": 5})

    def request(self, request):
        """Request/reply over direct reply-to, asked again until the server side answers."""
        while True:
            correlation_id = str(uuid.uuid4())
            self.rpc.basic_publish(
                exchange=f'{ENV["prefix"]}.responses', routing_key="state", body=json.dumps(request),
                properties=pika.BasicProperties(content_type="application/json", reply_to=REPLY_TO,
                                                correlation_id=correlation_id, user_id=ENV["user"], expiration="10000"))
            deadline = time.monotonic() + 10
            while correlation_id not in self.replies and time.monotonic() < deadline:
                self.conn.process_data_events(time_limit=0.05)
            reply = self.replies.pop(correlation_id, None)
            if reply is not None and reply["action"] != "unavailable":
                return reply
            time.sleep(1)

    def on_task(self, method, props, body):
        try:
            task = json.loads(body)
        except ValueError:
            self.channel.basic_nack(method.delivery_tag, requeue=False)  # dead-lettered
            return
        problem = signature_problem(task, props.headers, body) if TRUSTED else None
        if problem is not None:
            # Before anything else: never run, reported (unless not meant for this endpoint), dead-lettered.
            if ENV["endpoint"] in task.get("endpoints", []):
                self.publish_event({"kind": "result", "task_id": task["id"], "endpoint": ENV["endpoint"], "attempt": 1,
                                    "round": task.get("round", 0), "start_time": now(), "end_time": now(),
                                    "errnr": ERRNR_TASK_REFUSED, "errmsg": f"task refused: {problem}", "payload": None})
            self.channel.basic_nack(method.delivery_tag, requeue=False)
            log("task refused", task_id=task.get("id"), reason=problem)
            return
        if ENV["endpoint"] not in task.get("endpoints", []):
            self.channel.basic_ack(method.delivery_tag)  # a broadcast not meant for this endpoint
            return
        resent = bool((props.headers or {}).get("x-tasker-resent"))
        round_ = task.get("round", 0)
        if round_ <= self.dead.get(task["id"], -1):
            self.channel.basic_ack(method.delivery_tag)
            log("task cancelled; skipped", task_id=task["id"])
            return
        if round_ > 0:
            self.mark_dead(task["id"], round_ - 1)  # older rounds are superseded
        attempt = 1
        # A later round may have been superseded or cancelled meanwhile, and a task older than the cut list
        # may have been cancelled: the server side decides, as for a copy that may have run before.
        if method.redelivered or resent or round_ > 0 or task["id"] < self.complete_from:
            reply = self.ask_state(task, method.redelivered, resent)
            log("state reply", task_id=task["id"], action=reply["action"])
            if reply["action"] == "cancelled":
                self.mark_dead(task["id"], round_)
            if reply["action"] in ("finished", "cancelled"):
                self.channel.basic_ack(method.delivery_tag)
                return
            if reply["action"] != "run":
                self.channel.basic_nack(method.delivery_tag, requeue=False)
                return
            attempt = reply["attempt"]
        start = now()
        result = handle_task(task)
        self.publish_event({"kind": "result", "task_id": task["id"], "endpoint": ENV["endpoint"], "attempt": attempt,
                            "round": round_, "start_time": start, "end_time": now(), **result})
        self.channel.basic_ack(method.delivery_tag)  # only after the broker confirmed the result
        log("task finished", task_id=task["id"], attempt=attempt)

    def run(self):
        self.publish_event({"kind": "register", "endpoint": ENV["endpoint"], "task_types": [ENV["task_type"]], "time": now()})
        log("ready", queue=self.queue, trusted_keys=sorted(TRUSTED))
        last_heartbeat = time.monotonic()
        for method, props, body in self.channel.consume(self.queue, inactivity_timeout=0.2):
            if stopping:
                break
            if method is not None:
                self.on_task(method, props, body)
            if time.monotonic() - last_heartbeat > 10:
                self.publish_event({"kind": "heartbeat", "endpoint": ENV["endpoint"], "task_types": [ENV["task_type"]],
                                    "time": now()}, persistent=False)
                last_heartbeat = time.monotonic()
        self.channel.cancel()
        self.conn.close()
        log("stopped")


def on_signal(_signum, _frame):
    global stopping
    stopping = True


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Endpoint().run()
    sys.exit(0)
