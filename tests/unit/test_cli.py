"""`fusioninfer validate | render | crd`, as a person uses them: exit codes, stdout, stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fusioninfer.api.crd import CRD_PATH
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.builders.kinds import sort_key
from fusioninfer.cli import app
from fusioninfer.kube.yaml import load_all

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MONOLITHIC = EXAMPLES / "monolithic.yaml"
PD = EXAMPLES / "pd-disaggregated.yaml"


def doc(name: str, ctype: str = "worker", namespace: str | None = None) -> str:
    text = textwrap.dedent(
        f"""\
        apiVersion: fusioninfer.io/v1alpha1
        kind: InferenceService
        metadata:
          name: {name}
        spec:
          roles:
            - name: inference
              componentType: {ctype}
              template:
                spec:
                  containers:
                    - name: vllm
                      image: vllm/vllm-openai:v0.11.0
        """
    )
    return text.replace("metadata:\n", f"metadata:\n  namespace: {namespace}\n") if namespace else text


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def expected_objects(*texts: str, capabilities: Capabilities | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for text in texts:
        for obj in load_all(text):
            if obj is not None:
                out += build(parse(obj), BuildOptions(capabilities=capabilities or Capabilities())).objects
    return out


# --- validate --------------------------------------------------------------------------------------
def test_validate_valid_file() -> None:
    result = run("validate", "-f", str(MONOLITHIC))
    assert result.exit_code == 0
    assert result.stdout == f"{MONOLITHIC} (document 1) qwen-inference: valid\n"
    assert result.stderr == ""


def test_validate_says_which_warnings_stop_the_engine_and_strict_fails_on_them() -> None:
    seed_pd = Path(__file__).resolve().parents[2] / "examples" / "pd-disaggregated.yaml"  # PyNcclConnector
    lenient = run("validate", "-f", str(seed_pd))
    assert lenient.exit_code == 0
    assert lenient.stdout.endswith("qwen-pd-service: valid (with warnings)\n")
    assert "warning (an error with --strict): " in lenient.stderr
    assert "DeprecatedKVConnector" in lenient.stderr
    strict = run("validate", "--strict", "-f", str(seed_pd))
    assert strict.exit_code == 1
    assert strict.stderr.count("error: ") == 2, "prefill and decode"
    assert "valid" not in strict.stdout
    assert run("validate", "--strict", "-f", str(MONOLITHIC)).exit_code == 0


def test_validate_several_files_and_documents(tmp_path: Path) -> None:
    multi = write(tmp_path, "multi.yaml", doc("a") + "---\n" + doc("b"))
    result = run("validate", "-f", multi, "--filename", str(PD))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{multi} (document 1) a: valid",
        f"{multi} (document 2) b: valid",
        f"{PD} (document 1) qwen-pd-service: valid (with warnings)",  # its removed PyNcclConnector
    ]


def test_validate_invalid_lists_every_error_with_document_and_path(tmp_path: Path) -> None:
    bad = doc("b", ctype="boss").replace("spec:\n", "spec:\n  extra: 1\n", 1)
    path = write(tmp_path, "svc.yaml", doc("a") + "---\n" + bad + "---\n" + doc("Bad-Name"))
    result = run("validate", "-f", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path} (document 2) b: spec.extra: unknown field",
        f'{path} (document 2) b: spec.roles[0].componentType: Unsupported value: "boss": supported values: '
        '"worker", "prefiller", "decoder", "router"',
        f'{path} (document 3) Bad-Name: metadata.name: Invalid value: "Bad-Name": must be a DNS-1035 label '
        "(lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), as it "
        "names Services",
    ]


def test_validate_reports_errors_of_every_file(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yaml", "a: [1\n")
    two = write(tmp_path, "two.yaml", doc("x", ctype="router"))
    result = run("validate", "-f", one, "-f", str(MONOLITHIC), "-f", two)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{one} (document 1): malformed YAML: line 2, column 1: expected ',' or ']', but got '<stream end>'",
        f"{two} (document 1) x: spec.roles: Required value: a service has exactly one worker role (monolithic) "
        "or prefiller and decoder roles (disaggregated)",
        f"{two} (document 1) x: spec.roles[0].template.spec.containers: Forbidden: the router's containers are "
        "generated; use endpointPicker to change the image or flags",
    ]


def test_validate_stdin() -> None:
    result = run("validate", "-f", "-", stdin=doc("from-stdin"))
    assert result.exit_code == 0
    assert result.stdout == "<stdin> (document 1) from-stdin: valid\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "<stdin> (document 1): no InferenceService found (empty input)"),
        ("a: 1\na: 2\n", '<stdin> (document 1): malformed YAML: line 2, column 1: duplicate key "a"'),
        ("- 1\n", "<stdin> (document 1): an InferenceService must be a mapping, got list"),
        ("kind: InferenceService\n", "<stdin> (document 1): apiVersion: Required value\n"),
    ],
    ids=["empty", "duplicate-key", "not-a-mapping", "no-api-version"],
)
def test_validate_bad_input_is_a_clear_error(text: str, message: str) -> None:
    result = run("validate", "-f", "-", stdin=text)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = run("validate", "-f", str(MONOLITHIC), "-f", missing)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read {missing}: No such file or directory\n"
    assert result.stdout == ""


def test_validate_directory(tmp_path: Path) -> None:
    result = run("validate", "-f", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read {tmp_path}: Is a directory\n"


def test_validate_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "secret.yaml", doc("a"))
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root reads any file: make the read fail as for a user

        def denied(self: Path, *args: Any, **kwargs: Any) -> str:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_text", denied)
    else:
        os.chmod(path, 0)
    result = run("validate", "-f", path)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read {path}: Permission denied\n"


def test_validate_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    result = run("validate", "-f", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"error: {path} is not UTF-8 text\n"


def test_validate_needs_a_file() -> None:
    assert run("validate").exit_code == 2


@pytest.mark.parametrize("name", ["a[/b].yaml", "a[bold]x.yaml"])
def test_file_names_are_printed_verbatim(tmp_path: Path, name: str) -> None:
    missing = str(tmp_path / name)
    result = run("validate", "-f", missing)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read {missing}: No such file or directory\n"


def test_user_text_in_messages_is_printed_verbatim(tmp_path: Path) -> None:
    # Neither markup nor emoji codes (`:smile:`) in a file name or a user's value are interpreted.
    bad = write(tmp_path, "b:smile:.yaml", doc("x").replace("componentType: worker", "componentType: '[/b]:+1:'"))
    result = run("validate", "-f", bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f'{bad} (document 1) x: spec.roles[0].componentType: Unsupported value: "[/b]:+1:"')


# --- render ----------------------------------------------------------------------------------------
def test_render_yaml_is_every_child_sorted() -> None:
    result = run("render", "-f", str(PD))
    assert result.exit_code == 0, result.stderr
    objects = list(load_all(result.stdout))
    assert objects == expected_objects(PD.read_text())
    assert [sort_key(o) for o in objects] == sorted(sort_key(o) for o in objects)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "qwen-pd-service-prefill"), ("Deployment", "qwen-pd-service-decode")} <= names


def test_render_objects_are_complete_and_ours() -> None:
    result = run("render", "-f", str(MONOLITHIC), "-f", str(PD))
    assert result.exit_code == 0, result.stderr
    for obj in load_all(result.stdout):
        assert obj["apiVersion"]
        assert obj["kind"]
        assert obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == "default"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "fusioninfer"
        assert obj["metadata"]["labels"]["fusioninfer.io/service"] in {"qwen-inference", "qwen-pd-service"}


def test_render_keeps_documents_in_input_order(tmp_path: Path) -> None:
    path = write(tmp_path, "two.yaml", doc("zz") + "---\n" + doc("aa"))
    result = run("render", "-f", path)
    services = [o["metadata"]["labels"]["fusioninfer.io/service"] for o in load_all(result.stdout)]
    assert services == ["zz", "aa"]


def test_render_yaml_keys_are_sorted() -> None:
    result = run("render", "-f", str(MONOLITHIC))
    assert result.stdout.startswith("apiVersion: ")
    assert result.stdout == yaml.safe_dump_all(list(load_all(result.stdout)), sort_keys=True, width=120)


def test_render_json_is_a_list() -> None:
    yaml_out = run("render", "-f", str(PD)).stdout
    result = run("render", "-f", str(PD), "-o", "json")
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    assert listing["apiVersion"] == "v1"
    assert listing["kind"] == "List"
    assert listing["items"] == list(load_all(yaml_out))


def test_render_is_deterministic() -> None:
    assert run("render", "-f", str(PD)).stdout == run("render", "-f", str(PD)).stdout


def test_render_stdin() -> None:
    result = run("render", "-f", "-", stdin=doc("piped"))
    assert result.exit_code == 0
    names = [o["metadata"]["name"] for o in load_all(result.stdout)]
    assert "piped-inference" in names


def test_render_invalid_is_exit_1_with_the_same_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", doc("x", ctype="router"))
    rendered = run("render", "-f", path)
    validated = run("validate", "-f", path)
    assert rendered.exit_code == 1
    assert rendered.stdout == ""
    assert rendered.stderr == validated.stderr != ""


def test_render_namespace_option_fills_only_missing_namespaces(tmp_path: Path) -> None:
    path = write(tmp_path, "ns.yaml", doc("a") + "---\n" + doc("b", namespace="fixed"))
    result = run("render", "-f", path, "-n", "team")
    namespaces = {
        o["metadata"]["labels"]["fusioninfer.io/service"]: o["metadata"]["namespace"] for o in load_all(result.stdout)
    }
    assert namespaces == {"a": "team", "b": "fixed"}


def test_render_without_unknown_api_is_a_usage_error() -> None:
    result = run("render", "-f", str(MONOLITHIC), "--without", "mesh")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: unknown API for --without: mesh (known: gateway_api, inference_objective, inference_pool, keda, lws, "
        "volcano)\n"
    )


@pytest.mark.parametrize("spelling", ["inference-pool", "inference_pool"])
def test_render_without_a_known_api(spelling: str) -> None:
    result = run("render", "-f", str(MONOLITHIC), "--without", spelling, "--without", "gateway-api")
    assert result.exit_code == 0
    objects = list(load_all(result.stdout))
    assert objects == expected_objects(
        MONOLITHIC.read_text(), capabilities=Capabilities(inference_pool=False, gateway_api=False)
    )
    assert "InferencePool" not in {o["kind"] for o in objects}
    assert "Deployment" in {o["kind"] for o in objects}
    assert result.stderr.startswith(f"warning: {MONOLITHIC} (document 1) qwen-inference: ")


def test_render_missing_file() -> None:
    result = run("render", "-f", "/nonexistent/x.yaml")
    assert result.exit_code == 1
    assert result.stderr == "error: cannot read /nonexistent/x.yaml: No such file or directory\n"


# --- crd -------------------------------------------------------------------------------------------
def test_crd_prints_the_checked_in_crd() -> None:
    result = run("crd")
    assert result.exit_code == 0
    assert result.stdout == (ROOT / CRD_PATH).read_text(encoding="utf-8")


# --- the installed console script ------------------------------------------------------------------
def console_script() -> Path:
    script = Path(sys.executable).parent / "fusioninfer"
    if not script.exists():
        pytest.skip("the fusioninfer console script is not installed next to this interpreter")
    return script


def test_console_script_validate_and_render_from_stdin() -> None:
    script = console_script()
    validate = subprocess.run(
        [str(script), "validate", "-f", str(MONOLITHIC)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (validate.returncode, validate.stdout) == (0, f"{MONOLITHIC} (document 1) qwen-inference: valid\n")
    render = subprocess.run(
        [str(script), "render", "-f", "-", "-o", "json"],
        input=doc("sub"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert render.returncode == 0, render.stderr
    assert json.loads(render.stdout)["items"] == expected_objects(doc("sub"))
    invalid = subprocess.run(
        [str(script), "validate", "-f", "-"], input="a: [1\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("<stdin> (document 1): malformed YAML: ")
    assert "Traceback" not in invalid.stderr
