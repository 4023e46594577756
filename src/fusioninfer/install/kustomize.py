"""Render a kustomization directory without kustomize (for `make deploy` where no kubectl exists).

Only the subset `config/` uses is supported, and anything else is an error rather than being
silently ignored, so `fusioninfer deploy -k DIR` and `kubectl apply -k DIR` cannot disagree:

* `resources`: YAML files (several documents allowed) and directories with their own kustomization;
* `namespace`: set on every namespaced object; ServiceAccount subjects of (Cluster)RoleBindings
  follow a ServiceAccount that the same render moves (kustomize does the same);
* `images`: `name` with `newName` / `newTag` / `digest`, on pod-template containers.

Pure: reads files, never a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fusioninfer.kube.types import Obj

# A manifest of the operator's own install: a Kubernetes object, the one `Obj` type.
Manifest = Obj

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KEYS = frozenset({"apiVersion", "kind", "resources", "namespace", "images"})

CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "PersistentVolume",
        "IngressClass",
        "GatewayClass",
    }
)

# kustomize's legacy apply order: what others depend on first.
APPLY_ORDER = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)


class KustomizeError(ValueError):
    """The directory uses something this renderer does not support, or is malformed."""


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise KustomizeError(f"{directory}: no kustomization.yaml")


def load_kustomization(directory: Path) -> dict[str, Any]:
    path = kustomization_file(directory)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise KustomizeError(f"{path}: not a mapping")
    unsupported = sorted(set(data) - SUPPORTED_KEYS)
    if unsupported:
        raise KustomizeError(
            f"{path}: unsupported fields {', '.join(unsupported)} (supported: resources, namespace, images)"
        )
    return data


def load_yaml_documents(path: Path) -> list[Manifest]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: every document needs apiVersion and kind")
    return docs


def split_image(image: str) -> tuple[str, str]:
    """'reg:5000/a/b:tag' -> ('reg:5000/a/b', ':tag'); 'a@sha256:x' -> ('a', '@sha256:x')."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _new_image(image: str, rule: Mapping[str, Any]) -> str:
    name, suffix = split_image(image)
    new_name = str(rule.get("newName") or name)
    if rule.get("digest"):
        return f"{new_name}@{rule['digest']}"
    if rule.get("newTag"):
        return f"{new_name}:{rule['newTag']}"
    return new_name + suffix


def _pod_specs(obj: Manifest) -> Iterable[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        yield spec
    template = spec.get("template") or (spec.get("jobTemplate", {}).get("spec", {}).get("template"))
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]


def set_images(objects: list[Manifest], rules: Iterable[Mapping[str, Any]]) -> None:
    """kustomize's `images` transformer (in place)."""
    by_name = {str(r["name"]): r for r in rules}
    for obj in objects:
        for pod in _pod_specs(obj):
            for key in ("initContainers", "containers"):
                for container in pod.get(key) or []:
                    image = container.get("image")
                    if isinstance(image, str) and split_image(image)[0] in by_name:
                        container["image"] = _new_image(image, by_name[split_image(image)[0]])


def set_namespace(objects: list[Manifest], namespace: str) -> None:
    """kustomize's `namespace` field (in place)."""
    moved: set[tuple[str, str]] = set()
    for obj in objects:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        meta = obj.setdefault("metadata", {})
        if obj["kind"] == "ServiceAccount":
            moved.add((str(meta.get("namespace") or ""), str(meta.get("name"))))
        meta["namespace"] = namespace
    for obj in objects:
        if obj["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and (
                (str(subject.get("namespace") or ""), str(subject.get("name"))) in moved
            ):
                subject["namespace"] = namespace


IMAGE_NAME = "fusioninfer"


def render(directory: Path | str, *, image: str | None = None, image_name: str = IMAGE_NAME) -> list[Manifest]:
    """Every object of the kustomization in `directory`, in apply order.

    `image` then replaces every container image named `image_name` (any tag), as
    `kustomize edit set image fusioninfer=IMAGE` before `kubectl apply -k` would.
    """
    objects = _render(Path(directory).resolve(), [])
    if image:
        new_name, suffix = split_image(image)
        rule: dict[str, Any] = {"name": image_name, "newName": new_name}
        if suffix.startswith("@"):
            rule["digest"] = suffix[1:]
        elif suffix:
            rule["newTag"] = suffix[1:]
        set_images(objects, [rule])
    return sort_for_apply(objects)


def _render(directory: Path, stack: list[Path]) -> list[Manifest]:
    if directory in stack:
        raise KustomizeError(f"{directory}: kustomization cycle")
    data = load_kustomization(directory)
    objects: list[Manifest] = []
    for entry in data.get("resources") or []:
        path = (directory / str(entry)).resolve()
        if path.is_dir():
            objects.extend(_render(path, [*stack, directory]))
        elif path.is_file():
            objects.extend(copy.deepcopy(load_yaml_documents(path)))
        else:
            raise KustomizeError(f"{directory}: resource {entry} not found")
    if data.get("namespace"):
        set_namespace(objects, str(data["namespace"]))
    if data.get("images"):
        set_images(objects, data["images"])
    _check_unique(objects, directory)
    return objects


def _check_unique(objects: list[Manifest], directory: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        meta = obj.get("metadata") or {}
        key = (obj["apiVersion"], obj["kind"], str(meta.get("namespace") or ""), str(meta.get("name")))
        if key in seen:
            raise KustomizeError(f"{directory}: {key[1]} {key[3]} appears twice")
        seen.add(key)


def sort_for_apply(objects: list[Manifest]) -> list[Manifest]:
    def key(obj: Manifest) -> int:
        kind = obj["kind"]
        return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)

    return sorted(objects, key=key)  # stable: file order within a kind


def to_yaml(objects: Iterable[Manifest]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False, width=120)
