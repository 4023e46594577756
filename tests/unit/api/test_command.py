"""One reading of an engine's command line for every builder and rule (api/command.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusioninfer.api.command import command_words, container_flag, listen_port, set_flag, shell_script
from fusioninfer.api.v1alpha1 import Engine

FORMS: dict[str, dict[str, Any]] = {
    "vllm-serve": {"command": ["vllm", "serve", "m"], "args": ["--port", "9000", "--tensor-parallel-size=4"]},
    "entrypoint-args": {"args": ["--model", "m", "--port=9000", "--tensor_parallel_size", "4"]},
    "api-server": {"command": ["python3", "-m", "vllm.entrypoints.openai.api_server", "--port", "9000", "-tp", "4"]},
    "sh-c": {"command": ["sh", "-c", "vllm serve m --port 9000 --tensor-parallel-size 4"]},
    "bash-ec-args": {"command": ["/bin/bash", "-ec"], "args": ["pip list && exec vllm serve m --port=9000 -tp 4"]},
    "chain-with-other-ports": {
        "command": ["sh", "-c", "ray start --head --port=6379 && vllm serve m --port 9000 -tp 4 # the server"]
    },
    "sglang": {
        "command": ["python3", "-m", "sglang.launch_server", "--model-path", "m", "--port", "9000", "--tp", "4"]
    },
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_says_the_same_port_and_parallelism(form: str) -> None:
    container = FORMS[form]
    engine = Engine.SGLANG if form == "sglang" else Engine.VLLM
    assert listen_port(container, engine) == 9000
    assert container_flag(container, "--tensor-parallel-size", "-tp", "--tp") == "4"


def test_a_script_reads_the_command_that_starts_the_engine() -> None:
    container = FORMS["chain-with-other-ports"]
    assert command_words(container)[:3] == ["vllm", "serve", "m"]
    assert shell_script(container) == ("command", 2)
    assert shell_script({"command": ["vllm", "serve"]}) is None


def test_a_flag_without_value_is_empty_not_the_next_flag() -> None:
    assert container_flag({"args": ["--enable-lora", "--max-loras", "2"]}, "--enable-lora") == ""
    assert container_flag({"args": ["--max-loras", "2"]}, "--enable-lora") is None


def test_set_flag_rewrites_where_the_flag_is_and_reports_scripts_it_cannot_extend() -> None:
    exec_form = copy.deepcopy(FORMS["vllm-serve"])
    assert set_flag(exec_form, "--port", "8200")
    assert exec_form["args"][:2] == ["--port", "8200"]
    equals = copy.deepcopy(FORMS["entrypoint-args"])
    assert set_flag(equals, "--port", "8200")
    assert "--port=8200" in equals["args"]
    script = copy.deepcopy(FORMS["sh-c"])
    assert set_flag(script, "--port", "8200")
    assert script["command"][2] == "vllm serve m --port 8200 --tensor-parallel-size 4"
    without = {"command": ["sh", "-c", "vllm serve m"]}
    assert not set_flag(without, "--port", "8200"), "appending to a script could land after &&"
    assert without == {"command": ["sh", "-c", "vllm serve m"]}
    absent = {"args": ["--model", "m"]}
    assert set_flag(absent, "--port", "8200")
    assert absent["args"] == ["--model", "m", "--port", "8200"]


flag_names = st.sampled_from(["--port", "--max-model-len", "--served-model-name", "--kv-transfer-config"])
values = st.from_regex(r"[A-Za-z0-9/{}:\",._-]{1,20}", fullmatch=True).filter(lambda v: not v.startswith("-"))


@given(flag=flag_names, value=values, equals=st.booleans(), script=st.booleans())
def test_what_set_flag_writes_is_what_every_reader_reads(flag: str, value: str, equals: bool, script: bool) -> None:
    words = ["vllm", "serve", "m", f"{flag}=old" if equals else flag, *([] if equals else ["old"])]
    container: dict[str, Any] = (
        {"command": ["sh", "-c", " ".join(words)]} if script else {"command": words[:2], "args": words[2:]}
    )
    quoted = value if not script else value.replace('"', "")
    if not quoted:
        return
    assert set_flag(container, flag, quoted)
    assert container_flag(container, flag) == quoted
