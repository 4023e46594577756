"""Read a serving container's command line the way vLLM or SGLang would, for the stand-in server.

The stand-in has to listen where the real engine would (the port in the pod's own command line,
the engine's default otherwise), answer for the model names the engine would serve, and know
the LoRA adapters it was started with. This is its own reading of the engines' flags, written
from their `--help`, deliberately independent of the operator's builders: a stand-in that parsed
commands with the operator's code would agree with the operator by construction.

Unknown flags are ignored, as the stand-in does not need them; it does not validate commands.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

VLLM_DEFAULT_PORT = 8000
SGLANG_DEFAULT_PORT = 30000
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/env"}


@dataclass(frozen=True)
class EngineArgs:
    """What the stand-in needs from the engine's command line."""

    engine: str  # "vllm" or "sglang"
    model: str
    served_model_names: tuple[str, ...]
    port: int
    lora_adapters: tuple[str, ...] = ()
    max_loras: int = 1
    lora_enabled: bool = False
    metrics_enabled: bool = True
    disaggregation_mode: str = ""  # SGLang: "prefill" / "decode"; vLLM P/D uses the connector
    kv_transfer_config: dict[str, object] = field(default_factory=dict)


def flatten(argv: Sequence[str]) -> list[str]:
    """`sh -c "vllm serve m --port 9000"` is what `vllm serve m --port 9000` would be."""
    words = list(argv)
    shell = len(words) >= 3 and words[0].rsplit("/", 1)[-1] in {s.rsplit("/", 1)[-1] for s in SHELLS}
    if shell and "-c" in words:
        script = words[words.index("-c") + 1]
        return shlex.split(script.split("&&")[-1].split(";")[-1])
    return words


def is_sglang(words: Sequence[str], image: str) -> bool:
    """The command names SGLang's entry point, or the image is SGLang's and the command is its own."""
    return any("sglang" in word for word in words[:3]) or (
        "sglang" in image and not any("vllm" in w for w in words[:3])
    )


def _vllm_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("model_tag", nargs="?")
    parser.add_argument("--model", default=None)
    parser.add_argument("--port", type=int, default=VLLM_DEFAULT_PORT)
    parser.add_argument("--served-model-name", nargs="+", default=None)
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--max-loras", type=int, default=1)
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--kv-transfer-config", default=None)
    return parser


def _sglang_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--model-path", "--model", dest="model", default=None)
    parser.add_argument("--port", type=int, default=SGLANG_DEFAULT_PORT)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--lora-paths", nargs="+", default=[])
    parser.add_argument("--max-loras-per-batch", type=int, default=8)
    parser.add_argument("--enable-metrics", action="store_true")
    parser.add_argument("--disaggregation-mode", default="")
    return parser


def _lora_name(entry: str) -> str:
    """vLLM takes `name=path` or a JSON object with a `name`; SGLang takes `name=path` or a path."""
    entry = entry.strip()
    if entry.startswith("{"):
        return str(json.loads(entry).get("name", ""))
    return entry.split("=", 1)[0] if "=" in entry else entry.rstrip("/").rsplit("/", 1)[-1]


def parse_engine_args(argv: Sequence[str], image: str = "") -> EngineArgs:
    """The engine's reading of `argv` (the container's command followed by its args)."""
    words = flatten(argv)
    if is_sglang(words, image):
        ns, _ = _sglang_parser().parse_known_args(_after_program(words, "sglang"))
        model = ns.model or "default"
        return EngineArgs(
            engine="sglang",
            model=model,
            served_model_names=(ns.served_model_name or model,),
            port=ns.port,
            lora_adapters=tuple(_lora_name(e) for e in ns.lora_paths),
            max_loras=ns.max_loras_per_batch,
            metrics_enabled=ns.enable_metrics,
            disaggregation_mode=ns.disaggregation_mode,
        )
    ns, _ = _vllm_parser().parse_known_args(_after_program(words, "vllm"))
    model = ns.model or ns.model_tag or "facebook/opt-125m"
    transfer = json.loads(ns.kv_transfer_config) if ns.kv_transfer_config else {}
    return EngineArgs(
        engine="vllm",
        model=model,
        served_model_names=tuple(ns.served_model_name or [model]),
        port=ns.port,
        lora_adapters=tuple(_lora_name(e) for e in ns.lora_modules),
        max_loras=ns.max_loras,
        lora_enabled=ns.enable_lora,
        kv_transfer_config=transfer if isinstance(transfer, dict) else {},
    )


def _after_program(words: Sequence[str], engine: str) -> list[str]:
    """Drop `vllm serve`, `python3 -m vllm.entrypoints.openai.api_server`, `python -m sglang...`."""
    rest = list(words)
    for index, word in enumerate(rest):
        if word == "serve" or word.startswith(f"{engine}."):
            return rest[index + 1 :]
        if word.startswith("-") and word not in {"-m", "-u"}:
            return rest[index:]
    if rest and engine in rest[0]:
        return rest[1:]
    return rest
