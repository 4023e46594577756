"""The real LeaderWorkerSet controller (`sigs.k8s.io/lws`), run out of cluster with its webhooks.

LWS is of no use without its webhooks: the pod webhook adds the group and worker-index labels and
injects `LWS_LEADER_ADDRESS`, `LWS_GROUP_SIZE` and `LWS_WORKER_INDEX`; the LWS webhooks default
and validate the LeaderWorkerSet itself. In a cluster they are reached through a Service and
certificates the controller manages; here the controller serves them on `127.0.0.1:<port>` with
a CA and serving certificate we generate, and we register Mutating/Validating webhook
configurations that point at that URL, with upstream's paths, rules and object selectors
(`config/webhook/manifests.yaml` plus its kustomize patches, v0.7.0).

Everything here but `generate_certificates` (openssl) is pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster import certs
from fusioninfer_dev.localcluster.components import LOOPBACK

CONFIG_API_VERSION = "config.lws.x-k8s.io/v1alpha1"
MUTATING_NAME = "lws-mutating-webhook-configuration"
VALIDATING_NAME = "lws-validating-webhook-configuration"
POD_SELECTOR = {"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]}
CERT_FILES = ("ca.crt", "tls.crt", "tls.key")


def controller_config(*, webhook_port: int, cert_dir: Path, metrics_port: int, health_port: int) -> dict[str, Any]:
    """The controller's `Configuration`: no leader election (one replica), no internal cert
    management (our certificates), every listener on loopback."""
    return {
        "apiVersion": CONFIG_API_VERSION,
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": LOOPBACK, "port": webhook_port, "certDir": str(cert_dir)},
        "metrics": {"bindAddress": f"{LOOPBACK}:{metrics_port}"},
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{health_port}"},
    }


def controller_args(binary: Path, kubeconfig: Path, config: Path) -> list[str]:
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--config={config}", "--zap-log-level=info"]


def _webhook(
    name: str, path: str, url_base: str, ca_bundle: str, resource: str, operations: list[str]
) -> dict[str, Any]:
    group = "leaderworkerset.x-k8s.io" if resource == "leaderworkersets" else ""
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": f"{url_base}{path}", "caBundle": ca_bundle},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": operations,
                "resources": [resource],
                "scope": "*",
            }
        ],
    }
    if resource == "pods":
        hook["objectSelector"] = POD_SELECTOR
    return hook


def webhook_configurations(port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """Upstream's four webhooks (paths, rules, failure policy, the pods' object selector), with a
    URL on loopback instead of the in-cluster Service. `ca_bundle` is the base64 PEM of our CA."""
    base = f"https://{LOOPBACK}:{port}"
    write = ["CREATE", "UPDATE"]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": MUTATING_NAME},
            "webhooks": [
                _webhook(
                    "mleaderworkerset.kb.io",
                    "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    base,
                    ca_bundle,
                    "leaderworkersets",
                    write,
                ),
                _webhook("mpod.kb.io", "/mutate--v1-pod", base, ca_bundle, "pods", write),
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VALIDATING_NAME},
            "webhooks": [
                _webhook(
                    "vleaderworkerset.kb.io",
                    "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    base,
                    ca_bundle,
                    "leaderworkersets",
                    write,
                ),
                _webhook("vpod.kb.io", "/validate--v1-pod", base, ca_bundle, "pods", write),
            ],
        },
    ]


def generate_certificates(cert_dir: Path) -> None:
    """A CA (`ca.crt`) and a serving certificate for IP 127.0.0.1 signed by it (`tls.crt`,
    `tls.key`: the names controller-runtime's webhook server reads). Kept when present, so a
    restarted controller serves what the registered `caBundle` trusts."""
    if certs.present(cert_dir, CERT_FILES):
        return
    signer = certs.Signer(cert_dir)
    signer.ca("fusioninfer-local-lws-ca")
    signer.leaf("tls", LOOPBACK, f"subjectAltName=IP:{LOOPBACK}\n{certs.SERVER_USAGE}")
