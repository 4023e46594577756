"""The real LWS controller's wiring: its configuration, webhook registrations and certificates."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from fusioninfer_dev.localcluster import build, lws


def test_configuration_turns_off_what_needs_a_cluster_and_binds_loopback() -> None:
    config = lws.controller_config(webhook_port=9443, cert_dir=Path("/c"), metrics_port=1, health_port=2)
    assert config["apiVersion"] == "config.lws.x-k8s.io/v1alpha1"
    assert config["kind"] == "Configuration"
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["internalCertManagement"] == {"enable": False}
    assert config["webhook"] == {"host": "127.0.0.1", "port": 9443, "certDir": "/c"}
    assert config["metrics"]["bindAddress"] == "127.0.0.1:1"
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:2"


def test_webhooks_have_upstreams_paths_rules_and_pod_selector() -> None:
    mutating, validating = lws.webhook_configurations(9443, "Q0E=")
    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    hooks = {h["name"]: h for h in mutating["webhooks"] + validating["webhooks"]}
    assert set(hooks) == {"mleaderworkerset.kb.io", "mpod.kb.io", "vleaderworkerset.kb.io", "vpod.kb.io"}
    assert hooks["mpod.kb.io"]["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate--v1-pod"
    assert hooks["vleaderworkerset.kb.io"]["clientConfig"]["url"].endswith(
        "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset"
    )
    for name in ("mpod.kb.io", "vpod.kb.io"):
        assert hooks[name]["objectSelector"] == {
            "matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]
        }
        assert hooks[name]["rules"][0]["resources"] == ["pods"]
        assert hooks[name]["rules"][0]["apiGroups"] == [""]
    for hook in hooks.values():
        assert hook["failurePolicy"] == "Fail"
        assert hook["clientConfig"]["caBundle"] == "Q0E="
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]


def test_certificates_are_for_loopback_and_signed_by_the_ca(tmp_path: Path) -> None:
    lws.generate_certificates(tmp_path)
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "tls.crt"), "-noout", "-text"], capture_output=True, text=True
    ).stdout
    assert "IP Address:127.0.0.1" in text
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    before = (tmp_path / "tls.crt").read_bytes()
    lws.generate_certificates(tmp_path)  # kept: the registered caBundle must stay valid
    assert (tmp_path / "tls.crt").read_bytes() == before
    assert base64.b64decode(base64.b64encode(before)) == before


def test_lws_is_built_from_its_module_under_its_own_name() -> None:
    assert build.LWS in build.CLUSTER_COMPONENTS
    argv = build.go_build_argv(build.LWS, Path("/o"))
    assert argv[argv.index("-o") + 1] == "/o/lws-controller"
    assert argv[-1] == "sigs.k8s.io/lws/cmd"
    assert f"sigs.k8s.io/lws {build.LWS_VERSION}" in (build.HACK_DIR / "lws" / "go.mod").read_text()
