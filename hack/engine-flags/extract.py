"""Dump the real argument parsers of vLLM and SGLang into the fixture the engine-command tests use.

Run it with the Python of a throwaway environment holding the engine wheels the examples pin
(both install on a CPU-only machine: only the parsers are built, no model is loaded):

    python3 -m venv /tmp/engines
    /tmp/engines/bin/pip install vllm==0.11.0                  # ~8 GB with torch, ~10 min
    /tmp/engines/bin/pip install --no-deps sglang==0.5.3 ipython
    /tmp/engines/bin/python hack/engine-flags/extract.py tests/fixtures/engine-flags

For every option the parser knows it records the option strings, whether it takes a value
(and how many), its choices, and a value type where it is a plain int or float, plus the
positional arguments: what `tests/unit/builders/test_engine_commands.py` rebuilds into an
argparse parser to parse every serving command the operator renders. It does not run in CI:
the fixtures are checked in with the version they came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

VALUE_TYPES = {int: "int", float: "float"}


def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    positionals: list[dict[str, Any]] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        entry: dict[str, Any] = {"dest": action.dest}
        if action.nargs is not None:
            entry["nargs"] = action.nargs
        if action.choices is not None:
            entry["choices"] = sorted(str(c) for c in action.choices)
        if action.type in VALUE_TYPES:
            entry["type"] = VALUE_TYPES[action.type]
        if not action.option_strings:
            positionals.append(entry)
            continue
        entry["flags"] = list(action.option_strings)
        if isinstance(action, argparse.BooleanOptionalAction):
            entry["kind"] = "boolean-optional"
        elif action.nargs == 0:
            entry["kind"] = "switch"
        else:
            entry["kind"] = "value"
        options.append(entry)
    return {
        "allow_abbrev": parser.allow_abbrev,
        "positionals": positionals,
        "options": sorted(options, key=lambda o: o["flags"][0]),
    }


def vllm() -> dict[str, Any]:
    import vllm as package
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform

    platforms._current_platform = CpuPlatform()  # no GPU here: the defaults need a device type
    from vllm.entrypoints.openai.cli_args import make_arg_parser
    from vllm.utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    return {
        "engine": "vllm",
        "version": package.__version__,
        "source": "the vllm wheel from PyPI: vllm.entrypoints.openai.cli_args.make_arg_parser (what `vllm serve` "
        "and the OpenAI API server parse)",
        "underscores_in_flags": True,  # FlexibleArgumentParser turns --max_model_len into --max-model-len
        **describe(parser),
    }


def sglang() -> dict[str, Any]:
    import sglang as package
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return {
        "engine": "sglang",
        "version": package.__version__,
        "source": "the sglang wheel from PyPI: sglang.srt.server_args.ServerArgs.add_cli_args (what "
        "`python -m sglang.launch_server` parses)",
        "underscores_in_flags": False,
        **describe(parser),
    }


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for dump in (vllm(), sglang()):
        path = out / f"{dump['engine']}-{dump['version']}.json"
        path.write_text(json.dumps(dump, indent=1, sort_keys=True) + "\n")
        print(f"{path}: {len(dump['options'])} options")


if __name__ == "__main__":
    main()
