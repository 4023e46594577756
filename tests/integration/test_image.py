"""The operator image, built with `make docker-build` (Podman) and run as config/manager/manager.yaml
runs it: read-only root file system with only /tmp writable, UID 65532, no capabilities, no new
privileges, the kubeconfig mounted read-only. Against the session's control plane it becomes
leader, reconciles examples/monolithic.yaml to Ready (the local gateway and pod runner play the
Gateway and the picker's pod), serves /metrics and /healthz, and on SIGTERM releases its Lease
and exits 0 within 5 s.

No registry is reachable here, so the Dockerfile's base image is the stand-in that
`fusioninfer_dev.localcluster.image.ensure_base_image` builds from Debian's packages (docs/image.md);
cached, so only the first run on a machine pays for debootstrap (about 3 minutes).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lightkube import Client
from lightkube.resources.coordination_v1 import Lease
from prometheus_client.parser import text_string_to_metric_families
from tests.support.datapath import apply as apply_manifest
from tests.support.datapath import data_path
from tests.support.eventually import eventually
from tests.support.operator import ISVC, condition

from fusioninfer.runtime.registry import raw_resource
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.image import Podman, ensure_base_image, run_with_progress

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "monolithic.yaml"
IMAGE = "localhost/fusioninfer:image-test"
LEASE = "fusioninfer-controller"
KUBECONFIG_IN_CONTAINER = "/etc/fusioninfer/kubeconfig"
UID = 65532
RawLease = raw_resource(Lease)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def podman() -> Podman:
    found = Podman.detect()
    if found is None or shutil.which("debootstrap") is None:
        message = "podman or debootstrap is not installed (`make image-tools` installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI installs them (make test -> image-tools): missing is a failure
        pytest.skip(message)
    return found


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    size: int
    build_seconds: float


def uncaptured(config: pytest.Config) -> contextlib.AbstractContextManager[None]:
    """Output that reaches the terminal even while pytest captures (progress of long steps)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    disabled = getattr(capture, "global_and_fixture_disabled", None)
    return disabled() if disabled is not None else contextlib.nullcontext()


@pytest.fixture(scope="module")
def image(podman: Podman, pytestconfig: pytest.Config) -> BuiltImage:
    """`make docker-build CONTAINER_TOOL=podman`, on the (cached) stand-in base image."""
    with uncaptured(pytestconfig):
        ensure_base_image(podman, echo=say)
        started = time.monotonic()
        argv = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "docker-build", "CONTAINER_TOOL=podman"]
        argv.append(f"IMG={IMAGE}")
        run_with_progress(argv, what="make docker-build CONTAINER_TOOL=podman", say=say)
        built = BuiltImage(IMAGE, podman.image_size(IMAGE), time.monotonic() - started)
        say(f"[fusioninfer] image {IMAGE}: {built.size / 1e6:.0f} MB, built in {built.build_seconds:.0f}s")
    return built


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubeconfig_for_the_container(source: Path, directory: Path) -> Path:
    """A copy only UID 65532 can read (as a Secret volume with its fsGroup would be)."""
    target = directory / "kubeconfig"
    shutil.copyfile(source, target)
    if os.geteuid() == 0:
        os.chown(target, UID, UID)
        target.chmod(0o400)
    else:  # rootless Podman maps UIDs: let anyone read the test cluster's kubeconfig
        target.chmod(0o444)
    return target


@dataclass
class Container:
    podman: Podman
    name: str

    def logs(self) -> str:
        result = self.podman.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, Any]:
        out = self.podman.run("inspect", "--format", "{{json .State}}", self.name).stdout
        state: dict[str, Any] = json.loads(out)
        return state

    def running(self) -> bool:
        return bool(self.state().get("Running"))


@pytest.fixture
def container(podman: Podman) -> Iterator[Container]:
    running = Container(podman, f"fusioninfer-image-test-{secrets.token_hex(3)}")
    try:
        yield running
    finally:
        podman.run("rm", "--force", "--time", "0", running.name, check=False)


def lease_spec(client: Client, namespace: str) -> dict[str, Any]:
    lease: dict[str, Any] = dict(client.get(RawLease, LEASE, namespace=namespace))
    return dict(lease.get("spec") or {})


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.timeout(1500)
def test_the_image_runs_the_operator_as_deployed_and_stops_cleanly_on_sigterm(
    image: BuiltImage,
    podman: Podman,
    container: Container,
    cluster: LocalCluster,
    client: Client,
    namespace: str,
    tmp_path: Path,
) -> None:
    # The operator only: the development harness (fusioninfer_dev) is not installed in the image.
    probe = "import importlib.util as u; print(u.find_spec('fusioninfer') is not None, u.find_spec('fusioninfer_dev'))"
    found = podman.run("run", "--rm", "--entrypoint", "python", image.tag, "-c", probe).stdout.split()
    assert found == ["True", "None"], found
    kubeconfig = kubeconfig_for_the_container(cluster.kubeconfig_path, tmp_path)
    metrics_port, health_port = free_port(), free_port()
    # As config/manager/manager.yaml: its securityContext, its /tmp emptyDir, its args and env
    # (the Lease in the operator's namespace); plus the kubeconfig and one watched namespace.
    podman.run(
        "run", "--detach", "--name", container.name, "--hostname", container.name, "--network", "host",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
        "--user", f"{UID}:{UID}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
        "--env", f"KUBECONFIG={KUBECONFIG_IN_CONTAINER}", "--env", f"LEADER_ELECTION_NAMESPACE={namespace}",
        image.tag,
        "--leader-elect", f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        f"--health-probe-bind-address=127.0.0.1:{health_port}", "--log-format=json", "--namespace", namespace,
    )  # fmt: skip

    def alive() -> None:
        assert container.running(), f"the operator exited:\n{container.logs()}"

    with data_path(cluster, namespace, tmp_path / "pods"):

        def leads() -> str:
            alive()
            holder = str(lease_spec(client, namespace).get("holderIdentity") or "")
            assert holder.startswith(f"{container.name}_"), holder
            return holder

        holder = eventually(leads, timeout=60, interval=0.3, retry_on=(Exception,))

        manifest = yaml.safe_load(EXAMPLE.read_text())
        manifest["metadata"]["namespace"] = namespace
        apply_manifest(client, manifest)

        def ready() -> None:
            alive()
            obj = dict(client.get(ISVC, manifest["metadata"]["name"], namespace=namespace))
            assert condition(obj, "Ready").get("status") == "True", (obj.get("status") or {}).get("conditions")

        eventually(ready, timeout=120, interval=0.5)

        health = httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=5, trust_env=False)
        assert health.status_code == 200, health.text
        readyz = httpx.get(f"http://127.0.0.1:{health_port}/readyz", timeout=5, trust_env=False)
        assert readyz.status_code == 200, readyz.text
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5, trust_env=False)
        assert metrics.status_code == 200
        samples = metric_samples(metrics.text)
        assert samples[("leader_election_master_status", (("name", LEASE),))] == 1.0
        assert any(name.startswith("fusioninfer_") for name, _ in samples), sorted({n for n, _ in samples})
        reconciled = sum(
            v for (name, labels), v in samples.items()
            if name == "controller_runtime_reconcile_total" and ("result", "success") in labels
        )  # fmt: skip
        assert reconciled >= 1, metrics.text
        gc_pauses = sum(v for (name, _), v in samples.items() if name == "fusioninfer_gc_pause_seconds_count")
        assert gc_pauses > 0, "the garbage collector's pauses are measured in the running operator"

        # As the kubelet stops a pod: SIGTERM to PID 1, which is `fusioninfer run` itself (the
        # exec-form ENTRYPOINT), running as UID 65532.
        top = podman.run("top", container.name, "pid", "user", "args").stdout.splitlines()
        pid1 = next(line.split(None, 2) for line in top[1:] if line.split()[0] == "1")
        assert pid1[1] == str(UID), top
        assert pid1[2].split()[1:3] == ["/opt/fusioninfer/bin/fusioninfer", "run"], top
        stopping = time.monotonic()
        podman.run("kill", "--signal", "TERM", container.name)
        waited = podman.run("wait", "--interval", "50ms", container.name, timeout=30)
        took = time.monotonic() - stopping
        logs = container.logs()

    assert took < 5.0, f"exited {took:.1f}s after SIGTERM:\n{logs}"
    assert waited.stdout.strip() == "0", f"exit code {waited.stdout.strip()}:\n{logs}"
    spec = lease_spec(client, namespace)
    assert not spec.get("holderIdentity"), f"the lease was not released: {spec}"
    assert f"released by {holder}" in logs, logs
    say(f"[fusioninfer] {image.tag} ({image.size / 1e6:.0f} MB) stopped {took:.2f}s after SIGTERM, lease released")
