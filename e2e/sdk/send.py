"""Sends Segment messages to The Eye's ingest through a real Python SDK.

    send.py segment|rudder batch|alone < messages.json

segment: segment-analytics-python (`segment.analytics`); rudder: rudder-sdk-python
(`rudderstack.analytics`, which gzips by default). batch: the SDK's default batching (up
to 100 messages per request); alone: one message per request (upload_size=1). Both go
through the SDK's own queue, retry and backoff; only sync_mode would skip the retries.

stdin: a JSON array of messages in Segment's spec (camelCase: type, userId, anonymousId,
event, name, properties, traits, groupId, previousId, context, messageId, timestamp).
Environment: EYE_INGEST_URL (the SDK's host) and EYE_WRITE_KEY (a client's API key).

stdout: one JSON object: the messageId the SDK gave each message, in order, every HTTP
answer the SDK received (status, messages in the request, gzip, auth scheme), and the
messages whose delivery the SDK gave up on. Exits 1 when any delivery failed.
"""

import gzip
import json
import os
import sys
import threading
from datetime import datetime

# camelCase message field -> keyword argument of the SDKs' calls.
KWARGS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "event": "event",
    "name": "name",
    "category": "category",
    "properties": "properties",
    "traits": "traits",
    "groupId": "group_id",
    "previousId": "previous_id",
    "context": "context",
    "integrations": "integrations",
    "messageId": "message_id",
    "timestamp": "timestamp",
}
TYPES = ("track", "identify", "page", "screen", "group", "alias")


def load_sdk(name):
    if name == "segment":
        import segment.analytics as sdk
        import segment.analytics.request as request
    elif name == "rudder":
        import rudderstack.analytics as sdk
        import rudderstack.analytics.request as request
    else:
        raise SystemExit(f"unknown SDK {name!r}: segment or rudder")
    return sdk, request


def call_kwargs(message):
    kwargs = {}
    for key, value in message.items():
        if key == "type":
            continue
        if key not in KWARGS:
            raise SystemExit(f"message field {key!r} has no SDK argument")
        if key == "timestamp":
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        kwargs[KWARGS[key]] = value
    return kwargs


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("batch", "alone"):
        raise SystemExit(__doc__)
    sdk, request = load_sdk(sys.argv[1])
    messages = json.load(sys.stdin)
    host = os.environ["EYE_INGEST_URL"]
    write_key = os.environ["EYE_WRITE_KEY"]

    lock = threading.Lock()
    responses = []
    failed = []

    def on_response(res, *args, **kwargs):
        # A requests hook: sees every answer the SDK gets, retries included.
        req = res.request
        body = req.body if isinstance(req.body, bytes) else (req.body or "").encode()
        zipped = req.headers.get("Content-Encoding") == "gzip"
        batch = json.loads(gzip.decompress(body) if zipped else body).get("batch", [])
        answer = {
            "status": res.status_code,
            "method": req.method,
            "url": req.url,
            "messages": len(batch),
            "gzip": zipped,
            "auth": req.headers.get("Authorization", "").split(" ")[0],
        }
        with lock:
            responses.append(answer)
        # As it happens, so that a run stopped for taking too long still tells why.
        print(f"answer {json.dumps(answer)} {res.text[:300]}", file=sys.stderr, flush=True)
        return res

    def on_error(error, batch):
        with lock:
            failed.extend({"messageId": m.get("messageId"), "error": str(error)} for m in batch)

    request._session.hooks["response"].append(on_response)
    options = {"host": host, "on_error": on_error}
    if sys.argv[2] == "alone":
        options["upload_size"] = 1
    client = sdk.Client(write_key, **options)

    sent = []
    for message in messages:
        kind = message.get("type")
        if kind not in TYPES:
            raise SystemExit(f"message type {kind!r} is not one of {TYPES}")
        queued, msg = getattr(client, kind)(**call_kwargs(message))
        if not queued:
            raise SystemExit(f"the SDK's queue refused {msg}")
        sent.append({"type": kind, "messageId": msg["messageId"]})
    # flush() returns once every queued message was delivered or given up on.
    client.flush()
    client.join()

    json.dump(
        {"sdk": sys.argv[1], "mode": sys.argv[2], "sent": sent, "responses": responses, "failed": failed},
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
