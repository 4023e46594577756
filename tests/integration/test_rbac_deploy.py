"""`make deploy` / `make undeploy` against the real apiserver: config/default is accepted as it is
(server-side apply rejects unknown or misspelt fields of built-in kinds), the image is replaced,
and undeploy removes what deploy created.

The CRD is left out: the session's other tests share it, and undeploy would delete it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from tests.support.eventually import eventually

from fusioninfer.install import rbac
from fusioninfer.install.deploy import apply_objects, delete_objects
from fusioninfer.install.kustomize import render
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/fusioninfer:v0.0.0-test"


def test_deploy_then_undeploy_config_default(cluster: LocalCluster) -> None:
    objects = [o for o in render(ROOT / "config" / "default", image=IMAGE) if o["kind"] != "CustomResourceDefinition"]
    with cluster.client(field_manager="fusioninfer-tests") as admin:
        assert isinstance(admin, Client)
        try:
            lines = apply_objects(admin, objects)
            assert len(lines) == len(objects)
            assert all(line.endswith(" applied") for line in lines)

            dep = admin.get(Deployment, "fusioninfer-controller-manager", namespace="fusioninfer-system")
            assert dep.spec is not None
            assert dep.spec.template.spec is not None
            assert dep.spec.template.spec.containers[0].image == IMAGE
            assert dep.spec.template.spec.serviceAccountName == "fusioninfer-controller-manager"
            admin.get(ServiceAccount, "fusioninfer-controller-manager", namespace="fusioninfer-system")
            role = admin.get(ClusterRole, rbac.CLUSTER_ROLE_NAME)
            assert [r.to_dict() for r in role.rules or []] == rbac.operator_rules()
            admin.get(ClusterRoleBinding, "fusioninfer-manager-rolebinding")

            # Idempotent: a second deploy changes nothing and succeeds.
            generation = dep.metadata.generation if dep.metadata else None
            apply_objects(admin, objects)
            again = admin.get(Deployment, "fusioninfer-controller-manager", namespace="fusioninfer-system")
            assert again.metadata is not None
            assert again.metadata.generation == generation
        finally:
            deleted = delete_objects(admin, objects)
        assert all(line.endswith((" deleted", " not found")) for line in deleted)

        def gone() -> None:
            for res, name in (
                (ClusterRole, rbac.CLUSTER_ROLE_NAME),
                (ClusterRoleBinding, "fusioninfer-manager-rolebinding"),
            ):
                with pytest.raises(ApiError) as err:
                    admin.get(res, name)
                assert err.value.status.code == 404
            for ns in admin.list(Namespace):
                if ns.metadata is not None and ns.metadata.name == "fusioninfer-system":
                    assert ns.metadata.deletionTimestamp is not None, "namespace not being deleted"

        eventually(gone, timeout=30.0)
        # Undeploy of what is gone reports it and does not fail.
        assert all(line.endswith((" deleted", " not found")) for line in delete_objects(admin, objects))
