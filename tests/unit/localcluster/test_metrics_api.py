"""The local metrics API's wiring (pure) and the feeder's reading of an engine's exposition."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given

from fusioninfer.kube.quantity import Quantity
from fusioninfer_dev.localcluster import metrics_api
from fusioninfer_dev.localcluster.metrics_feeder import pod_gauges, quantity
from fusioninfer_dev.localcluster.modelserver.engine_args import parse_engine_args
from fusioninfer_dev.localcluster.modelserver.server import Load, metrics_text

VLLM_EXPOSITION = """\
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 3.0
vllm:num_requests_waiting{engine="1",model_name="Qwen/Qwen3-8B"} 4.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.25
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="1",running_lora_adapters="a",waiting_lora_adapters=""} 1.7e9
# TYPE vllm:request_success counter
vllm:request_success_total{finished_reason="stop",model_name="Qwen/Qwen3-8B"} 12.0
"""


def test_gauges_are_summed_over_label_sets_and_counters_and_info_gauges_left_out() -> None:
    assert pod_gauges(VLLM_EXPOSITION) == {"vllm:num_requests_waiting": 7.0, "vllm:kv_cache_usage_perc": 0.25}


def test_the_stand_in_model_servers_exposition_reads_as_the_gauges_it_reports() -> None:
    load = Load(max_num_seqs=2)
    load.running, load.waiting = 2, 5
    vllm = parse_engine_args(["vllm", "serve", "m"])
    assert pod_gauges(metrics_text(vllm, load))["vllm:num_requests_waiting"] == 5
    sglang = parse_engine_args(["python3", "-m", "sglang.launch_server", "--model-path", "m", "--enable-metrics"])
    assert pod_gauges(metrics_text(sglang, load))["sglang:num_queue_reqs"] == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, "0"), (7.0, "7"), (0.25, "250m"), (1.5, "1500m"), (1e-4, "0"), (1234.5678, "1234568m")],
)
def test_quantities_are_exact_to_the_thousandth(value: float, expected: str) -> None:
    assert quantity(value) == expected


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_a_quantity_is_within_half_a_thousandth_of_its_value(value: float) -> None:
    parsed = Quantity.parse(quantity(value)).value  # as the adapter (and the apiserver) read it
    assert abs(parsed - Decimal(repr(value))) <= Decimal("0.0005")


def test_writes_go_to_the_pods_metric_path_with_the_colon_kept() -> None:
    url = metrics_api.write_url(4321, "team-a", "svc-decode-7f9-x2", "vllm:num_requests_waiting")
    assert (
        url == "http://127.0.0.1:4321/write-metrics/namespaces/team-a/pods/svc-decode-7f9-x2/vllm:num_requests_waiting"
    )


def test_every_metrics_api_goes_to_the_adapter_through_an_external_name_service() -> None:
    service, *api_services = metrics_api.api_objects(6443, "Q0E=")
    assert service["spec"] == {"type": "ExternalName", "externalName": "localhost"}
    assert {(a["spec"]["group"], a["spec"]["version"]) for a in api_services} == set(metrics_api.API_VERSIONS)
    for api in api_services:
        assert api["metadata"]["name"] == f"{api['spec']['version']}.{api['spec']['group']}"
        assert api["spec"]["service"] == {"name": service["metadata"]["name"], "namespace": "kube-system", "port": 6443}
        assert api["spec"]["caBundle"] == "Q0E="
        assert "insecureSkipTLSVerify" not in api["spec"]
    preferred = max(api_services, key=lambda a: a["spec"]["versionPriority"])
    assert preferred["metadata"]["name"] == "v1beta2.custom.metrics.k8s.io"


def test_the_apiserver_proxies_with_a_client_certificate_the_adapter_is_told_to_trust(tmp_path: Path) -> None:
    flags = dict(f.removeprefix("--").split("=", 1) for f in metrics_api.apiserver_aggregation_args(tmp_path))
    assert flags["requestheader-allowed-names"] == metrics_api.FRONT_PROXY_CN
    assert flags["requestheader-client-ca-file"] == str(tmp_path / "ca.crt")
    assert flags["proxy-client-cert-file"] == str(tmp_path / "proxy-client.crt")
    argv = metrics_api.adapter_args(Path("/bin/adapter"), tmp_path / "kc", tmp_path, secure_port=1, write_port=2)
    assert "--write-address=127.0.0.1:2" in argv
    assert "--bind-address=127.0.0.1" in argv


def test_the_certificates_chain_to_the_ca_with_the_names_and_usages_each_side_checks(tmp_path: Path) -> None:
    metrics_api.generate_certificates(tmp_path)

    def text(name: str) -> str:
        out = subprocess.run(["openssl", "x509", "-in", str(tmp_path / name), "-noout", "-text"], capture_output=True)
        return out.stdout.decode()

    for cert in ("tls.crt", "proxy-client.crt"):
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / cert)])
        assert verify.returncode == 0
    assert "DNS:localhost" in text("tls.crt")
    assert f"DNS:{metrics_api.SERVICE}.kube-system.svc" in text("tls.crt"), "the name the apiserver verifies"
    assert "TLS Web Server Authentication" in text("tls.crt")
    assert f"CN = {metrics_api.FRONT_PROXY_CN}" in text("proxy-client.crt")
    assert "TLS Web Client Authentication" in text("proxy-client.crt")
    before = (tmp_path / "ca.crt").read_bytes()
    metrics_api.generate_certificates(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == before, "a restart keeps the CA the APIServices trust"


def test_the_adapter_is_built_from_its_module_for_the_clusters_kubernetes_minor() -> None:
    from fusioninfer_dev.localcluster import build

    assert build.CUSTOM_METRICS in build.CLUSTER_COMPONENTS
    argv = build.go_build_argv(build.CUSTOM_METRICS, Path("/o"))
    assert argv[argv.index("-o") + 1] == "/o/custom-metrics-adapter"
    go_mod = (build.HACK_DIR / "custom-metrics" / "go.mod").read_text()
    assert f"sigs.k8s.io/custom-metrics-apiserver {build.CUSTOM_METRICS_VERSION}" in go_mod
    assert "replace" not in go_mod
    kubernetes_minor = build.KUBERNETES_VERSION.split(".")[1]
    assert build.CUSTOM_METRICS_VERSION.split(".")[1] == kubernetes_minor, "its client libraries match the apiserver"
