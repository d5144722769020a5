"""A minimal OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, replies from a local model through
`sftkit.generation.generate` (greedy, one conversation per request), and an optional guardrail whose blocks
come back with finish_reason `content_filter`, as a served model's would.

Replace with the real `sftkit serve` in the tests once it exists (see tests/redteam/test_targets.py)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve(model, tokenizer, name: str = "stub-model", guard=None):
    """Yields (base URL ending in /v1, list of the Authorization headers received)."""
    from sftkit.generation import generate

    lock, seen = threading.Lock(), []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            if self.path == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": name, "object": "model"}]})
            self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            seen.append(self.headers.get("Authorization"))
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions" or request.get("model") != name:
                return self._send(404, {"error": {"message": f"unknown path or model {request.get('model')!r}"}})
            with lock:  # one generation at a time, as a single-model server
                reply = generate(model, tokenizer, [request["messages"]], request["max_tokens"], guard=guard,
                                 batch_size=1)[0]
            self._send(200, {"object": "chat.completion", "model": name, "choices": [{
                "index": 0, "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
