"""`pd.decorate`: the serving label on HTTP-serving pods, and the real P/D layout of llm-d."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper, pd_service

from fusioninfer.api.labels import LABEL_SERVING
from fusioninfer.api.validation import parse
from fusioninfer.builders import build
from fusioninfer.builders.context import BuildContext, BuildOptions, Capabilities, Manifest
from fusioninfer.builders.pd import (
    DEFAULT_KV_TRANSFER_CONFIG,
    LABEL_LLMD_ROLE,
    ROUTING_SIDECAR_IMAGE,
    connector_flag,
    decorate,
    flag_value,
    set_flag,
    vllm_version,
)
from fusioninfer.builders.podparts import PodPart, base_pod_template
from fusioninfer.builders.ports import engine_port
from fusioninfer.kube.yaml import load_all

VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"


def _vllm(*args: str, **extra: Any) -> dict[str, Any]:
    return {"name": "vllm", "image": VLLM_IMAGE, "args": ["--model", "Qwen/Qwen3-8B", *args], **extra}


def _sglang(*args: str) -> dict[str, Any]:
    return {
        "name": "sglang",
        "image": "lmsysorg/sglang:v0.5.3",
        "command": ["python3", "-m", "sglang.launch_server"],
        "args": ["--model-path", "Qwen/Qwen3-8B", *args],
    }


@dataclass
class Decorated:
    template: Manifest
    ctx: BuildContext

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template["metadata"]["labels"])

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.template["spec"]["containers"])

    @property
    def init_containers(self) -> list[dict[str, Any]]:
        return list(self.template["spec"].get("initContainers", []))

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.containers + self.init_containers if c["name"] == name)


def _decorate(isvc: Any, role_name: str, part: PodPart = PodPart.SINGLE, **options: Any) -> Decorated:
    ctx = BuildContext(isvc, BuildOptions(**options))
    role = next(r for r in isvc.roles if r.name == role_name)
    return Decorated(decorate(ctx, role, base_pod_template(ctx, role), part), ctx)


# --- the serving label --------------------------------------------------------------------------
@pytest.mark.parametrize(("part", "serving"), [(PodPart.SINGLE, True), (PodPart.LEADER, True), (PodPart.WORKER, False)])
def test_only_single_pods_and_leaders_carry_the_serving_label(part: PodPart, serving: bool) -> None:
    isvc = parse(InferenceServiceWrapper().namespace("ns").worker(container=_vllm()).obj())
    labels = _decorate(isvc, "inference", part).labels
    assert (labels.get(LABEL_SERVING) == "true") is serving
    assert LABEL_LLMD_ROLE not in labels, "a monolithic service has no P/D roles"


def test_monolithic_pods_are_otherwise_untouched() -> None:
    isvc = parse(InferenceServiceWrapper().namespace("ns").worker(container=_vllm()).obj())
    d = _decorate(isvc, "inference")
    assert d.containers == [_vllm()]
    assert d.init_containers == []


# --- P/D labels, NIXL, KV connector -------------------------------------------------------------
@pytest.mark.parametrize("part", list(PodPart))
def test_pd_roles_are_labelled_for_the_llmd_filters_on_every_part(part: PodPart) -> None:
    isvc = parse(pd_service(_vllm(), _vllm()))
    assert _decorate(isvc, "prefill", part).labels[LABEL_LLMD_ROLE] == "prefill"
    assert _decorate(isvc, "decode", part).labels[LABEL_LLMD_ROLE] == "decode"


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_vllm_pd_containers_get_nixl_side_channel_env_and_the_nixl_connector(role: str) -> None:
    vllm = _decorate(parse(pd_service(_vllm(), _vllm())), role).container("vllm")
    env = {e["name"]: e for e in vllm["env"]}
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
    }
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"]["value"] == "5557"
    assert flag_value(vllm, "--kv-transfer-config") == DEFAULT_KV_TRANSFER_CONFIG
    assert DEFAULT_KV_TRANSFER_CONFIG == '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'


def test_user_kv_transfer_config_and_nixl_env_are_respected() -> None:
    own = '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'
    prefill = _vllm(f"--kv-transfer-config={own}", env=[{"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": "6000"}])
    d = _decorate(parse(pd_service(prefill, _vllm())), "prefill")
    vllm = d.container("vllm")
    assert [a for a in vllm["args"] if "kv-transfer-config" in a] == [f"--kv-transfer-config={own}"]
    assert [e["value"] for e in vllm["env"] if e["name"] == "VLLM_NIXL_SIDE_CHANNEL_PORT"] == ["6000"]
    assert d.ctx.notices == []


def test_pynccl_connector_on_vllm_011_is_kept_but_reported() -> None:
    old = '{"kv_connector":"PyNcclConnector","kv_role":"kv_producer"}'
    d = _decorate(parse(pd_service(_vllm("--kv-transfer-config", old), _vllm())), "prefill")
    assert d.container("vllm")["args"].count("--kv-transfer-config") == 1
    assert old in d.container("vllm")["args"]
    [notice] = d.ctx.notices
    assert (notice.condition, notice.reason) == ("SpecWarnings", "DeprecatedKVConnector")
    assert "PyNcclConnector" in notice.message
    assert "0.11" in notice.message


def test_pynccl_connector_on_an_older_vllm_is_fine() -> None:
    old = '{"kv_connector":"PyNcclConnector","kv_role":"kv_producer"}'
    prefill = _vllm("--kv-transfer-config", old)
    prefill["image"] = "vllm/vllm-openai:v0.10.1"
    assert _decorate(parse(pd_service(prefill, _vllm())), "prefill").ctx.notices == []


@pytest.mark.parametrize(
    ("image", "version"),
    [("vllm/vllm-openai:v0.11.0", (0, 11)), ("vllm/vllm-openai:0.9.2", (0, 9)), ("vllm/vllm-openai:latest", None)],
)
def test_vllm_version(image: str, version: tuple[int, int] | None) -> None:
    assert vllm_version(image) == version


# --- the routing sidecar ------------------------------------------------------------------------
def test_decode_gets_the_routing_sidecar_on_the_pool_port_and_vllm_moves_to_8200() -> None:
    decode = _vllm(
        "--port",
        "8000",
        ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/health", "port": 8000}},
    )
    d = _decorate(parse(pd_service(_vllm(), decode)), "decode")
    [sidecar] = d.init_containers
    assert sidecar == {
        "name": "routing-sidecar",
        "image": ROUTING_SIDECAR_IMAGE,
        "args": ["--port=8000", "--vllm-port=8200", "--kv-connector=nixlv2", "--secure-proxy=false"],
        "ports": [{"name": "proxy-http", "containerPort": 8000, "protocol": "TCP"}],
        "restartPolicy": "Always",
    }
    vllm = d.container("vllm")
    assert flag_value(vllm, "--port") == "8200"
    assert vllm["args"].count("--port") == 1
    assert vllm["ports"] == [{"name": "http", "containerPort": 8200}]
    assert vllm["readinessProbe"]["httpGet"]["port"] == 8200
    assert [c["name"] for c in d.containers] == ["vllm"], "container indexes stay put for later decorators"


def test_decode_without_a_port_flag_gets_one() -> None:
    vllm = _decorate(parse(pd_service(_vllm(), _vllm())), "decode").container("vllm")
    assert vllm["args"][-2:] == ["--port", "8200"]


def test_prefill_keeps_its_port_and_gets_no_sidecar() -> None:
    d = _decorate(parse(pd_service(_vllm(), _vllm())), "prefill")
    assert d.init_containers == []
    assert flag_value(d.container("vllm"), "--port") is None


def test_sidecar_follows_the_prefill_port_and_avoids_it_internally() -> None:
    prefill = _vllm("--port=8200")  # the pool port is the prefillers' port
    d = _decorate(parse(pd_service(prefill, _vllm("--port=9000"))), "decode")
    assert d.init_containers[0]["args"][:2] == ["--port=8200", "--vllm-port=8201"]
    assert flag_value(d.container("vllm"), "--port") == "8201"


def test_multinode_decode_leader_gets_the_sidecar_and_workers_do_not() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container=_vllm())
        .decoder(container=_vllm(), multinode={"nodeCount": 2})
        .obj()
    )
    leader = _decorate(isvc, "decode", PodPart.LEADER)
    worker = _decorate(isvc, "decode", PodPart.WORKER)
    assert [c["name"] for c in leader.init_containers] == ["routing-sidecar"]
    assert worker.init_containers == []
    assert flag_value(worker.container("vllm"), "--port") is None
    assert worker.labels[LABEL_LLMD_ROLE] == "decode"
    assert LABEL_SERVING not in worker.labels


def test_notices_are_reported_once_per_role_not_per_part() -> None:
    old = '{"kv_connector":"PyNcclConnector","kv_role":"kv_both"}'
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container=_vllm("--kv-transfer-config", old), multinode={"nodeCount": 2})
        .decoder(container=_vllm())
        .obj()
    )
    assert [n.reason for n in _decorate(isvc, "prefill", PodPart.LEADER).ctx.notices] == ["DeprecatedKVConnector"]
    assert _decorate(isvc, "prefill", PodPart.WORKER).ctx.notices == []


def test_engine_port_is_the_internal_port_only_behind_the_sidecar() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container=_vllm())
        .decoder(container=_vllm(), multinode={"nodeCount": 2})
        .obj()
    )
    ctx = BuildContext(isvc)
    prefill, decode = isvc.serving_roles
    assert engine_port(ctx, prefill, PodPart.SINGLE) == 8000
    assert engine_port(ctx, decode, PodPart.LEADER) == 8200
    assert engine_port(ctx, decode, PodPart.WORKER) == 8000
    mono = parse(InferenceServiceWrapper().namespace("ns").worker(container=_vllm()).obj())
    assert engine_port(BuildContext(mono), mono.serving_roles[0], PodPart.SINGLE) == 8000


def test_sidecar_image_overrides() -> None:
    own = "registry.example/sidecar:dev"
    assert (
        _decorate(parse(pd_service(_vllm(), _vllm())), "decode", routing_sidecar_image=own).init_containers[0]["image"]
        == own
    )
    router_own = "registry.example/sidecar:router"
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation", endpointPicker={"routingSidecarImage": router_own})
        .prefiller(container=_vllm())
        .decoder(container=_vllm())
        .obj()
    )
    assert _decorate(isvc, "decode", routing_sidecar_image=own).init_containers[0]["image"] == router_own


def test_sglang_pd_uses_the_sglang_connector_and_no_nixl() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container=_sglang("--port", "30000"))
        .decoder(container=_sglang())
        .obj()
    )
    decode = _decorate(isvc, "decode")
    assert decode.init_containers[0]["args"] == [
        "--port=30000",
        "--vllm-port=8200",
        "--kv-connector=sglang",
        "--secure-proxy=false",
    ]
    sglang = decode.container("sglang")
    assert flag_value(sglang, "--port") == "8200"
    assert "env" not in sglang
    assert flag_value(sglang, "--kv-transfer-config") is None
    assert "env" not in _decorate(isvc, "prefill").container("sglang")


@dataclass(frozen=True)
class OldCluster(Capabilities):
    server_version: tuple[int, int] = (1, 20)


def test_before_native_sidecars_the_sidecar_is_a_regular_last_container() -> None:
    d = _decorate(parse(pd_service(_vllm(), _vllm())), "decode", capabilities=OldCluster())
    assert d.init_containers == []
    assert [c["name"] for c in d.containers] == ["vllm", "routing-sidecar"]
    assert "restartPolicy" not in d.containers[1]


# --- command-line editing -----------------------------------------------------------------------
def test_shell_scripts_are_edited_in_place_or_reported() -> None:
    script = {"name": "vllm", "image": VLLM_IMAGE, "command": ["sh", "-c", "vllm serve m --port 8000 && true"]}
    assert set_flag(script, "--port", "8200")
    assert script["command"][2] == "vllm serve m --port 8200 && true"
    assert flag_value(script, "--port") == "8200"

    no_flag = {"name": "vllm", "image": VLLM_IMAGE, "command": ["/bin/bash", "-c"], "args": ["vllm serve m"]}
    assert not set_flag(no_flag, "--port", "8200")
    assert no_flag["args"] == ["vllm serve m"]

    decode = {"name": "vllm", "image": VLLM_IMAGE, "command": ["sh", "-c", "exec vllm serve m"]}
    d = _decorate(parse(pd_service(_vllm(), decode)), "decode")
    assert {n.reason for n in d.ctx.notices} == {"CannotRewriteCommand"}
    assert d.container("vllm")["command"] == ["sh", "-c", "exec vllm serve m"]


def test_flags_in_the_command_are_rewritten_there() -> None:
    c = {"name": "vllm", "image": VLLM_IMAGE, "command": ["vllm", "serve", "m", "--port", "8000"]}
    assert set_flag(c, "--port", "8200")
    assert c["command"] == ["vllm", "serve", "m", "--port", "8200"]
    assert "args" not in c


@pytest.mark.parametrize(
    ("image", "flag"),
    [
        ("ghcr.io/llm-d/llm-d-routing-sidecar:v0.7.1", "--kv-connector"),
        ("ghcr.io/llm-d/llm-d-routing-sidecar:v0.8.0", "--kv-connector"),
        ("ghcr.io/llm-d/llm-d-routing-sidecar:latest", "--kv-connector"),
        ("ghcr.io/llm-d/llm-d-routing-sidecar@sha256:" + "0" * 64, "--kv-connector"),
        ("ghcr.io/llm-d/llm-d-routing-sidecar:v0.6.0", "--connector"),
        ("ghcr.io/llm-d/llm-d-routing-sidecar:v0.4.0", "--connector"),
    ],
)
def test_the_connector_flag_follows_the_sidecar_release(image: str, flag: str) -> None:
    """v0.7 renamed --connector (deprecated there); older sidecars know only --connector."""
    assert connector_flag(image) == flag


def test_multinode_workers_get_their_own_nixl_side_channel_host_not_the_leaders() -> None:
    """Each pod advertises its own IP (the downward API resolves per pod): a Ray worker that
    inherited the leader's address would make NIXL handshakes land on the leader."""

    root = Path(__file__).resolve().parents[3]
    (doc,) = [d for d in load_all((root / "examples" / "story2-pd-volcano.yaml").read_text()) if d]
    objects = build(parse(doc), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
    lws = [o for o in objects if o["kind"] == "LeaderWorkerSet"]
    assert lws, "story 2 has multi-node roles"
    for obj in lws:
        for part in ("leaderTemplate", "workerTemplate"):
            template = obj["spec"]["leaderWorkerTemplate"].get(part)
            if template is None:
                continue
            engine = template["spec"]["containers"][0]
            env = {e["name"]: e for e in engine.get("env", [])}
            host = env["VLLM_NIXL_SIDE_CHANNEL_HOST"]
            assert host == {
                "name": "VLLM_NIXL_SIDE_CHANNEL_HOST",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
            }, (obj["metadata"]["name"], part)
