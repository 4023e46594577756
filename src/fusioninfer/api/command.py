"""An inference engine's command line, read and edited the way the engine and the shell see it.

Every builder and rule that needs a fact from a serving container's command (its port, model,
parallelism, connector, backend) reads it here, so that `sh -c "vllm serve m --port 9000"`,
`["vllm", "serve", "m", "--port=9000"]` and `args: ["--port", "9000"]` all say 9000 to every
reader. The forms understood:

- exec form: `command` + `args` (`vllm serve M ...`, `python3 -m vllm.entrypoints.openai.api_server
  ...`, `python3 -m sglang.launch_server ...`, or only `args` for the image's entrypoint);
- a shell script: `[sh, -c, SCRIPT]` (also `-ec`, `bash`, the script in `args` after
  `command: [sh, -c]`); the words are those of the script's *server* command: of a chain
  `pip install x && exec vllm serve m`, the part that starts the engine;
- `--flag value` and `--flag=value`, with `_` or `-` inside flag names (both engines accept
  either spelling).

Pure: containers are plain dicts (a pod template's); `set_flag` edits one in place.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

from fusioninfer.api.v1alpha1 import Engine

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
SHELL_C = re.compile(r"^-[a-zA-Z]*c[a-zA-Z]*$")
DEFAULT_PORTS = {Engine.VLLM: 8000, Engine.SGLANG: 30000}
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})


def argv(container: dict[str, Any]) -> list[str]:
    """`command` followed by `args`, as strings (a field that is not a list counts as absent)."""
    words: list[str] = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            words += [str(w) for w in value]
    return words


def shell_script(container: dict[str, Any]) -> tuple[str, int] | None:
    """Where the script of a `sh -c SCRIPT` start-up line is: (field, index), else None."""
    slots = [(key, i) for key in ("command", "args") if isinstance(container.get(key), list)
             for i in range(len(container[key]))]  # fmt: skip
    words = argv(container)
    if not words or words[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    for position in range(1, len(words)):
        word = words[position]
        if not word.startswith("-"):
            return None
        if SHELL_C.match(word):
            return slots[position + 1] if position + 1 < len(words) else None
    return None


def _segments(script: str) -> list[list[str]]:
    """The simple commands of a script: split at newlines, `&&`, `||`, `;`, `|`, `&`."""
    out: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        try:
            for token in lexer:
                if token in _SEPARATORS:
                    out.append(current)
                    current = []
                else:
                    current.append(token)
        except ValueError:  # an unbalanced quote: read the line as plain words
            current = line.split()
        out.append(current)
    return [s for s in out if s]


def starts_engine(words: Sequence[str]) -> bool:
    """Whether a simple command starts vLLM or SGLang (or the llm-d simulator)."""
    for i, word in enumerate(words):
        base = word.rsplit("/", 1)[-1]
        if base == "vllm" and i + 1 < len(words) and words[i + 1] == "serve":
            return True
        if word.startswith(("vllm.entrypoints", "sglang.launch_server")) or base == "llm-d-inference-sim":
            return True
    return False


def command_words(container: dict[str, Any]) -> list[str]:
    """The words of the server's command line: for `sh -c`, the script's command that starts the
    engine (the last one, else the last command of the script); else `command` + `args`."""
    at = shell_script(container)
    if at is None:
        return argv(container)
    segments = _segments(str(container[at[0]][at[1]]))
    engine = [s for s in segments if starts_engine(s)]
    chosen = engine[-1] if engine else (segments[-1] if segments else [])
    return chosen[1:] if chosen[:1] == ["exec"] else chosen


def flag_name(word: str) -> str:
    """`--max_model_len=5` -> `--max-model-len`."""
    if word.startswith("--"):
        return "--" + word[2:].split("=", 1)[0].replace("_", "-")
    return word.split("=", 1)[0]


def has_flag(words: Sequence[str], *names: str) -> bool:
    return any(flag_name(word) in names for word in words)


def flag_value(words: Sequence[str], *names: str) -> str | None:
    """The value of the first of `names` on the command line; "" when given without one."""
    for i, word in enumerate(words):
        if flag_name(word) in names:
            if "=" in word:
                return word.split("=", 1)[1]
            following = words[i + 1] if i + 1 < len(words) else ""
            return "" if following.startswith("--") else following
    return None


def container_flag(container: dict[str, Any], *names: str) -> str | None:
    """`flag_value` of the container's server command."""
    return flag_value(command_words(container), *names)


def _flag_pattern(flag: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\S){re.escape(flag)}(?:=(\S+)|\s+(\S+)|(?=\s|$))")


def set_flag(container: dict[str, Any], flag: str, value: str) -> bool:
    """Set `flag` to `value`: rewrite it where it is (exec form or script), else append it to `args`.

    Returns False when the container is a shell script without the flag: appending to a script
    could land after `&&` or inside a loop, so that is left to the user (the caller reports it).
    """
    script = shell_script(container)
    if script is None:
        for key in ("args", "command"):
            words = container.get(key)
            if not isinstance(words, list):
                continue
            for i, token in enumerate(words):
                name = flag_name(str(token))
                if name == flag and "=" not in str(token) and i + 1 < len(words):
                    words[i + 1] = value
                    return True
                if name == flag and "=" in str(token):
                    words[i] = f"{str(token).split('=', 1)[0]}={value}"
                    return True
        container.setdefault("args", []).extend([flag, value])
        return True
    field, index = script
    text = str(container[field][index])
    pattern = _flag_pattern(flag)
    if pattern.search(text) is None:
        return False
    container[field][index] = pattern.sub(f"{flag} {value}", text, count=1)
    return True


def engine_words(container: dict[str, Any]) -> str:
    """Image and command, lower-cased: what tells the engine apart."""
    return " ".join([str(container.get("image", "")), *argv(container)]).lower()


def detect_engine(container: dict[str, Any]) -> Engine | None:
    """The engine a container runs, judged by its image and command; None when unknown."""
    words = engine_words(container)
    if "sglang" in words:
        return Engine.SGLANG
    if "vllm" in words or "llm-d-inference-sim" in words:
        return Engine.VLLM
    return None


def listen_port(container: dict[str, Any], engine: Engine) -> int:
    """Where the server listens: its `--port` as the engine reads it, else the declared port
    (named `http`, else the first), else the engine's default."""
    value = container_flag(container, "--port")
    if value is not None and value.isdigit():
        return int(value)
    ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and "containerPort" in p]
    for port in ports:
        if port.get("name") == "http":
            return int(port["containerPort"])
    if ports:
        return int(ports[0]["containerPort"])
    return DEFAULT_PORTS[engine]


def first_container_of(containers: Sequence[Any], engine: Engine) -> tuple[int, dict[str, Any]] | None:
    """(index, container) of the first container that runs `engine`, or None."""
    for index, container in enumerate(containers):
        if isinstance(container, dict) and detect_engine(container) is engine:
            return index, container
    return None
