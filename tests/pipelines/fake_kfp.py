"""A tiny stand-in for the Kubeflow Pipelines v2beta1 REST API on loopback that records every request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse


class FakeKfp:
    """Start with ``with FakeKfp() as kfp: ...``; ``kfp.host`` for ``kfp.Client``; ``kfp.requests`` afterwards."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.experiments: dict[str, dict[str, Any]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def _reply(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                entry = {"method": self.command, "path": urlparse(self.path).path, "query": urlparse(self.path).query,
                         "body": json.loads(raw) if raw else None}
                outer.requests.append(entry)
                return entry

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                req = self._record()
                path = req["path"]
                if path.endswith("/healthz"):
                    self._reply({"multi_user": False})
                elif path.endswith("/experiments"):
                    self._reply({"experiments": list(outer.experiments.values()),
                                 "total_size": len(outer.experiments)})
                elif "/runs/" in path:
                    run_id = path.rsplit("/", 1)[-1]
                    self._reply({"run_id": run_id, "state": "SUCCEEDED", "display_name": "x"})
                else:
                    self._reply({"error": f"not faked: GET {path}"}, status=404)

            def do_POST(self) -> None:  # noqa: N802
                req = self._record()
                path, body = req["path"], req["body"] or {}
                if path.endswith("/experiments"):
                    exp = {"experiment_id": f"exp-{len(outer.experiments) + 1}",
                           "display_name": body.get("display_name", "")}
                    outer.experiments[exp["experiment_id"]] = exp
                    self._reply(exp)
                elif path.endswith("/recurringruns"):
                    self._reply({"recurring_run_id": "rr-1", **{k: v for k, v in body.items() if k != "pipeline_spec"}})
                elif path.endswith("/runs"):
                    self._reply({"run_id": "run-1", "display_name": body.get("display_name"),
                                 "experiment_id": body.get("experiment_id")})
                else:
                    self._reply({"error": f"not faked: POST {path}"}, status=404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKfp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
