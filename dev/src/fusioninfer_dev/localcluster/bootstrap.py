"""What a new local cluster needs before and while its components start, done once by `up`:
ports, the admin token, keys and certificates, the kubeconfig and every component's argv (all
recorded in the state, so a restart reuses them), then the objects that must exist before a
component can serve (the LWS CRD and webhooks, the metrics APIServices) and the readiness checks
that a `/healthz` alone does not answer.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from fusioninfer_dev.localcluster import lws, metrics_api
from fusioninfer_dev.localcluster.components import (
    ADMIN_USER,
    APISERVER,
    CONTROLLER_MANAGER,
    ETCD,
    KWOK,
    LOOPBACK,
    LWS,
    METRICS_ADAPTER,
    SCHEDULER,
    TokenEntry,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    format_tokens_csv,
    new_token,
    pick_free_ports,
    scheduler_args,
    write_kubeconfig,
)
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR, install_crds
from fusioninfer_dev.localcluster.kwok import kwok_args
from fusioninfer_dev.localcluster.launcher import ProcessLauncher
from fusioninfer_dev.localcluster.state import ETCD_TEMP_PREFIX, STATE_VERSION, ClusterError, ClusterState

LWS_CRD_DIR = BUNDLED_CRD_DIR / "lws-v0.7.0"
FIELD_MANAGER = "fusioninfer-localcluster"
LWS_WEBHOOK_PATH = "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset"


def pick_pod_block() -> str:
    """A loopback /16 for one cluster's pods, at random so that clusters side by side differ."""
    return f"127.{secrets.randbelow(190) + 64}.0.0/16"


def generate_sa_keypair(key: Path, pub: Path) -> None:
    """RSA keypair the apiserver signs/verifies ServiceAccount tokens with (openssl CLI: no
    Python crypto dependency just for this)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError("openssl not found; install Debian's openssl package")
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    subprocess.run([openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)


def new_cluster(
    state: ClusterState,
    bins: Mapping[str, Path],
    *,
    etcd_parent_dir: Path | None,
    extra_apiserver_args: Sequence[str],
) -> None:
    """Fill a fresh `state` (and its directory) with everything the components start from."""
    state.dir.mkdir(parents=True, exist_ok=True)
    state.logs_dir.mkdir(exist_ok=True)
    etcd_client, etcd_peer, api_port, scheduler_port, kwok_port, *more_ports = pick_free_ports(10)
    lws_ports, metrics_ports = more_ports[:3], more_ports[3:]
    data_dir = state.dir / "etcd"
    if etcd_parent_dir is not None:
        data_dir = Path(tempfile.mkdtemp(prefix=ETCD_TEMP_PREFIX, dir=etcd_parent_dir))
    admin_token = new_token()
    server = f"https://{LOOPBACK}:{api_port}"
    state.data = {
        "version": STATE_VERSION,
        "server": server,
        "admin_token": admin_token,
        "ports": {
            "etcd_client": etcd_client,
            "etcd_peer": etcd_peer,
            "apiserver": api_port,
            "scheduler": scheduler_port,
            "kwok": kwok_port,
            "lws_webhook": lws_ports[0],
            "lws_metrics": lws_ports[1],
            "lws_health": lws_ports[2],
            "metrics_api": metrics_ports[0],
            "metrics_write": metrics_ports[1],
        },
        "etcd_data_dir": str(data_dir),
        "pod_block": pick_pod_block(),
        "processes": {},
        "argv": {},
    }
    state.save()
    sa_key = state.dir / "sa.key"
    generate_sa_keypair(sa_key, state.dir / "sa.pub")
    state.tokens_path.write_text(
        format_tokens_csv([TokenEntry(admin_token, ADMIN_USER, ADMIN_USER, ("system:masters",))])
    )
    os.chmod(state.tokens_path, 0o600)
    kubeconfig = write_kubeconfig(state.kubeconfig_path, server, admin_token)
    metrics_certs = state.dir / "metrics-certs"
    metrics_api.generate_certificates(metrics_certs)
    state.data["argv"] = {
        ETCD: etcd_args(bins["etcd"], data_dir, etcd_client, etcd_peer),
        APISERVER: apiserver_args(
            bins[APISERVER],
            etcd_port=etcd_client,
            secure_port=api_port,
            cert_dir=state.dir / "certs",
            sa_pub=state.dir / "sa.pub",
            sa_key=sa_key,
            tokens_file=state.tokens_path,
            extra=(*metrics_api.apiserver_aggregation_args(metrics_certs), *extra_apiserver_args),
        ),
        CONTROLLER_MANAGER: controller_manager_args(bins[CONTROLLER_MANAGER], kubeconfig, sa_key),
        SCHEDULER: scheduler_args(bins[SCHEDULER], kubeconfig, scheduler_port),
        KWOK: kwok_args(bins["kwok"], kubeconfig, server_port=kwok_port),
        LWS: lws.controller_args(bins["lws-controller"], kubeconfig, state.dir / "lws-config.yaml"),
        METRICS_ADAPTER: metrics_api.adapter_args(
            bins[METRICS_ADAPTER],
            kubeconfig,
            metrics_certs,
            secure_port=metrics_ports[0],
            write_port=metrics_ports[1],
        ),
    }
    state.save()


def _apply(client: Any, resource: Any, obj: dict[str, Any]) -> None:
    from lightkube.types import PatchType

    client.patch(
        resource,
        obj["metadata"]["name"],
        obj,
        namespace=obj["metadata"].get("namespace"),
        patch_type=PatchType.APPLY,
        field_manager=FIELD_MANAGER,
        force=True,
    )


def prepare_lws(state: ClusterState, client: Any) -> None:
    """What the LWS controller needs before it starts: its CRD (it exits without one), its
    configuration, a CA and serving certificate, and webhook configurations that send the
    apiserver to it."""
    from lightkube.generic_resource import create_global_resource

    ports = state.ports
    cert_dir = state.dir / "lws-certs"
    lws.generate_certificates(cert_dir)
    config = lws.controller_config(
        webhook_port=ports["lws_webhook"],
        cert_dir=cert_dir,
        metrics_port=ports["lws_metrics"],
        health_port=ports["lws_health"],
    )
    (state.dir / "lws-config.yaml").write_text(json.dumps(config, indent=2))
    ca_bundle = base64.b64encode((cert_dir / "ca.crt").read_bytes()).decode()
    install_crds(client, LWS_CRD_DIR, field_manager=FIELD_MANAGER)
    for config_obj in lws.webhook_configurations(ports["lws_webhook"], ca_bundle):
        kind = config_obj["kind"]
        resource = create_global_resource("admissionregistration.k8s.io", "v1", kind, kind.lower() + "s")
        _apply(client, resource, config_obj)


def register_metrics_api(state: ClusterState, client: Any) -> None:
    """Point the custom and external metrics APIs at the adapter (metrics_api.py says why an
    ExternalName Service). The HPA controller finds them through discovery once the adapter
    serves; until then the APIServices report Available=False and the HPA retries."""
    from lightkube.resources.apiregistration_v1 import APIService
    from lightkube.resources.core_v1 import Service

    ca_bundle = base64.b64encode((state.dir / "metrics-certs" / "ca.crt").read_bytes()).decode()
    for obj in metrics_api.api_objects(state.ports["metrics_api"], ca_bundle):
        _apply(client, Service if obj["kind"] == "Service" else APIService, obj)


def wait_lws_webhooks(state: ClusterState, launcher: ProcessLauncher, timeout: float) -> None:
    """The LWS controller reports ready before its webhooks are registered (they are set up in
    a goroutine after the certificates): wait until a webhook path answers something other
    than 404, or every LWS write would be refused meanwhile (failurePolicy Fail)."""
    url = f"https://{LOOPBACK}:{state.ports['lws_webhook']}{LWS_WEBHOOK_PATH}"
    with httpx.Client(verify=False, timeout=2.0, trust_env=False) as http:

        def probe() -> str | None:
            try:
                code = http.post(url, json={}).status_code
            except httpx.HTTPError as exc:
                return repr(exc)
            return None if code != 404 else "HTTP 404"

        launcher.wait_until(LWS, probe, timeout, "webhooks not served")


def wait_controller_manager(client: Any, launcher: ProcessLauncher, timeout: float) -> None:
    """Wait until kube-controller-manager has built its controller context and started its
    controllers, visible as the `default` ServiceAccount it creates in namespace `default`.

    Returning earlier is a trap: the controller manager exits for good ("unable to get any
    supported resources from server") if the apiserver goes away while it is still starting,
    which is exactly what an apiserver-restart test does right after `up()`.
    """
    from lightkube import ApiError
    from lightkube.resources.core_v1 import ServiceAccount

    def probe() -> str | None:
        try:
            client.get(ServiceAccount, "default", namespace="default")
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            return "no default ServiceAccount yet"
        return None

    launcher.wait_until(CONTROLLER_MANAGER, probe, timeout, "did not start its controllers")
