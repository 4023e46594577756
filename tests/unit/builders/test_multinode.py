"""Multi-node roles: the LeaderWorkerSet and the engine-aware leader/worker commands."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.wrappers import InferenceServiceWrapper, engine_container

from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, BuildResult, Capabilities, Notice, build
from fusioninfer.builders import multinode as mn

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RAY_WORKER = (
    "until ray start --address=$(LWS_LEADER_ADDRESS):6379 --block; do echo waiting for the Ray head; sleep 5; done"
)
LWS_INSTALL = "kubectl create -f https://github.com/kubernetes-sigs/lws/releases/download/v0.7.0/manifests.yaml"


def example(name: str) -> InferenceService:
    return parse(yaml.safe_load((EXAMPLES / name).read_text()))


Service = InferenceService | InferenceServiceWrapper


def render(service: Service, **capabilities: bool) -> BuildResult:
    """Build `service` (parsed first when it is a wrapper) with these capabilities."""
    isvc = parse(service.obj()) if isinstance(service, InferenceServiceWrapper) else service
    return build(isvc, BuildOptions(capabilities=Capabilities(**capabilities)))


def objects(result: BuildResult, kind: str) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == kind]


def lws(isvc: Service, name: str = "svc-inference") -> dict[str, Any]:
    found = [o for o in objects(render(isvc), "LeaderWorkerSet") if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one LeaderWorkerSet {name}"
    return found[0]


def container_in(template: dict[str, Any], name: str = "engine") -> dict[str, Any]:
    return next(c for c in template["spec"]["containers"] if c["name"] == name)


def leader_and_worker(isvc: Service, name: str = "engine") -> tuple[dict[str, Any], dict[str, Any]]:
    lwt = lws(isvc)["spec"]["leaderWorkerTemplate"]
    return container_in(lwt["leaderTemplate"], name), container_in(lwt["workerTemplate"], name)


def script(container: dict[str, Any]) -> str:
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert len(container["command"]) == 3
    assert "args" not in container
    return str(container["command"][2])


VLLM = engine_container(name="engine", args=["--model", "Qwen/Qwen3-8B", "--tensor-parallel-size", "8"])
# The mp backend across nodes needs vLLM 0.11.1 (`--nnodes` & co.); 0.11.0 is refused (test_engine_rules).
VLLM_MP = {**VLLM, "image": "vllm/vllm-openai:v0.11.1"}
SGLANG = {
    "name": "engine",
    "image": "lmsysorg/sglang:v0.5.5",
    "command": ["python3", "-m", "sglang.launch_server"],
    "args": ["--model-path", "Qwen/Qwen3-8B", "--tp", "16", "--port", "30000"],
}


# --- the LeaderWorkerSet -----------------------------------------------------------------------
def test_seed_multinode_example_is_one_lws_of_two_groups_of_four() -> None:
    result = render(example("multinode.yaml"))
    assert objects(result, "Deployment") == []
    [obj] = objects(result, "LeaderWorkerSet")
    assert obj["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert obj["metadata"]["name"] == "deepseek-r1-inference"
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/instance": "deepseek-r1",
        "app.kubernetes.io/managed-by": "fusioninfer",
        "fusioninfer.io/component-type": "worker",
        "fusioninfer.io/role-name": "inference",
        "fusioninfer.io/service": "deepseek-r1",
    }
    spec = obj["spec"]
    assert spec["replicas"] == 2
    assert spec["startupPolicy"] == "LeaderCreated"
    assert spec["networkConfig"] == {"subdomainPolicy": "Shared"}
    assert spec["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0, "partition": 0},
    }
    lwt = spec["leaderWorkerTemplate"]
    assert lwt["size"] == 4
    assert lwt["restartPolicy"] == "RecreateGroupOnPodRestart"
    for part in ("leaderTemplate", "workerTemplate"):
        labels = lwt[part]["metadata"]["labels"]
        assert labels["fusioninfer.io/service"] == "deepseek-r1"
        assert labels["fusioninfer.io/role-name"] == "inference"

    leader = container_in(lwt["leaderTemplate"], "vllm")
    worker = container_in(lwt["workerTemplate"], "vllm")
    assert script(leader) == (
        "ray start --head --port=6379 && exec vllm serve --model deepseek-ai/DeepSeek-R1 "
        "--tensor-parallel-size 32 --distributed-executor-backend ray"
    )
    assert script(worker) == RAY_WORKER
    assert leader["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000, "scheme": "HTTP"}
    assert "readinessProbe" not in worker
    # Resources stay on both: every node needs its GPUs.
    assert leader["resources"] == worker["resources"] == {"limits": {"nvidia.com/gpu": "8"}}


def test_story1_deprecated_alias_still_makes_a_two_pod_group() -> None:
    obj = lws(example("story1-monolithic-multinode.yaml"), "qwen-inference-multinode-inference")
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["leaderWorkerTemplate"]["size"] == 2


def test_pd_multinode_example_has_one_lws_per_role() -> None:
    result = render(example("story2-pd-volcano.yaml"))
    by_name = {o["metadata"]["name"]: o for o in objects(result, "LeaderWorkerSet")}
    assert sorted(by_name) == ["qwen-inference-service-decode-servers", "qwen-inference-service-prefill-servers"]
    prefill = by_name["qwen-inference-service-prefill-servers"]["spec"]
    decode = by_name["qwen-inference-service-decode-servers"]["spec"]
    assert (prefill["replicas"], prefill["leaderWorkerTemplate"]["size"]) == (2, 4)
    assert (decode["replicas"], decode["leaderWorkerTemplate"]["size"]) == (1, 2)
    assert [o["metadata"]["name"] for o in objects(result, "Deployment")] == ["qwen-inference-service-epp"]
    for spec in (prefill, decode):
        lwt = spec["leaderWorkerTemplate"]
        leader = container_in(lwt["leaderTemplate"], "vllm")
        worker = container_in(lwt["workerTemplate"], "vllm")
        assert script(leader).startswith("ray start --head --port=6379 && exec vllm serve --model Qwen/Qwen3-8B ")
        assert script(leader).endswith(" --distributed-executor-backend ray")
        assert script(worker) == RAY_WORKER
        # The probe targets the port the engine itself listens on (P/D may move it behind a sidecar).
        words = shlex.split(script(leader))
        port = int(words[words.index("--port") + 1]) if "--port" in words else 8000
        assert leader["readinessProbe"]["httpGet"]["port"] == port


def test_rollout_budget_and_partition_come_from_the_role() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(
            replicas=4,
            multinode={"nodeCount": 2},
            container=VLLM,
            rollout={"maxSurge": 1, "maxUnavailable": "50%", "partition": 2},
        )
        .obj()
    )
    assert lws(isvc)["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {
        "maxUnavailable": "50%",
        "maxSurge": 1,
        "partition": 2,
    }


def test_replicas_track_the_role_including_zero() -> None:
    assert (
        lws(InferenceServiceWrapper().namespace("ns").worker(replicas=3, multinode={"nodeCount": 2}, container=VLLM))[
            "spec"
        ]["replicas"]
        == 3
    )
    assert (
        lws(InferenceServiceWrapper().namespace("ns").worker(replicas=0, multinode={"nodeCount": 2}, container=VLLM))[
            "spec"
        ]["replicas"]
        == 0
    )


def test_without_lws_there_is_no_workload_and_a_notice_with_the_install_command() -> None:
    result = render(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=VLLM),
        lws=False,
    )
    assert objects(result, "LeaderWorkerSet") == []
    assert objects(result, "Deployment") == []  # a single-node fallback would not fit the model
    assert result.notices == [
        Notice(
            "PrerequisitesMet",
            "MissingAPIs",
            "LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) is not installed, so the multi-node role(s) "
            f"'inference' are not deployed; install LeaderWorkerSet v0.7.0: {LWS_INSTALL}",
        )
    ]


def test_single_node_roles_get_no_lws_and_no_notice_without_lws() -> None:
    result = render(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 1}, container=VLLM),
        lws=False,
    )
    assert objects(result, "LeaderWorkerSet") == []
    assert len(objects(result, "Deployment")) == 1
    assert result.notices == []


def test_build_is_deterministic_and_leaves_the_spec_untouched() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(
            multinode={"nodeCount": 2},
            container={**VLLM, "readinessProbe": {"httpGet": {"path": "/v1/models", "port": 8000}}},
        )
        .obj()
    )
    before = copy.deepcopy(isvc.model_dump(by_alias=True))
    assert render(isvc).objects == render(isvc).objects
    assert isvc.model_dump(by_alias=True) == before


# --- vLLM with Ray (the default) ---------------------------------------------------------------
def test_ray_leader_without_command_uses_the_image_entrypoint_vllm_serve() -> None:
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=VLLM)
    )
    assert script(leader) == (
        "ray start --head --port=6379 && exec vllm serve --model Qwen/Qwen3-8B --tensor-parallel-size 8 "
        "--distributed-executor-backend ray"
    )
    assert script(worker) == RAY_WORKER
    assert worker["image"] == leader["image"] == "vllm/vllm-openai:v0.11.0"


def test_ray_leader_keeps_the_users_command() -> None:
    container = {
        "name": "engine",
        "image": "my/vllm:1",
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": ["--model", "M"],
    }
    leader, _ = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=container)
    )
    assert script(leader) == (
        "ray start --head --port=6379 && exec python3 -m vllm.entrypoints.openai.api_server --model M "
        "--distributed-executor-backend ray"
    )


@pytest.mark.parametrize(
    "given",
    [
        ["--distributed-executor-backend", "ray"],
        ["--distributed-executor-backend=ray"],
        ["--distributed_executor_backend", "ray"],
    ],
)
def test_ray_backend_flag_is_never_duplicated(given: list[str]) -> None:
    leader, _ = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2}, container={**VLLM, "args": [*VLLM["args"], *given]})
    )
    words = shlex.split(script(leader).split(" && exec ", 1)[1])
    assert sum(w.replace("_", "-").startswith("--distributed-executor-backend") for w in words) == 1


def test_ray_leader_quotes_arguments_so_the_shell_passes_them_unchanged() -> None:
    kv = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    args = ["--model", "M", "--kv-transfer-config", kv, "--chat-template", "it's $HOME; rm -rf /"]
    leader, _ = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container={**VLLM, "args": args})
    )
    head, served = script(leader).split(" && exec ", 1)
    assert head == "ray start --head --port=6379"
    assert shlex.split(served) == ["vllm", "serve", *args, "--distributed-executor-backend", "ray"]


def test_ray_with_a_shell_script_starts_the_head_before_it() -> None:
    container = engine_container(name="engine", command=["/bin/bash", "-c"], args=["vllm serve M --tp 8"])
    result = render(InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=container))
    lwt = objects(result, "LeaderWorkerSet")[0]["spec"]["leaderWorkerTemplate"]
    leader = container_in(lwt["leaderTemplate"])
    assert leader["command"] == ["/bin/bash", "-c"]
    assert leader["args"] == ["ray start --head --port=6379 && vllm serve M --tp 8"]
    assert script(container_in(lwt["workerTemplate"])) == RAY_WORKER
    assert result.notices == []


def test_explicit_ray_backend_field() -> None:
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2, "backend": "ray"}, container=VLLM)
    )
    assert script(leader).endswith("--distributed-executor-backend ray")
    assert script(worker) == RAY_WORKER


# --- vLLM with the multiprocessing backend ------------------------------------------------------
MP_FLAGS = [
    "--distributed-executor-backend",
    "mp",
    "--nnodes",
    "4",
    "--node-rank",
    "$(LWS_WORKER_INDEX)",
    "--master-addr",
    "$(LWS_LEADER_ADDRESS)",
    "--master-port",
    "29500",
]


def test_mp_backend_runs_vllm_on_every_node_with_headless_workers() -> None:
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 4, "backend": "mp"}, container=VLLM_MP)
    )
    assert "command" not in leader  # the image's `vllm serve` entrypoint is kept
    assert leader["args"] == [*VLLM_MP["args"], *MP_FLAGS]
    assert worker["args"] == [*VLLM_MP["args"], *MP_FLAGS, "--headless"]
    assert leader["readinessProbe"]["httpGet"]["port"] == 8000
    assert "readinessProbe" not in worker


def test_mp_backend_chosen_by_the_users_own_flag() -> None:
    args = [*VLLM_MP["args"], "--distributed-executor-backend", "mp"]
    leader, worker = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 4}, container={**VLLM_MP, "args": args})
    )
    assert leader["args"] == [*args, *MP_FLAGS[2:]]
    assert worker["args"] == [*args, *MP_FLAGS[2:], "--headless"]


def test_mp_flags_the_user_wrote_are_kept_and_not_duplicated() -> None:
    args = ["--model", "M", "-n", "4", "--master-port=12345", "--headless"]
    leader, worker = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 4, "backend": "mp"}, container={**VLLM_MP, "args": args})
    )
    added = [
        "--distributed-executor-backend",
        "mp",
        "--node-rank",
        "$(LWS_WORKER_INDEX)",
        "--master-addr",
        "$(LWS_LEADER_ADDRESS)",
    ]
    assert leader["args"] == [*args, *added]
    assert worker["args"] == [*args, *added]


def test_mp_with_an_explicit_command_keeps_it() -> None:
    container = {**VLLM_MP, "command": ["vllm", "serve"]}
    leader, _ = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 4, "backend": "mp"}, container=container)
    )
    assert leader["command"] == ["vllm", "serve"]
    assert leader["args"] == [*VLLM_MP["args"], *MP_FLAGS]


def test_mp_shell_script_is_not_edited_and_the_user_is_told() -> None:
    container = engine_container(name="engine", image=VLLM_MP["image"], args=None, command=["sh", "-c", "vllm serve M"])
    result = render(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2, "backend": "mp"}, container=container)
    )
    lwt = objects(result, "LeaderWorkerSet")[0]["spec"]["leaderWorkerTemplate"]
    for part in ("leaderTemplate", "workerTemplate"):
        assert container_in(lwt[part])["command"] == ["sh", "-c", "vllm serve M"]
    warnings = [n for n in result.notices if n.reason == "CannotRewriteCommand"]
    assert [n.condition for n in warnings] == ["SpecWarnings", "SpecWarnings"]
    assert "--headless" in warnings[1].message
    assert "--headless" not in warnings[0].message
    assert all("rewriteCommand: false" in n.message for n in warnings)


# --- SGLang -------------------------------------------------------------------------------------
SGLANG_FLAGS = [
    "--dist-init-addr",
    "$(LWS_LEADER_ADDRESS):20000",
    "--nnodes",
    "2",
    "--node-rank",
    "$(LWS_WORKER_INDEX)",
]


def test_sglang_every_pod_launches_the_server_with_its_rank() -> None:
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=SGLANG)
    )
    assert leader["command"] == worker["command"] == ["python3", "-m", "sglang.launch_server"]
    assert leader["args"] == [*SGLANG["args"], *SGLANG_FLAGS, "--host", "0.0.0.0"]
    assert worker["args"] == [*SGLANG["args"], *SGLANG_FLAGS]
    assert leader["readinessProbe"]["httpGet"] == {"path": "/health", "port": 30000, "scheme": "HTTP"}
    assert "readinessProbe" not in worker


def test_sglang_keeps_the_users_host_and_distribution_flags() -> None:
    args = ["--model-path", "M", "--host=0.0.0.0", "--port", "40000", "--nccl-init-addr", "x:1", "--nnodes", "2"]
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container={**SGLANG, "args": args})
    )
    assert leader["args"] == [*args, "--node-rank", "$(LWS_WORKER_INDEX)"]
    assert worker["args"] == [*args, "--node-rank", "$(LWS_WORKER_INDEX)"]
    assert leader["readinessProbe"]["httpGet"]["port"] == 40000


def test_engine_field_selects_sglang_for_an_unrecognised_image() -> None:
    container = engine_container(
        name="engine", image="registry.local/llm:1", command=["launch"], args=["--model-path", "M"]
    )
    leader, _ = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2}, container=container, engine="sglang")
    )
    assert leader["args"] == ["--model-path", "M", *SGLANG_FLAGS, "--host", "0.0.0.0"]


# --- rewriteCommand: false, probes, other containers --------------------------------------------
@pytest.mark.parametrize("container", [VLLM, SGLANG, {**VLLM, "command": ["sh", "-c", "my start script"]}])
def test_rewrite_off_leaves_command_and_args_exactly_as_written(container: dict[str, Any]) -> None:
    leader, worker = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2, "rewriteCommand": False}, container=container)
    )
    for pod in (leader, worker):
        assert pod.get("command") == container.get("command")
        assert pod.get("args") == container.get("args")
    assert "httpGet" in leader["readinessProbe"]


def test_users_leader_readiness_probe_is_kept() -> None:
    probe = {"httpGet": {"path": "/v1/models", "port": 8000}, "periodSeconds": 30}
    leader, _ = leader_and_worker(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2}, container={**VLLM, "readinessProbe": probe})
    )
    assert leader["readinessProbe"] == probe


def test_workers_lose_probes_on_the_api_port_and_keep_the_others() -> None:
    container = {
        **VLLM,
        "ports": [{"name": "http", "containerPort": 8000}, {"name": "side", "containerPort": 9000}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}},
        "livenessProbe": {"tcpSocket": {"port": "http"}},
        "startupProbe": {"exec": {"command": ["true"]}},
    }
    leader, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=container)
    )
    assert "readinessProbe" not in worker
    assert "livenessProbe" not in worker
    assert worker["startupProbe"] == {"exec": {"command": ["true"]}}
    assert leader["livenessProbe"] == {"tcpSocket": {"port": "http"}}

    other = {**VLLM, "livenessProbe": {"httpGet": {"path": "/", "port": 9000}}}
    _, worker = leader_and_worker(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2}, container=other)
    )
    assert worker["livenessProbe"] == {"httpGet": {"path": "/", "port": 9000}}


def test_only_the_serving_container_is_rewritten() -> None:
    logs = {"name": "logs", "image": "busybox", "command": ["tail", "-f", "/dev/null"]}
    isvc = parse(InferenceServiceWrapper().worker(multinode={"nodeCount": 2}, containers=[logs, VLLM]).obj())
    lwt = lws(isvc)["spec"]["leaderWorkerTemplate"]
    for part in ("leaderTemplate", "workerTemplate"):
        logs = container_in(lwt[part], "logs")
        assert logs == {"name": "logs", "image": "busybox", "command": ["tail", "-f", "/dev/null"]}
        assert container_in(lwt[part])["command"][0] == "/bin/sh"


# --- helpers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"command": ["sh", "-c", "x"]}, ("command", 2)),
        ({"command": ["/bin/bash", "-ec"], "args": ["x"]}, ("args", 0)),
        ({"command": ["sh"], "args": ["-c", "x", "name"]}, ("args", 1)),
        ({"command": ["sh", "script.sh"]}, None),
        ({"command": ["sh", "-c"]}, None),
        ({"command": ["vllm", "serve", "-c", "x"]}, None),
        ({"args": ["--model", "m"]}, None),
    ],
)
def test_shell_script_location(container: dict[str, Any], expected: tuple[str, int] | None) -> None:
    assert mn.shell_script(container) == expected


# --- single-node SGLang, and backend settings that cannot apply ---------------------------------
def single_node_container(isvc: Service) -> dict[str, Any]:
    deployment = objects(render(isvc), "Deployment")[0]
    return container_in(deployment["spec"]["template"])


def test_single_node_sglang_listens_on_all_interfaces() -> None:
    # Without --host SGLang binds 127.0.0.1: no probe, pool or sidecar could reach it.
    container = single_node_container(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 1}, container=SGLANG)
    )
    assert container["args"] == [*SGLANG["args"], "--host", "0.0.0.0"]


@pytest.mark.parametrize("host", [["--host", "::"], ["--host=10.0.0.1"]])
def test_single_node_sglang_keeps_the_users_host(host: list[str]) -> None:
    args = [*SGLANG["args"], *host]
    assert (
        single_node_container(
            InferenceServiceWrapper()
            .namespace("ns")
            .worker(multinode={"nodeCount": 1}, container={**SGLANG, "args": args})
        )["args"]
        == args
    )


def test_single_node_sglang_is_left_alone_when_rewriting_is_off() -> None:
    container = single_node_container(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 1, "rewriteCommand": False}, container=SGLANG)
    )
    assert container["args"] == SGLANG["args"]


def test_single_node_vllm_is_not_rewritten() -> None:
    assert (
        single_node_container(
            InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 1}, container=VLLM)
        )["args"]
        == VLLM["args"]
    )


def test_backend_that_contradicts_the_users_flag_is_reported_and_the_flag_wins() -> None:
    args = [*VLLM_MP["args"], "--distributed-executor-backend", "mp"]
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 4, "backend": "ray"}, container={**VLLM_MP, "args": args})
        .obj()
    )
    result = render(isvc)
    warnings = [n for n in result.notices if n.reason == "IgnoredField"]
    assert len(warnings) == 1
    assert warnings[0].condition == "SpecWarnings"
    assert warnings[0].message.startswith("spec.roles[0].multinode.backend: 'ray' is ignored")
    assert "--distributed-executor-backend mp" in warnings[0].message
    leader, _ = leader_and_worker(isvc)
    assert leader["args"][: len(args)] == args  # mp it is, as the command says


def test_backend_on_an_sglang_role_is_reported() -> None:
    result = render(
        InferenceServiceWrapper().namespace("ns").worker(multinode={"nodeCount": 2, "backend": "mp"}, container=SGLANG)
    )
    warnings = [n for n in result.notices if n.reason == "IgnoredField"]
    assert [n.message for n in warnings] == [
        "spec.roles[0].multinode.backend: 'mp' is ignored: it selects vLLM's distributed executor, "
        "and this role runs SGLang"
    ]


def test_matching_backend_and_flag_are_not_reported() -> None:
    args = [*VLLM_MP["args"], "--distributed-executor-backend", "mp"]
    result = render(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 4, "backend": "mp"}, container={**VLLM_MP, "args": args})
    )
    assert not [n for n in result.notices if n.reason == "IgnoredField"]
