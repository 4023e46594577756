"""The pod runner's reading of a pod: which process, with which args, env and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer_dev.localcluster.kwok import NodeSpec, free_node_subnets, node_manifest
from fusioninfer_dev.localcluster.podrunner import (
    config_map_mounts,
    container_role,
    in_block,
    picker_argv,
    resolve_env,
    secure_serving,
)


@pytest.mark.parametrize(
    ("image", "role"),
    [
        ("registry.k8s.io/gateway-api-inference-extension/epp:v1.2.1", "gie-picker"),
        ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1", "llmd-picker"),
        ("vllm/vllm-openai:v0.11.0", "model-server"),
        ("lmsysorg/sglang:v0.5.3", "model-server"),
        ("ghcr.io/llm-d/llm-d-inference-sim:v0.5.0", "model-server"),
        ("busybox", ""),
    ],
)
def test_what_runs_for_an_image(image: str, role: str) -> None:
    assert container_role(image) == role


def rendered_picker_pod() -> tuple[dict[str, Any], dict[str, Any]]:
    """The picker pod as the operator's Deployment would create it (template + name + IP)."""
    spec = InferenceServiceWrapper().namespace("ns").router("prefix-cache").worker(args=None).obj()
    objects = build(parse(spec), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "svc-epp")
    template = deployment["spec"]["template"]
    pod = {
        "metadata": {"name": "svc-epp-abc", "namespace": "ns", **template["metadata"]},
        "spec": template["spec"],
        "status": {"podIP": "127.9.1.4", "phase": "Running"},
    }
    return pod, template["spec"]["containers"][0]


def test_the_picker_runs_the_rendered_args_with_its_config_file_and_own_ports(tmp_path: Path) -> None:
    pod, container = rendered_picker_pod()
    mounts = config_map_mounts(container, pod)
    assert mounts == {"/config": "svc-epp-config"}
    argv = picker_argv(
        Path("/bin/epp"),
        [*container["args"], "--grpc-port", "9002"],
        mounts={"/config": tmp_path},
        kubeconfig=Path("/k"),
        ports=(1, 2, 3),
    )
    assert argv[0] == "/bin/epp"
    assert f"--config-file={tmp_path}/config.yaml" in argv
    assert "--pool-name=svc-pool" in argv
    assert argv[-4:] == ["--kubeconfig=/k", "--grpc-port=1", "--grpc-health-port=2", "--metrics-port=3"]
    assert "9002" not in argv, "the pod's own port flag is replaced, not doubled"
    assert resolve_env(container, pod) == {"NAMESPACE": "ns", "POD_NAME": "svc-epp-abc"}
    assert secure_serving(container["args"])
    assert not secure_serving(["--secure-serving=false"])


def test_pod_addresses_come_from_free_subnets_of_the_block() -> None:
    assert free_node_subnets("127.50.0.0/16", [], 2) == ["127.50.1.0/24", "127.50.2.0/24"]
    assert free_node_subnets("127.50.0.0/16", ["127.50.1.0/24"], 1) == ["127.50.2.0/24"]
    with pytest.raises(RuntimeError, match="free /24s left"):
        free_node_subnets("127.50.0.0/23", [], 2)
    node = node_manifest("n", NodeSpec(), pool="p", pod_cidr="127.50.3.0/24")
    assert node["spec"]["podCIDR"] == "127.50.3.0/24"
    assert "podCIDR" not in node_manifest("n", NodeSpec(), pool="p")["spec"]
    assert in_block("127.50.3.7", "127.50.0.0/16")
    assert not in_block("10.244.0.5", "127.50.0.0/16")
    assert not in_block("", "127.50.0.0/16")
