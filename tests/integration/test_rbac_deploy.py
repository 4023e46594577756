"""`make deploy` / `make undeploy` against the real apiserver, with the Makefile's own commands:
the kustomization `make deploy` applies (config/default with the image IMG, written by
`make deploy-overlay`) is accepted by `kubectl apply --server-side -k` as it is (server-side apply
rejects unknown or misspelt fields of built-in kinds), the image is replaced, a second apply
changes nothing, and `kubectl delete -k` removes what deploy created (and, run again on what is
gone, still succeeds).

The CRD is left out (a kustomization around the overlay deletes it from the render): the
session's other tests share it, and undeploy would delete it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from tests.support.eventually import eventually
from tests.support.kubectl import deploy_overlay, kubectl, kustomize

from fusioninfer.api.crd import crd as generate_crd
from fusioninfer.install import rbac
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

IMAGE = "registry.example/fusioninfer:v0.0.0-test"
NAMESPACE = "fusioninfer-system"
MANAGER = "fusioninfer-controller-manager"
BINDING = "fusioninfer-manager-rolebinding"


def without_crd(overlay: Path, directory: Path) -> Path:
    """A kustomization of `overlay` minus our CRD."""
    directory.mkdir(parents=True)
    crd = generate_crd()
    delete = {
        "$patch": "delete",
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": {"name": crd["metadata"]["name"]},
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(overlay, directory)],
        "patches": [{"patch": yaml.safe_dump(delete)}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def test_deploy_then_undeploy_config_default(cluster: LocalCluster, tmp_path: Path) -> None:
    kustomization = without_crd(deploy_overlay(tmp_path, IMAGE), tmp_path / "without-crd")
    objects = kustomize(kustomization)
    assert [o["kind"] for o in objects] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    kubeconfig = cluster.kubeconfig_path
    # `make deploy` and `make undeploy`, as the Makefile runs them.
    deploy = ("apply", "--server-side", "--force-conflicts", "-k", kustomization)
    undeploy = ("delete", "--ignore-not-found=true", "-k", kustomization)
    with cluster.client(field_manager="fusioninfer-tests") as admin:
        assert isinstance(admin, Client)
        try:
            lines = kubectl(*deploy, kubeconfig=kubeconfig).splitlines()
            assert len(lines) == len(objects), lines
            assert all(line.endswith(" serverside-applied") for line in lines), lines

            dep = admin.get(Deployment, MANAGER, namespace=NAMESPACE)
            assert dep.spec is not None
            assert dep.spec.template.spec is not None
            assert dep.spec.template.spec.containers[0].image == IMAGE
            assert dep.spec.template.spec.serviceAccountName == MANAGER
            admin.get(ServiceAccount, MANAGER, namespace=NAMESPACE)
            role = admin.get(ClusterRole, rbac.CLUSTER_ROLE_NAME)
            assert [r.to_dict() for r in role.rules or []] == rbac.operator_rules()
            admin.get(ClusterRoleBinding, BINDING)

            # Idempotent: a second deploy changes nothing and succeeds.
            generation = dep.metadata.generation if dep.metadata else None
            kubectl(*deploy, kubeconfig=kubeconfig)
            again = admin.get(Deployment, MANAGER, namespace=NAMESPACE)
            assert again.metadata is not None
            assert again.metadata.generation == generation
        finally:
            deleted = kubectl(*undeploy, kubeconfig=kubeconfig).splitlines()
        # `namespace "fusioninfer-system" deleted`, `deployment.apps "..." deleted from fusioninfer-system namespace`
        assert len(deleted) == len(objects), deleted
        assert all(re.fullmatch(r'\S+ "[^"]+" deleted( from \S+ namespace)?', line) for line in deleted), deleted

        def gone() -> None:
            for res, name in ((ClusterRole, rbac.CLUSTER_ROLE_NAME), (ClusterRoleBinding, BINDING)):
                with pytest.raises(ApiError) as err:
                    admin.get(res, name)
                assert err.value.status.code == 404
            for ns in admin.list(Namespace):
                if ns.metadata is not None and ns.metadata.name == NAMESPACE:
                    assert ns.metadata.deletionTimestamp is not None, "namespace not being deleted"

        eventually(gone, timeout=30.0)
        # Undeploy of what is gone does not fail.
        kubectl(*undeploy, kubeconfig=kubeconfig)
