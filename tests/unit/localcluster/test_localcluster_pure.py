"""Unit tests of the local cluster's pure parts: ports, tokens, kubeconfig, command lines,
process identity and the binary cache lookup. Nothing here starts a control plane."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fusioninfer.localcluster import build
from fusioninfer.localcluster.cluster import (
    LOOPBACK,
    SERVICE_CLUSTER_IP_RANGE,
    ProcessRecord,
    TokenEntry,
    _proc_cmdline,
    _proc_start_time,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    format_tokens_csv,
    is_our_process,
    nodesim_args,
    parse_tokens_csv,
    pick_free_ports,
    render_kubeconfig,
    scheduler_args,
    write_kubeconfig,
)


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
    assert "--insecure-port=0" in api
    assert "--secure-port=6443" in api
    assert "--etcd-servers=http://127.0.0.1:2379" in api
    assert f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}" in api
    assert SERVICE_CLUSTER_IP_RANGE.endswith("/16"), "a /24 runs out of Service IPs"
    assert "--authorization-mode=RBAC" in api
    assert "--token-auth-file=/t.csv" in api
    disabled = next(a for a in api if a.startswith("--disable-admission-plugins="))
    assert {"ServiceAccount", "TaintNodesByCondition"} <= set(disabled.split("=", 1)[1].split(","))

    for args in (
        controller_manager_args(Path("/b/kcm"), Path("/k"), Path("/sa.key")),
        scheduler_args(Path("/b/ks"), Path("/k")),
    ):
        assert "--port=0" in args
        assert "--secure-port=0" in args
        assert "--leader-elect=false" in args
        assert "--kubeconfig=/k" in args
    kcm = controller_manager_args(Path("/b/kcm"), Path("/k"), Path("/sa.key"))
    assert "--controllers=*,-nodeipam,-nodelifecycle,-serviceaccount-token" in kcm


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


def test_nodesim_args_run_this_interpreter() -> None:
    args = nodesim_args(Path("/k"), 3, 2, ["--rule", "app=x:fail"])
    assert args[:3] == [sys.executable, "-m", "fusioninfer.localcluster.nodesim"]
    assert args[3:] == ["--kubeconfig", "/k", "--nodes", "3", "--gpus-per-node", "2", "--rule", "app=x:fail"]


def test_process_identity_needs_matching_argv_and_start_time() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        # The kernel fills /proc/<pid>/cmdline a moment after exec (LocalCluster._spawn waits too).
        deadline = time.monotonic() + 5
        while _proc_cmdline(proc.pid) != ["sleep", "30"] and time.monotonic() < deadline:
            time.sleep(0.005)
        start = _proc_start_time(proc.pid)
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
    assert _proc_start_time(proc.pid) is None
    proc.wait()


# ----- build.py -------------------------------------------------------------------------------


def _fake_binaries(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in build.BINARIES:
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


def test_cache_dir_honours_env_and_is_version_keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSIONINFER_CACHE_DIR", str(tmp_path))
    assert build.bin_dir() == tmp_path / "k8s-v1.20.2"
    monkeypatch.delenv("FUSIONINFER_CACHE_DIR")
    assert build.bin_dir() == Path.home() / ".cache" / "fusioninfer" / "k8s-v1.20.2"


def test_missing_binaries_lists_what_is_absent_or_not_executable(tmp_path: Path) -> None:
    assert build.missing_binaries(tmp_path) == list(build.BINARIES)
    _fake_binaries(tmp_path)
    (tmp_path / "kube-scheduler").chmod(0o644)
    assert build.missing_binaries(tmp_path) == ["kube-scheduler"]


def test_ensure_binaries_does_not_build_when_everything_is_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_binaries(tmp_path / "bin")
    monkeypatch.setenv("FUSIONINFER_ETCD", "/bin/true")
    monkeypatch.setattr(build, "BUILD_SCRIPT", tmp_path / "must-not-run.sh")
    lines: list[str] = []
    assert build.ensure_binaries(tmp_path / "bin", echo=lines.append) == tmp_path / "bin"
    assert lines == []


def test_ensure_binaries_runs_the_build_script_and_streams_its_progress(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "fake-build.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -e\necho '[build-k8s] step 1'\nmkdir -p \"$1\"\n"
        "for b in kube-apiserver kube-controller-manager kube-scheduler; do "
        'printf "#!/bin/sh\\n" > "$1/$b"; chmod +x "$1/$b"; done\necho "[build-k8s] done"\n'
    )
    monkeypatch.setattr(build, "BUILD_SCRIPT", script)
    monkeypatch.setenv("FUSIONINFER_ETCD", "/bin/true")
    lines: list[str] = []
    target = tmp_path / "cache" / "k8s"
    assert build.ensure_binaries(target, echo=lines.append) == target
    assert "[build-k8s] step 1" in lines
    assert lines[-1] == "[build-k8s] done"
    assert build.missing_binaries(target) == []


def test_ensure_binaries_reports_a_failed_build_with_its_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/usr/bin/env bash\necho 'E: Unable to locate package golang-go'\nexit 3\n")
    monkeypatch.setattr(build, "BUILD_SCRIPT", script)
    with pytest.raises(build.BuildError, match="exit code 3") as err:
        build.ensure_binaries(tmp_path / "cache", echo=lambda _line: None)
    assert "Unable to locate package" in str(err.value)


def test_find_etcd_prefers_the_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONINFER_ETCD", "/bin/true")
    assert build.find_etcd() == Path("/bin/true")
    monkeypatch.setenv("FUSIONINFER_ETCD", "/nonexistent/etcd")
    assert build.find_etcd() is None


def test_build_script_is_shipped_and_executable_by_bash() -> None:
    assert build.BUILD_SCRIPT.exists()
    result = subprocess.run(["bash", "-n", str(build.BUILD_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(build.BUILD_SCRIPT, os.R_OK)
