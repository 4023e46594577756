"""Every serving command the operator renders parses with the engine's own argument parser.

The parsers are those of the engine releases the examples pin (vLLM 0.11.0, SGLang 0.5.3),
dumped from their PyPI wheels into `tests/fixtures/engine-flags/` by `hack/engine-flags/extract.py`
(option strings, value counts, choices, int/float types) and rebuilt here as argparse parsers.
A rendered command with a flag the release does not have, a missing value, a bad choice or a
non-number where it wants one fails, as the engine would at start-up. An image whose version
has no fixture fails too: add the fixture (docs/engines.md) rather than skip.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fusioninfer.api.command import command_words, detect_engine, shell_script, starts_engine
from fusioninfer.api.images import dotted, image_version
from fusioninfer.api.v1alpha1 import Engine
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.kube.yaml import load_all

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "engine-flags"
# What the kubelet substitutes before the engine sees the command (LWS's injected env).
ENV = {"LWS_WORKER_INDEX": "1", "LWS_LEADER_ADDRESS": "svc-0.svc.ns", "LWS_GROUP_SIZE": "2"}
ENGINE_IMAGES = {Engine.VLLM: "vllm/vllm-openai", Engine.SGLANG: "lmsysorg/sglang"}


class ParseFailed(Exception):
    pass


class StrictParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit; the test wants the reason
        raise ParseFailed(message)


@cache
def fixture(engine: str, version: str) -> dict[str, Any]:
    path = FIXTURES / f"{engine}-{version}.json"
    assert path.exists(), f"no argument-parser fixture for {engine} {version}: run hack/engine-flags/extract.py"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def rebuilt_parser(spec: dict[str, Any]) -> StrictParser:
    parser = StrictParser(add_help=False, allow_abbrev=bool(spec["allow_abbrev"]))
    types = {"int": int, "float": float}
    for positional in spec["positionals"]:
        parser.add_argument(positional["dest"], nargs=positional.get("nargs"))
    for option in spec["options"]:
        kwargs: dict[str, Any] = {"dest": option["dest"]}
        if option["kind"] in ("switch", "boolean-optional"):
            kwargs["action"] = "store_true"
        else:
            if "nargs" in option:
                kwargs["nargs"] = option["nargs"]
            if "choices" in option:
                kwargs["choices"] = option["choices"]
            if "type" in option:
                kwargs["type"] = types[option["type"]]
        parser.add_argument(*option["flags"], **kwargs)
    return parser


def engine_args(words: list[str], engine: Engine) -> list[str]:
    """The words after the program (`vllm serve`, `python3 -m <module>`), `$(VAR)` expanded."""
    for index, word in enumerate(words):
        if word == "serve" or word.startswith(("vllm.entrypoints", "sglang.launch_server")):
            words = words[index + 1 :]
            break
    expanded = [re.sub(r"\$\((\w+)\)", lambda m: ENV.get(m.group(1), "x"), w) for w in words]
    if fixture_name(engine) == "vllm":
        expanded = [("--" + w[2:].split("=", 1)[0].replace("_", "-") + w[2:][len(w[2:].split("=", 1)[0]) :])
                    if w.startswith("--") else w for w in expanded]  # fmt: skip
    return expanded


def fixture_name(engine: Engine) -> str:
    return "sglang" if engine is Engine.SGLANG else "vllm"


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    from tests.unit.builders.test_router_golden import INLINE

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for index, doc in enumerate(load_all(path.read_text())):
            if isinstance(doc, dict):
                yield f"{path.name}#{index}", doc
    yield from sorted(INLINE.items())


def pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "Deployment":
        yield "template", spec["template"]
    elif obj["kind"] == "LeaderWorkerSet":
        lwt = spec["leaderWorkerTemplate"]
        for part in ("leaderTemplate", "workerTemplate"):
            if part in lwt:
                yield part, lwt[part]


def rendered_commands() -> dict[str, tuple[Engine, str, list[str]]]:
    """id -> (engine, image, server words) for every engine container of every rendered pod."""
    out: dict[str, tuple[Engine, str, list[str]]] = {}
    for name, doc in documents():
        doc = {**doc, "metadata": {**doc.get("metadata", {}), "namespace": "ns"}}
        objects = build(parse(doc), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
        for obj in objects:
            for part, template in pod_templates(obj):
                for container in template["spec"].get("containers", []):
                    engine = detect_engine(container)
                    image = str(container.get("image", ""))
                    if engine is None or not image.startswith(ENGINE_IMAGES[engine]):
                        continue  # a sidecar, the simulator, or not an engine
                    words = command_words(container)
                    if shell_script(container) is not None and not starts_engine(words):
                        continue  # a Ray worker: it joins the head, the engine runs on the leader
                    out[f"{name}:{obj['metadata']['name']}:{part}:{container['name']}"] = (engine, image, words)
    return out


COMMANDS = rendered_commands()


def test_every_engine_release_the_examples_pin_has_its_parser() -> None:
    versions = {(fixture_name(e), dotted(image_version(i) or ())) for e, i, _ in COMMANDS.values()}
    assert versions == {("vllm", "0.11.0"), ("sglang", "0.5.3")}
    assert len(COMMANDS) >= 10, sorted(COMMANDS)


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_the_rendered_command_parses_with_the_engines_own_parser(case: str) -> None:
    engine, image, words = COMMANDS[case]
    version = image_version(image)
    assert version is not None, f"{image}: no version tag"
    parser = rebuilt_parser(fixture(fixture_name(engine), dotted(version)))
    try:
        parser.parse_args(engine_args(words, engine))
    except ParseFailed as exc:
        pytest.fail(f"{image} would exit at start-up: {exc}\n  command: {' '.join(words)}")


@pytest.mark.parametrize(
    ("engine", "words", "reason"),
    [
        (Engine.VLLM, ["vllm", "serve", "m", "--nnodes", "2"], "unrecognized arguments: --nnodes"),
        (Engine.VLLM, ["vllm", "serve", "m", "--port", "http"], "invalid int value"),
        (Engine.VLLM, ["vllm", "serve", "m", "--tensor-parallel-size"], "expected one argument"),
        (Engine.SGLANG, ["python3", "-m", "sglang.launch_server", "--disaggregation-mode", "both"], "invalid choice"),
        (Engine.SGLANG, ["python3", "-m", "sglang.launch_server", "--model", "m", "--no-such"], "unrecognized"),
    ],
)
def test_the_rebuilt_parsers_refuse_what_the_engines_refuse(engine: Engine, words: list[str], reason: str) -> None:
    """The check above can fail: what vLLM 0.11.0 / SGLang 0.5.3 exit on, these parsers refuse."""
    version = "0.11.0" if engine is Engine.VLLM else "0.5.3"
    with pytest.raises(ParseFailed, match=reason):
        rebuilt_parser(fixture(fixture_name(engine), version)).parse_args(engine_args(words, engine))
