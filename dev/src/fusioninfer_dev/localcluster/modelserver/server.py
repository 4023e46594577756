"""STAND-IN for the llm-d inference simulator: an OpenAI-compatible model server with vLLM's metrics.

The real simulator (`github.com/llm-d/llm-d-inference-sim`) is not served by the Go module proxy
this machine reaches, so it cannot be built here (docs/routing.md). This stand-in does what the
local cluster needs from it, in the simulator's manner:

- it listens on the pod's IP and the port the engine's own command line names (`--port`, else
  vLLM's 8000 / SGLang's 30000), answers `/health`, `/v1/models`, `/v1/chat/completions` and
  `/v1/completions` (JSON or server-sent events), echoing the prompt's words as tokens (the
  simulator's `echo` mode) after a time-to-first-token and an inter-token latency;
- it runs at most `--max-num-seqs` requests at once and queues the rest, and exports what the
  endpoint pickers scrape under the engine's metric names: vLLM's `vllm:num_requests_running`,
  `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` and (with `--enable-lora`)
  `vllm:lora_requests_info`, or
  SGLang's `sglang:num_running_reqs`, `sglang:num_queue_reqs`, `sglang:token_usage` (only with
  `--enable-metrics`, as SGLang);
- it refuses a model name it does not serve with vLLM's 404 body, and names the pod that
  answered in the `x-inference-pod` / `x-inference-namespace` response headers, like the
  simulator.

KV-cache use is modelled as the share of the sequence slots in use; there is no tokenizer (the
simulator's `--force-dummy-tokenizer`): a token is a word.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fusioninfer_dev.localcluster.modelserver.engine_args import EngineArgs


@dataclass(frozen=True)
class Timing:
    """Latencies in seconds, as the simulator's `--time-to-first-token` / `--inter-token-latency`."""

    time_to_first_token: float = 0.0
    inter_token_latency: float = 0.0


class Load:
    """Sequence slots: `running` requests hold one, the rest wait (the engine's scheduler)."""

    def __init__(self, max_num_seqs: int) -> None:
        self.max_num_seqs = max_num_seqs
        self._slots = threading.BoundedSemaphore(max_num_seqs)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.running_adapters: Counter[str] = Counter()
        self.waiting_adapters: Counter[str] = Counter()

    def enter(self, adapter: str) -> None:
        with self._lock:
            self.waiting += 1
            if adapter:
                self.waiting_adapters[adapter] += 1
        self._slots.acquire()
        with self._lock:
            self.waiting -= 1
            self.running += 1
            if adapter:
                self.waiting_adapters[adapter] -= 1
                self.running_adapters[adapter] += 1

    def leave(self, adapter: str) -> None:
        with self._lock:
            self.running -= 1
            if adapter:
                self.running_adapters[adapter] -= 1
        self._slots.release()

    def kv_cache_usage(self) -> float:
        return min(1.0, self.running / self.max_num_seqs)

    def adapters(self) -> tuple[str, str]:
        with self._lock:
            running = ",".join(sorted(a for a, n in self.running_adapters.items() if n > 0))
            waiting = ",".join(sorted(a for a, n in self.waiting_adapters.items() if n > 0))
        return running, waiting


def metrics_text(args: EngineArgs, load: Load) -> str:
    """The Prometheus exposition the engine would serve, for the metrics the pickers read."""
    model = args.served_model_names[0]
    label = f'model_name="{model}"'
    if args.engine == "sglang":
        rows = [
            ("sglang:num_running_reqs", load.running),
            ("sglang:num_queue_reqs", load.waiting),
            ("sglang:token_usage", load.kv_cache_usage()),
        ]
        return "".join(f"# TYPE {name} gauge\n{name}{{{label}}} {value}\n" for name, value in rows)
    rows = [
        ("vllm:num_requests_running", load.running),
        ("vllm:num_requests_waiting", load.waiting),
        ("vllm:kv_cache_usage_perc", load.kv_cache_usage()),
    ]
    out = "".join(f"# TYPE {name} gauge\n{name}{{{label}}} {value}\n" for name, value in rows)
    if not args.lora_enabled:
        return out  # vLLM exports its LoRA gauge only with --enable-lora
    running, waiting = load.adapters()
    lora = f'max_lora="{args.max_loras}",running_lora_adapters="{running}",waiting_lora_adapters="{waiting}"'
    return out + f"# TYPE vllm:lora_requests_info gauge\nvllm:lora_requests_info{{{lora}}} {time.time()}\n"


def prompt_words(body: Mapping[str, Any]) -> list[str]:
    """The last user message (chat) or the prompt (completions), split into words."""
    if "messages" in body:
        text = ""
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                text = (
                    content
                    if isinstance(content, str)
                    else " ".join(str(part.get("text", "")) for part in content or [] if isinstance(part, dict))
                )
        return text.split()
    prompt = body.get("prompt", "")
    return (" ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)).split()


class ModelServer:
    """The stand-in's state and HTTP server; `serve_forever()` blocks."""

    def __init__(
        self, args: EngineArgs, *, host: str, pod: str, namespace: str, timing: Timing, max_num_seqs: int
    ) -> None:
        self.args = args
        self.pod = pod
        self.namespace = namespace
        self.timing = timing
        self.load = Load(max_num_seqs)
        self.httpd = ThreadingHTTPServer((host, args.port), _handler_for(self))
        self.httpd.daemon_threads = True

    def known_models(self) -> dict[str, str | None]:
        """Model id -> parent (None for a base model), as vLLM's /v1/models lists them."""
        models: dict[str, str | None] = dict.fromkeys(self.args.served_model_names)
        for adapter in self.args.lora_adapters:
            models[adapter] = self.args.served_model_names[0]
        return models

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()

    def generate(self, words: list[str], max_tokens: int | None, adapter: str) -> Iterator[str]:
        """Tokens after TTFT, one per inter-token latency, holding a sequence slot meanwhile."""
        self.load.enter(adapter)
        try:
            time.sleep(self.timing.time_to_first_token)
            tokens = (words or ["ok"])[: max_tokens if max_tokens else None]
            for index, token in enumerate(tokens):
                if index:
                    time.sleep(self.timing.inter_token_latency)
                yield token
        finally:
            self.load.leave(adapter)


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet, like a server at INFO
            return

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = (json.dumps(body) if content_type == "application/json" else str(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self._identify()
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            """The request body, by Content-Length or chunked (Envoy streams bodies through ext_proc)."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _identify(self) -> None:
            self.send_header("x-inference-pod", server.pod)
            self.send_header("x-inference-namespace", server.namespace)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send(HTTPStatus.OK, "", "text/plain")
            elif path == "/v1/models":
                data = [
                    {"id": name, "object": "model", "owned_by": server.args.engine, "root": name, "parent": parent}
                    for name, parent in server.known_models().items()
                ]
                self._send(HTTPStatus.OK, {"object": "list", "data": data})
            elif path == "/metrics" and server.args.metrics_enabled:
                self._send(HTTPStatus.OK, metrics_text(server.args, server.load), "text/plain; version=0.0.4")
            else:
                self._send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/v1/chat/completions", "/v1/completions"):
                self._send(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})
                return
            try:
                body = json.loads(self._body() or b"{}")
            except json.JSONDecodeError as err:
                self._send(HTTPStatus.BAD_REQUEST, _error(f"invalid JSON body: {err}", "BadRequestError", 400))
                return
            model = str(body.get("model") or server.args.served_model_names[0])
            models = server.known_models()
            if model not in models:
                self._send(HTTPStatus.NOT_FOUND, _error(f"The model `{model}` does not exist.", "NotFoundError", 404))
                return
            adapter = model if models[model] is not None else ""
            chat = path.endswith("chat/completions")
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
            tokens = server.generate(prompt_words(body), int(max_tokens) if max_tokens else None, adapter)
            created = int(time.time())
            ident = f"{'chatcmpl' if chat else 'cmpl'}-{server.pod}-{time.monotonic_ns()}"
            if body.get("stream"):
                self._stream(ident, created, model, chat, tokens)
                return
            words = list(tokens)
            text = " ".join(words)
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            usage = {
                "prompt_tokens": len(prompt_words(body)),
                "completion_tokens": len(words),
                "total_tokens": len(prompt_words(body)) + len(words),
            }
            kind = "chat.completion" if chat else "text_completion"
            response = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
            self._send(HTTPStatus.OK, {**response, "usage": usage})

        def _stream(self, ident: str, created: int, model: str, chat: bool, tokens: Iterator[str]) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self._identify()
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"
            for index, token in enumerate(tokens):
                piece = token if index == 0 else f" {token}"
                choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                chunk = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
                self._chunk(f"data: {json.dumps(chunk)}\n\n")
            self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
