"""`make deploy` / `make undeploy` without kubectl: apply or delete a rendered kustomization.

Objects are server-side applied (field manager `fusioninfer-deploy`) in kustomize's order;
CRDs go through `fusioninfer.install.crds.apply_crds`, which adapts them to the server (CEL rules
stripped before 1.25) and waits until they are Established, so samples applied right after
a deploy find their kind. Deletion runs in reverse order and ignores what is already gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.types import CascadeType, PatchType

from fusioninfer.install.crds import apply_crds
from fusioninfer.install.kustomize import Manifest
from fusioninfer.runtime.registry import default_registry, is_namespaced, raw_resource

FIELD_MANAGER = "fusioninfer-deploy"
DEFAULT_NAMESPACE = "default"


def client_for(kubeconfig: str | Path | None) -> Client:
    config = KubeConfig.from_file(Path(kubeconfig).expanduser()) if kubeconfig else KubeConfig.from_env()
    return Client(config=config, field_manager=FIELD_MANAGER)


def describe(obj: Manifest) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind'].lower()} {where}{meta.get('name')}"


def _resource(obj: Manifest) -> Any:
    return raw_resource(default_registry.for_manifest(obj))


def apply_objects(client: Client, objects: Sequence[Manifest], default_namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Server-side apply `objects` in order; returns one line per object."""
    done: list[str] = []
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    if crds:
        apply_crds(client, crds)
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition":
            done.append(f"{describe(obj)} established")
            continue
        res = _resource(obj)
        body = dict(obj)
        namespace = None
        if is_namespaced(res):
            namespace = str((obj.get("metadata") or {}).get("namespace") or default_namespace)
            body = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        client.patch(
            res,
            obj["metadata"]["name"],
            body,
            namespace=namespace,
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        done.append(f"{describe(body)} applied")
    return done


def delete_objects(
    client: Client, objects: Sequence[Manifest], default_namespace: str = DEFAULT_NAMESPACE
) -> list[str]:
    """Delete `objects` in reverse order (background propagation: the garbage collector finishes)."""
    done: list[str] = []
    for obj in reversed(objects):
        res = _resource(obj)
        namespace = (
            str((obj.get("metadata") or {}).get("namespace") or default_namespace) if is_namespaced(res) else None
        )
        try:
            client.delete(res, obj["metadata"]["name"], namespace=namespace, cascade=CascadeType.BACKGROUND)
            done.append(f"{describe(obj)} deleted")
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            done.append(f"{describe(obj)} not found")
    return done


def deploy(objects: Sequence[Manifest], kubeconfig: str | Path | None = None) -> list[str]:
    """Apply rendered objects (see `kustomize.render`) to the cluster of `kubeconfig`."""
    with client_for(kubeconfig) as client:
        return apply_objects(client, objects)


def undeploy(objects: Sequence[Manifest], kubeconfig: str | Path | None = None) -> list[str]:
    """Delete rendered objects from the cluster of `kubeconfig`."""
    with client_for(kubeconfig) as client:
        return delete_objects(client, objects)
