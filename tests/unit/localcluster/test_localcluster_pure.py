"""Unit tests of the local cluster's pure parts: ports, tokens, kubeconfig, command lines,
process identity and the binary cache lookup. Nothing here starts a control plane."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from fusioninfer_dev.localcluster import build, progress
from fusioninfer_dev.localcluster.components import (
    LOOPBACK,
    SERVICE_CLUSTER_IP_RANGE,
    TokenEntry,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    format_tokens_csv,
    parse_tokens_csv,
    pick_free_ports,
    render_kubeconfig,
    scheduler_args,
    write_kubeconfig,
)
from fusioninfer_dev.localcluster.kwok import NodeSpec, kwok_args, node_manifest
from fusioninfer_dev.localcluster.processes import ProcessRecord, is_our_process, proc_cmdline, proc_start_time
from fusioninfer_dev.localcluster.state import find_state_dirs


def test_pick_free_ports_returns_distinct_bindable_loopback_ports() -> None:
    ports = pick_free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        assert 1024 <= port <= 65535
        with socket.socket() as s:
            s.bind((LOOPBACK, port))  # really free right now


def test_pick_free_ports_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="count"):
        pick_free_ports(0)


def test_tokens_csv_format_matches_kube_apiserver_and_round_trips() -> None:
    entries = [
        TokenEntry("tok1", "admin", "admin", ("system:masters",)),
        TokenEntry("tok2", "alice", "alice-uid", ("devs", "fusioninfer:testers")),
        TokenEntry("tok3", "bob", "bob"),
    ]
    text = format_tokens_csv(entries)
    assert text.splitlines() == [
        'tok1,admin,admin,"system:masters"',
        'tok2,alice,alice-uid,"devs,fusioninfer:testers"',
        "tok3,bob,bob",
    ]
    assert parse_tokens_csv(text) == entries


@pytest.mark.parametrize("bad", ["a,b", 'a"b', "a\nb"])
def test_token_entries_refuse_values_that_would_corrupt_the_file(bad: str) -> None:
    with pytest.raises(ValueError, match="may not contain"):
        TokenEntry("t", bad, "u").csv_line()


def test_kubeconfig_uses_bearer_token_and_skips_tls_verification(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "sub" / "kubeconfig", "https://127.0.0.1:6443", "secret", namespace="ns1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a kubeconfig holds a credential"
    data = yaml.safe_load(path.read_text())
    assert data == render_kubeconfig("https://127.0.0.1:6443", "secret", namespace="ns1")
    (cluster,) = data["clusters"]
    assert cluster["cluster"] == {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}
    (user,) = data["users"]
    assert user == {"name": "admin", "user": {"token": "secret"}}
    assert data["contexts"][0]["context"] == {"cluster": cluster["name"], "user": "admin", "namespace": "ns1"}
    assert data["current-context"] == data["contexts"][0]["name"]


def test_kubeconfig_is_readable_by_lightkube(tmp_path: Path) -> None:
    from lightkube import KubeConfig

    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:7000", "tkn", user="alice")
    config = KubeConfig.from_file(path).get()
    assert config is not None
    assert config.user is not None
    assert config.cluster.server == "https://127.0.0.1:7000"
    assert config.cluster.insecure is True
    assert config.user.token == "tkn"


def _urls(args: list[str]) -> list[str]:
    return [a.split("=", 1)[1] for a in args if "-urls=" in a or a.startswith("--etcd-servers=")]


def test_every_component_listens_on_loopback_only() -> None:
    etcd = etcd_args(Path("/usr/bin/etcd"), Path("/d"), 2379, 2380)
    for value in _urls(etcd):
        for url in value.split(","):
            assert url.startswith(f"http://{LOOPBACK}:"), url
    assert "--initial-cluster=fusioninfer=http://127.0.0.1:2380" in etcd

    api = apiserver_args(
        Path("/b/kube-apiserver"),
        etcd_port=2379,
        secure_port=6443,
        cert_dir=Path("/c"),
        sa_pub=Path("/sa.pub"),
        sa_key=Path("/sa.key"),
        tokens_file=Path("/t.csv"),
    )
    assert f"--bind-address={LOOPBACK}" in api
    assert not any(a.startswith("--insecure-port") for a in api), "removed in Kubernetes 1.24"
    assert "--secure-port=6443" in api
    assert "--etcd-servers=http://127.0.0.1:2379" in api
    assert f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}" in api
    assert SERVICE_CLUSTER_IP_RANGE.endswith("/16"), "a /24 runs out of Service IPs"
    assert "--authorization-mode=RBAC" in api
    assert "--token-auth-file=/t.csv" in api
    disabled = next(a for a in api if a.startswith("--disable-admission-plugins="))
    assert {"ServiceAccount", "TaintNodesByCondition"} <= set(disabled.split("=", 1)[1].split(","))

    kcm = controller_manager_args(Path("/b/kcm"), Path("/k"), Path("/sa.key"))
    sched = scheduler_args(Path("/b/ks"), Path("/k"), 10259)
    for args in (kcm, sched):
        assert not any(a.startswith("--port=") for a in args), "removed in Kubernetes 1.24"
        assert "--leader-elect=false" in args
        assert "--kubeconfig=/k" in args
        assert f"--bind-address={LOOPBACK}" in args
    assert "--secure-port=0" in kcm
    assert "--secure-port=10259" in sched
    assert "--controllers=*,-node-ipam-controller,-node-lifecycle-controller,-serviceaccount-token-controller" in kcm

    kwok = kwok_args(Path("/b/kwok"), Path("/k"), server_port=10247)
    assert "--server-address=127.0.0.1:10247" in kwok
    assert "--manage-all-nodes=false" in kwok
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in kwok


def test_extra_apiserver_args_are_appended() -> None:
    api = apiserver_args(
        Path("/b"),
        etcd_port=1,
        secure_port=2,
        cert_dir=Path("/c"),
        sa_pub=Path("/p"),
        sa_key=Path("/k"),
        tokens_file=Path("/t"),
        extra=["--v=4"],
    )
    assert api[-1] == "--v=4"


def test_kwok_node_carries_the_annotation_kwok_selects_and_gpu_capacity() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    node = node_manifest("n-0", NodeSpec(gpus=4, labels={"zone": "a"}, taints=[taint]), pool="p")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["fusioninfer.io/simulated-node"] == "p"
    assert node["metadata"]["labels"]["zone"] == "a"
    assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == "4"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["spec"] == {"taints": [taint]}
    assert "nvidia.com/gpu.present" not in node_manifest("c", NodeSpec(gpus=0), pool="p")["metadata"]["labels"]


def test_find_state_dirs_finds_every_cluster_below_a_root(tmp_path: Path) -> None:
    for sub in ("cluster", "demo", "nested/deeper"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "state.json").write_text("{}")
    (tmp_path / "not-a-cluster").mkdir()
    assert find_state_dirs(tmp_path) == [tmp_path / "cluster", tmp_path / "demo", tmp_path / "nested/deeper"]
    assert find_state_dirs(tmp_path / "missing") == []


def test_process_identity_needs_matching_argv_and_start_time() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        # The kernel fills /proc/<pid>/cmdline a moment after exec (LocalCluster._spawn waits too).
        deadline = time.monotonic() + 5
        while proc_cmdline(proc.pid) != ["sleep", "30"] and time.monotonic() < deadline:
            time.sleep(0.005)
        start = proc_start_time(proc.pid)
        assert start is not None
        assert is_our_process(ProcessRecord("x", proc.pid, ["sleep", "30"], start, "l"))
        assert is_our_process(ProcessRecord("x", proc.pid, ["sleep", "30"], None, "l"))
        assert not is_our_process(ProcessRecord("x", proc.pid, ["sleep", "31"], start, "l"))
        assert not is_our_process(ProcessRecord("x", proc.pid, ["sleep", "30"], start + 1, "l"))
    finally:
        proc.kill()
        proc.wait()
    assert not is_our_process(ProcessRecord("x", proc.pid, ["sleep", "30"], start, "l"))


def test_zombie_counts_as_dead() -> None:
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    state = ""
    while state != "Z" and time.monotonic() < deadline:  # exited but not reaped yet
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        time.sleep(0.01)
    assert state == "Z"
    assert proc_start_time(proc.pid) is None
    proc.wait()


# ----- build.py -------------------------------------------------------------------------------


def _fake_component(tmp_path: Path, script: str) -> build.GoComponent:
    """A component whose "go" is a shell script on PATH (no toolchain run in unit tests)."""
    bindir = tmp_path / "fakego"
    bindir.mkdir()
    (bindir / "go").write_text("#!/usr/bin/env bash\n" + script)
    (bindir / "go").chmod(0o755)
    return build.GoComponent(name="thing", version="v1.2.3", packages=("example.com/thing",), binaries=("thing",))


def test_cache_dir_honours_env_and_is_version_keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSIONINFER_CACHE_DIR", str(tmp_path))
    assert build.component_dir(build.KUBERNETES) == tmp_path / f"kubernetes-{build.KUBERNETES_VERSION}"
    monkeypatch.delenv("FUSIONINFER_CACHE_DIR")
    assert build.component_dir(build.ETCD) == Path.home() / ".cache" / "fusioninfer" / f"etcd-{build.ETCD_VERSION}"


def test_kubernetes_is_a_supported_release_with_version_ldflags() -> None:
    major, minor = (int(x) for x in build.KUBERNETES_VERSION.lstrip("v").split(".")[:2])
    assert (major, minor) >= (1, 33)
    flags = " ".join(build.KUBERNETES.ldflags)
    assert f"k8s.io/component-base/version.gitVersion={build.KUBERNETES_VERSION}" in flags
    assert f"k8s.io/component-base/version.gitMinor={minor}" in flags
    argv = build.go_build_argv(build.KUBERNETES, Path("/out"))
    assert argv[:2] == ["go", "build"]
    assert argv[-3:] == list(build.KUBERNETES.packages), "one go build for all three binaries"


def test_wrapper_modules_pin_the_versions_the_code_names() -> None:
    for component in (build.KUBERNETES, build.ETCD):
        assert component.wrapper is not None
        gomod = (build.HACK_DIR / component.wrapper / "go.mod").read_text()
        first_package = component.packages[0].split("/cmd/")[0]
        assert f"{first_package} {component.version}" in gomod
        assert (build.HACK_DIR / component.wrapper / "go.sum").is_file()
    gomod = (build.HACK_DIR / "kubernetes" / "go.mod").read_text()
    minor = build.KUBERNETES_VERSION.lstrip("v").split(".", 1)[1]
    assert f"k8s.io/apiserver => k8s.io/apiserver v0.{minor}" in gomod
    assert "=> ./staging" not in gomod


def test_go_install_for_modules_without_replaces() -> None:
    argv = build.go_build_argv(build.KWOK, Path("/out"))
    assert argv[:2] == ["go", "install"]
    assert argv[-1] == f"sigs.k8s.io/kwok/cmd/kwok@{build.KWOK_VERSION}"
    env = build.go_build_env(build.KWOK, Path("/out"), base={"PATH": "/bin"})
    assert env["GOBIN"] == "/out"
    assert env["CGO_ENABLED"] == "0"


def test_missing_binaries_lists_what_is_absent_or_not_executable(tmp_path: Path) -> None:
    assert build.missing_binaries(build.KUBERNETES, tmp_path) == list(build.KUBERNETES.binaries)
    for name in build.KUBERNETES.binaries:
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "kube-scheduler").chmod(0o644)
    assert build.missing_binaries(build.KUBERNETES, tmp_path) == ["kube-scheduler"]


def test_ensure_component_builds_once_then_uses_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    component = _fake_component(
        tmp_path,
        'echo example.com/thing\nprintf "#!/bin/sh\\n" > "$GOBIN/thing"\n'
        'chmod +x "$GOBIN/thing"\necho built >> "' + str(tmp_path / "runs") + '"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakego'}:{os.environ['PATH']}")
    lines: list[str] = []
    target = build.ensure_component(component, tmp_path / "cache", echo=lines.append)
    assert target == tmp_path / "cache" / "thing-v1.2.3"
    assert os.access(target / "thing", os.X_OK)
    assert any("building thing v1.2.3" in line for line in lines)
    assert any(line.endswith("done in 0s") for line in lines)
    lines.clear()
    build.ensure_component(component, tmp_path / "cache", echo=lines.append)
    assert lines == []
    assert (tmp_path / "runs").read_text() == "built\n"


def test_ensure_component_reports_a_failed_build_with_its_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    component = _fake_component(tmp_path, "echo 'go: example.com/thing@v1.2.3: reading: 410 Gone'\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakego'}:{os.environ['PATH']}")
    with pytest.raises(build.BuildError, match="exit code 1") as err:
        build.ensure_component(component, tmp_path / "cache", echo=lambda _line: None)
    assert "410 Gone" in str(err.value)
    assert build.missing_binaries(component, tmp_path / "cache" / "thing-v1.2.3") == ["thing"]


def test_progress_lines_say_what_and_how_long(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(build, "PROGRESS_INTERVAL", 0.05)
    component = _fake_component(tmp_path, 'sleep 0.3\nprintf "x" > "$GOBIN/thing"; chmod +x "$GOBIN/thing"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'fakego'}:{os.environ['PATH']}")
    lines: list[str] = []
    build.ensure_component(component, tmp_path / "cache", echo=lines.append)
    assert any("building thing v1.2.3" in line and "so far" in line for line in lines)


def test_format_duration() -> None:
    assert progress.format_duration(42.9) == "42s"
    assert progress.format_duration(425) == "7m05s"
