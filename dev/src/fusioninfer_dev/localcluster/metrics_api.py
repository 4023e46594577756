"""The local cluster's custom and external metrics APIs, as the HPA controller reads them.

kube-controller-manager's HorizontalPodAutoscaler controller asks the aggregated APIs
`custom.metrics.k8s.io` (Pods and Object metrics) and `external.metrics.k8s.io` for the values
it scales on. In a real cluster prometheus-adapter or KEDA serve them; here the adapter is the
sample provider of `sigs.k8s.io/custom-metrics-apiserver` (built from its module by
`build.CUSTOM_METRICS`), which takes values over plain HTTP, and `metrics_feeder` writes into it
what the pods' own `/metrics` say, as Prometheus would scrape them.

What makes the aggregation work on loopback, all pure here (unit-tested):

- kube-apiserver proxies to an extension server with a client certificate (`--proxy-client-*`)
  that the extension server trusts through `--requestheader-client-ca-file`;
- an `APIService` names a Service; the apiserver resolves an `ExternalName` Service to its
  host name and the APIService's port, so `localhost:<port>` works where a ClusterIP would
  need a kube-proxy and an Endpoints address may not be loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fusioninfer_dev.localcluster import certs
from fusioninfer_dev.localcluster.components import LOOPBACK

NAMESPACE = "kube-system"
SERVICE = "fusioninfer-local-metrics"
FRONT_PROXY_CN = "front-proxy-client"
CERT_FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key", "proxy-client.crt", "proxy-client.key")
# (group, version) pairs the adapter serves; the HPA controller prefers custom.metrics v1beta2.
API_VERSIONS = (
    ("custom.metrics.k8s.io", "v1beta2"),
    ("custom.metrics.k8s.io", "v1beta1"),
    ("external.metrics.k8s.io", "v1beta1"),
)


def apiserver_aggregation_args(cert_dir: Path) -> list[str]:
    """kube-apiserver flags for the aggregation layer: its proxy client certificate and the CA
    extension servers verify it with (the front proxy's request headers)."""
    return [
        f"--requestheader-client-ca-file={cert_dir / 'ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CN}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={cert_dir / 'proxy-client.crt'}",
        f"--proxy-client-key-file={cert_dir / 'proxy-client.key'}",
    ]


def adapter_args(binary: Path, kubeconfig: Path, cert_dir: Path, *, secure_port: int, write_port: int) -> list[str]:
    """The adapter's argv: TLS with our serving certificate on loopback, the admin kubeconfig
    for listing pods and for delegated authentication/authorization (TokenReview and
    SubjectAccessReview, as every aggregated server does), writes on `write_port`."""
    return [
        str(binary),
        f"--bind-address={LOOPBACK}",
        f"--secure-port={secure_port}",
        f"--tls-cert-file={cert_dir / 'tls.crt'}",
        f"--tls-private-key-file={cert_dir / 'tls.key'}",
        f"--lister-kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--write-address={LOOPBACK}:{write_port}",
    ]


def api_objects(secure_port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """The ExternalName Service and the APIServices that send the metrics APIs to the adapter.
    `ca_bundle` is the base64 PEM of the CA that signed the adapter's serving certificate."""
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }
    api_services = [
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": f"{version}.{group}"},
            "spec": {
                "group": group,
                "version": version,
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": secure_port},
                "caBundle": ca_bundle,
                "groupPriorityMinimum": 100,
                "versionPriority": 200 if version == "v1beta2" else 100,
            },
        }
        for group, version in API_VERSIONS
    ]
    return [service, *api_services]


def write_url(write_port: int, namespace: str, pod: str, metric: str) -> str:
    """Where the adapter takes the value of a Pods metric of one pod (POST, JSON quantity)."""
    return (
        f"http://{LOOPBACK}:{write_port}/write-metrics/namespaces/{quote(namespace)}/pods/"
        f"{quote(pod)}/{quote(metric, safe=':')}"
    )


def generate_certificates(cert_dir: Path) -> None:
    """A CA, the adapter's serving certificate (the Service's DNS name, which the apiserver
    checks, localhost, 127.0.0.1) and the apiserver's proxy
    client certificate, all signed by it. Kept when present: restarted components must go on
    trusting what the registered `caBundle` and the apiserver's flags name."""
    if certs.present(cert_dir, CERT_FILES):
        return
    signer = certs.Signer(cert_dir)
    signer.ca("fusioninfer-local-metrics-ca")
    # The apiserver dials the ExternalName's host but verifies the name of the Service.
    names = f"DNS:{SERVICE}.{NAMESPACE}.svc,DNS:localhost,IP:{LOOPBACK}"
    signer.leaf("tls", "localhost", f"subjectAltName={names}\n{certs.SERVER_USAGE}")
    signer.leaf("proxy-client", FRONT_PROXY_CN, certs.CLIENT_USAGE)
