"""Golden files: the routing objects and P/D-decorated pod templates of every routed example.

Covers every document in `examples/*.yaml` that has a router role, plus a few inline services
for what no example shows (seed 003's weighted scorers and Gateway, SGLang). A golden file
holds the router builder's objects, `pd.decorate`'s output for each serving pod part, and the
notices, so a reviewer sees the full effect of a change as a YAML diff.

Regenerate after an intended change, then review the diff:

    FUSIONINFER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/builders/test_router_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fusioninfer.api.documents import load_documents
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import pd, router
from fusioninfer.builders.context import BuildContext
from fusioninfer.builders.podparts import PodPart, base_pod_template

ROOT = Path(__file__).resolve().parents[3]
GOLDEN_DIR = Path(__file__).with_name("golden") / "router"
UPDATE = os.environ.get("FUSIONINFER_UPDATE_GOLDEN") == "1"

VLLM = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B"]}

INLINE: dict[str, dict[str, Any]] = {
    # Seed 003: weighted scorers (load-aware needs the llm-d image) and an operator-made Gateway.
    "inline-seed003-weighted-gateway": {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "qwen-inference", "namespace": "llm"},
        "spec": {
            "roles": [
                {
                    "name": "router",
                    "componentType": "router",
                    "endpointPicker": {
                        "plugins": {
                            "loadAwareScorer": {"enabled": True, "weight": 1.0},
                            "prefixCacheScorer": {"enabled": True, "weight": 2.0},
                            "kvCacheUtilizationScorer": {"enabled": True, "weight": 1.0},
                        }
                    },
                    "gateway": {"className": "kgateway", "listenerPort": 80, "serviceType": "LoadBalancer"},
                },
                {
                    "name": "inference",
                    "componentType": "worker",
                    "replicas": 2,
                    "template": {"spec": {"containers": [VLLM]}},
                },
            ]
        },
    },
    "inline-sglang-pd": {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "sgl", "namespace": "llm"},
        "spec": {
            "roles": [
                {
                    "name": "router",
                    "componentType": "router",
                    "strategy": "pd-disaggregation",
                    "httproute": {"parentRefs": [{"name": "inference-gateway"}]},
                },
                {
                    "name": "prefill",
                    "componentType": "prefiller",
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "sglang",
                                    "image": "lmsysorg/sglang:v0.5.3",
                                    "command": ["python3", "-m", "sglang.launch_server"],
                                    "args": ["--model-path", "Qwen/Qwen3-8B", "--disaggregation-mode", "prefill"],
                                }
                            ]
                        }
                    },
                },
                {
                    "name": "decode",
                    "componentType": "decoder",
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "sglang",
                                    "image": "lmsysorg/sglang:v0.5.3",
                                    "command": ["python3", "-m", "sglang.launch_server"],
                                    "args": ["--model-path", "Qwen/Qwen3-8B", "--disaggregation-mode", "decode"],
                                }
                            ]
                        }
                    },
                },
            ]
        },
    },
}


def _cases() -> dict[str, InferenceService]:
    cases: dict[str, InferenceService] = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in load_documents(path.read_text(), str(path)):
            assert doc.service is not None, f"{path}: {doc.errors}"
            if doc.service.router is not None:
                cases[f"{path.stem}-{doc.index}" if doc.index else path.stem] = doc.service
    for name, obj in INLINE.items():
        cases[name] = parse(obj)
    return cases


CASES = _cases()


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(isvc: InferenceService) -> str:
    ctx = BuildContext(isvc)
    objects = router.build(ctx)
    templates: dict[str, Any] = {}
    for role in isvc.serving_roles:
        parts = [PodPart.LEADER, PodPart.WORKER] if role.is_multinode else [PodPart.SINGLE]
        for part in parts:
            templates[f"{role.name}/{part.value}"] = pd.decorate(ctx, role, base_pod_template(ctx, role), part)
    notices = [{"condition": n.condition, "reason": n.reason, "message": n.message} for n in ctx.notices]
    document = {"objects": objects, "podTemplates": templates, "notices": notices}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)


def test_examples_with_a_router_are_covered() -> None:
    assert {"monolithic", "pd-disaggregated", "story2-pd-volcano"} <= set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    golden = GOLDEN_DIR / f"{case}.yaml"
    actual = render(CASES[case])
    if UPDATE:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    if not golden.exists():
        pytest.fail(f"no golden file {golden}; generate it with FUSIONINFER_UPDATE_GOLDEN=1 (see module docstring)")
    assert actual == golden.read_text(), f"{case} changed; if intended, regenerate (see module docstring)"


def test_no_stale_golden_files() -> None:
    stale = sorted(p.stem for p in GOLDEN_DIR.glob("*.yaml")) if GOLDEN_DIR.is_dir() else []
    assert [s for s in stale if s not in CASES] == []
