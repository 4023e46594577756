"""The stand-in model server: where it listens, what it serves, what it reports.

It reads the pod's command line as the engine would (its own reading, not the operator's), so
that a pod whose command says `--port 9000` is reachable on 9000 whatever the operator thought.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from fusioninfer_dev.localcluster.components import pick_free_ports
from fusioninfer_dev.localcluster.modelserver.engine_args import parse_engine_args
from fusioninfer_dev.localcluster.modelserver.server import Load, ModelServer, Timing, metrics_text, prompt_words

SGLANG = "lmsysorg/sglang:v0.5.3"


@pytest.mark.parametrize(
    ("argv", "image", "engine", "model", "port"),
    [
        (["--model", "Qwen/Qwen3-8B"], "vllm/vllm-openai:v0.11.0", "vllm", "Qwen/Qwen3-8B", 8000),
        (["vllm", "serve", "Qwen/Qwen3-8B", "--port", "9000"], "", "vllm", "Qwen/Qwen3-8B", 9000),
        (["sh", "-c", "pip list && vllm serve m --port 9001"], "vllm/vllm-openai:v0.11.0", "vllm", "m", 9001),
        (
            ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m", "--port=8100"],
            "",
            "vllm",
            "m",
            8100,
        ),
        (
            ["python3", "-m", "sglang.launch_server", "--model-path", "m"],
            "lmsysorg/sglang:v0.5.3",
            "sglang",
            "m",
            30000,
        ),
        (["--model-path", "m", "--port", "8000"], "lmsysorg/sglang:v0.5.3", "sglang", "m", 8000),
    ],
)
def test_the_engine_command_line_says_where_to_listen(
    argv: list[str], image: str, engine: str, model: str, port: int
) -> None:
    args = parse_engine_args(argv, image)
    assert (args.engine, args.model, args.port) == (engine, model, port)


def test_served_names_and_lora_adapters() -> None:
    args = parse_engine_args(
        [
            "--model",
            "Qwen/Qwen3-8B",
            "--served-model-name",
            "qwen",
            "qwen3",
            "--enable-lora",
            "--lora-modules",
            "sql=/a/sql",
            json.dumps({"name": "chat", "path": "/a/chat"}),
            "--max-loras",
            "3",
        ]
    )
    assert args.served_model_names == ("qwen", "qwen3")
    assert args.lora_adapters == ("sql", "chat")
    assert (args.lora_enabled, args.max_loras) == (True, 3)
    sglang = parse_engine_args(["python3", "-m", "sglang.launch_server", "--model", "m", "--enable-metrics"])
    assert sglang.metrics_enabled
    assert not parse_engine_args(["python3", "-m", "sglang.launch_server", "--model", "m"]).metrics_enabled


def test_metrics_carry_the_engines_names() -> None:
    vllm = parse_engine_args(["--model", "m", "--enable-lora", "--lora-modules", "sql=/x"])
    load = Load(max_num_seqs=4)
    load.enter("sql")
    text = metrics_text(vllm, load)
    assert 'vllm:num_requests_running{model_name="m"} 1' in text
    assert 'vllm:num_requests_waiting{model_name="m"} 0' in text
    assert 'vllm:kv_cache_usage_perc{model_name="m"} 0.25' in text
    assert 'running_lora_adapters="sql"' in text
    assert "lora_requests_info" not in metrics_text(parse_engine_args(["--model", "m"]), load), "only with LoRA on"
    sglang = metrics_text(parse_engine_args(["--model-path", "m"], "lmsysorg/sglang:v0.5.3"), load)
    assert "sglang:num_queue_reqs" in sglang
    assert "sglang:token_usage" in sglang


def test_prompt_words_of_chat_and_completions() -> None:
    chat = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]}
    assert prompt_words(chat) == ["hi", "there"]
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}]}
    assert prompt_words(parts) == ["a", "b"]
    assert prompt_words({"prompt": "x y z"}) == ["x", "y", "z"]


@pytest.fixture
def server() -> Iterator[str]:
    (port,) = pick_free_ports(1)
    args = parse_engine_args(["--model", "m", "--port", str(port), "--enable-lora", "--lora-modules", "sql=/x"])
    instance = ModelServer(args, host="127.0.0.1", pod="pod-a", namespace="ns", timing=Timing(), max_num_seqs=2)
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    instance.shutdown()


def test_it_answers_like_an_openai_server_and_names_the_pod(server: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello world"}], "max_tokens": 1}
    reply = httpx.post(f"{server}/v1/chat/completions", json=body, trust_env=False)
    assert reply.status_code == 200
    assert reply.headers["x-inference-pod"] == "pod-a"
    assert reply.json()["choices"][0]["message"]["content"] == "hello"
    assert reply.json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    models = [m["id"] for m in httpx.get(f"{server}/v1/models", trust_env=False).json()["data"]]
    assert models == ["m", "sql"]


def test_an_unknown_model_gets_vllms_404(server: str) -> None:
    reply = httpx.post(f"{server}/v1/completions", json={"model": "nope", "prompt": "x"}, trust_env=False)
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == "The model `nope` does not exist."


def test_streaming_and_chunked_request_bodies(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "prompt": "one two three",'
        yield b' "stream": true}'

    reply = httpx.post(f"{server}/v1/completions", content=chunks(), trust_env=False)
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == "one two three"
