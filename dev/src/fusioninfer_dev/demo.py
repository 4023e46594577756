"""`fusioninfer demo`: the whole product on one machine, no GPU and no input needed.

Brings up the local control plane (real kube-apiserver, controller-manager, scheduler) with
simulated GPU nodes, installs the CRDs, starts the operator as a background process, applies
examples, waits until every InferenceService is Ready, and prints what was created.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import ApiError, AsyncClient, KubeConfig
from rich.console import Console

from fusioninfer.api.naming import route_name
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL
from fusioninfer.install.crds import install_crds
from fusioninfer.kube.conditions import find_condition
from fusioninfer.kube.yaml import load_all
from fusioninfer.runtime.apply import apply
from fusioninfer.runtime.registry import default_registry
from fusioninfer.status_view import render_services, service_children

# The P/D example with NixlConnector: the seed's PyNcclConnector no longer starts on vLLM 0.11.
DEFAULT_EXAMPLES = ("examples/monolithic.yaml", "examples/pd-disaggregated-nixl.yaml", "examples/multinode.yaml")
NAMESPACE = "fusioninfer-demo"
# The examples' routes name this Gateway; the demo creates it, of the fake gateway's class.
GATEWAY_NAME = "inference-gateway"
GPU = "nvidia.com/gpu"


class DemoFailed(RuntimeError):
    """The demo could not reach its goal; the message says why and where to look."""


@dataclass
class DemoOptions:
    state_dir: Path = Path(".fusioninfer/demo")
    examples: list[Path] = field(default_factory=lambda: [Path(p) for p in DEFAULT_EXAMPLES])
    nodes: int = 4
    gpus_per_node: int = 8
    timeout: float = 180.0
    teardown: bool = False


def _load_examples(paths: list[Path]) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        if not path.exists():
            raise DemoFailed(f"example {path} not found (run the demo from the repository root)")
        for doc in load_all(path.read_text()):
            if isinstance(doc, dict):
                doc.setdefault("metadata", {})["namespace"] = NAMESPACE
                docs.append(doc)
    return docs


# What the local gateway reports for a pool whose picker cannot run here (the llm-d picker).
PICKER_UNAVAILABLE = "EndpointPickerUnavailable"
UNRUNNABLE_HERE = "cannot be built on this machine"


MODEL_CONFLICT = "ModelNameConflict"


def route_unservable(obj: dict[str, Any]) -> str | None:
    """Why requests cannot reach this service at all (None: they can, or may soon): its picker
    cannot run on this machine, or an older service on the Gateway serves its model name."""
    route = find_condition((obj.get("status") or {}).get("conditions"), "RouteReady") or {}
    if route.get("reason") == PICKER_UNAVAILABLE and UNRUNNABLE_HERE in str(route.get("message")):
        return str(route.get("message"))
    if route.get("reason") == MODEL_CONFLICT:
        return f"{MODEL_CONFLICT}: {route.get('message')}"
    return None


def _ready(obj: dict[str, Any]) -> bool:
    """Ready, and its route accepted when it has one (the local gateway reports on it), unless
    its endpoint picker is one that cannot run on this machine (then that is reported)."""
    conds = (obj.get("status") or {}).get("conditions")
    route = find_condition(conds, "RouteReady")
    routed = route is None or route.get("status") == "True" or route_unservable(obj) is not None
    return (find_condition(conds, "Ready") or {}).get("status") == "True" and routed


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def pod_gpus(doc: dict[str, Any]) -> list[int]:
    """The `nvidia.com/gpu` each serving pod of an InferenceService asks for (one entry per pod;
    limits count where requests are absent, as the scheduler does)."""
    out: list[int] = []
    for role in (doc.get("spec") or {}).get("roles") or []:
        if role.get("componentType") == "router":
            continue
        replicas = _int(role.get("replicas", role.get("roleReplicas", 1)), 1)
        nodes = _int((role.get("multinode") or {}).get("nodeCount", role.get("podReplicas", 1)), 1)
        per_pod = 0
        for container in ((role.get("template") or {}).get("spec") or {}).get("containers") or []:
            res = container.get("resources") or {}
            per_pod += _int((res.get("requests") or {}).get(GPU, (res.get("limits") or {}).get(GPU, 0)), 0)
        out.extend([per_pod] * (replicas * nodes))
    return out


def nodes_needed(pods: list[int], gpus_per_node: int) -> int | None:
    """Nodes of `gpus_per_node` GPUs that hold all `pods` wherever the schedulers put them, or
    None if some pod is larger than a node.

    One node per GPU pod. Packing tighter is not safe: the default scheduler spreads pods, so a
    1-GPU pod may land on the last empty node and leave a gang of 8-GPU pods one node short (seen
    on a first `make demo`). With as many nodes as GPU pods, every pod placed so far occupies at
    most one node each, so an empty node is always left for the next one, in any order.
    """
    if any(g > gpus_per_node for g in pods):
        return None
    return sum(1 for g in pods if g > 0)


def plan_examples(docs: list[dict[str, Any]], gpus_per_node: int) -> tuple[list[dict[str, Any]], list[str], int]:
    """(services to deploy, why others are skipped, simulated nodes needed for them)."""
    keep, skipped, pods = [], [], []
    for doc in docs:
        name = doc["metadata"]["name"]
        wanted = pod_gpus(doc)
        if nodes_needed(wanted, gpus_per_node) is None:
            skipped.append(f"{name}: a pod needs {max(wanted)} GPUs, a node has {gpus_per_node}")
            continue
        keep.append(doc)
        pods.extend(wanted)
    return keep, skipped, nodes_needed(pods, gpus_per_node) or 0


async def _wait_ready(client: AsyncClient, names: list[str], wait: float, console: Console) -> dict[str, Any]:
    resource = default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)
    deadline = time.monotonic() + wait
    last: dict[str, Any] = {}
    shown: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name in names:
            obj = dict(await client.get(resource, name, namespace=NAMESPACE))
            last[name] = obj
            status = obj.get("status") or {}
            line = f"{status.get('phase', 'Pending')} ({status.get('readyRoles', '0/?')} roles ready)"
            if shown.get(name) != line:
                console.print(f"  {name}: {line}")
                shown[name] = line
        if all(_ready(o) for o in last.values()):
            return last
        await asyncio.sleep(1.0)
    not_ready = {
        n: (find_condition((o.get("status") or {}).get("conditions"), "Ready") or {}).get("message", "no status yet")
        for n, o in last.items()
    }
    raise DemoFailed(f"not Ready within {wait:.0f}s: {not_ready}")


async def _run_demo(kubeconfig: Path, options: DemoOptions, docs: list[dict[str, Any]], console: Console) -> None:
    from fusioninfer_dev.localcluster.gateway.status import (
        DEFAULT_GATEWAY_CLASS,
        gateway_class_manifest,
        gateway_manifest,
    )

    client = AsyncClient(config=KubeConfig.from_file(kubeconfig), field_manager="fusioninfer-demo")
    try:
        await apply(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, "demo")
        console.print(
            f"      GatewayClass {DEFAULT_GATEWAY_CLASS} (local gateway: Envoy + endpoint pickers), "
            f"Gateway {NAMESPACE}/{GATEWAY_NAME}"
        )
        await apply(client, gateway_class_manifest(), "fusioninfer-demo")
        await apply(client, gateway_manifest(NAMESPACE, GATEWAY_NAME), "fusioninfer-demo")
        for doc in docs:
            console.print(f"applying InferenceService {NAMESPACE}/{doc['metadata']['name']}")
            await apply(client, doc, "fusioninfer-demo")
            await _wait_route(client, doc)
        console.print("waiting until every InferenceService is Ready ...")
        names = [d["metadata"]["name"] for d in docs]
        services = await _wait_ready(client, names, options.timeout, console)
        children = {name: await service_children(client, NAMESPACE, name) for name in names}
        render_services(console, NAMESPACE, services, children)
        await _send_request(client, services, console)
    finally:
        await client.close()


def _has_router(doc: dict[str, Any]) -> bool:
    return any(role.get("componentType") == "router" for role in (doc.get("spec") or {}).get("roles") or [])


async def _wait_route(client: AsyncClient, doc: dict[str, Any], wait: float = 60.0) -> None:
    """Until the HTTPRoute of a just-applied service with a router exists.

    Two examples serve the same model name (the monolithic one and the P/D one, as in the seed
    README), and on a Gateway the older route wins it. Applied at once, which route the operator
    creates first is a race (its workers reconcile them in parallel), and with it which service
    answers the seed's request. Applied one route at a time, the first example in the list wins,
    as the README shows."""
    if not _has_router(doc):
        return
    service = doc["metadata"]["name"]
    deadline = time.monotonic() + wait
    while await _get_route(client, service) is None:
        if time.monotonic() > deadline:
            raise DemoFailed(f"HTTPRoute {NAMESPACE}/{route_name(service)} was not created within {wait:.0f}s")
        await asyncio.sleep(0.2)


async def _get_route(client: AsyncClient, service: str) -> dict[str, Any] | None:
    """The service's HTTPRoute, or None while there is none."""
    from fusioninfer_dev.localcluster.gateway.status import HTTPRoute

    try:
        return dict(await client.get(HTTPRoute, route_name(service), namespace=NAMESPACE))
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


async def _route_models(client: AsyncClient, service: str) -> list[str]:
    """The model names a service's HTTPRoute matches (what a client sends as "model")."""
    from fusioninfer.controller.route_conflicts import model_values

    route = await _get_route(client, service)
    return sorted(model_values(route)) if route is not None else []  # none: not behind the Gateway


async def _send_request(client: AsyncClient, services: dict[str, Any], console: Console) -> None:
    """The seed README's last step, through the Gateway; fails the demo when it gets no answer."""
    from fusioninfer_dev.demo_traffic import SEED_REQUEST, chat, curl_command
    from fusioninfer_dev.localcluster.gateway.status import Gateway

    # Programmed: Envoy serves the listener with the body-based router in its chain (routes
    # match the model header that router sets; before it, every request would be a 404).
    deadline = time.monotonic() + 60
    while True:
        gateway = dict(await client.get(Gateway, GATEWAY_NAME, namespace=NAMESPACE))
        status = gateway.get("status") or {}
        addresses = status.get("addresses") or []
        programmed = (find_condition(status.get("conditions"), "Programmed") or {}).get("status") == "True"
        if programmed and addresses:
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"Gateway {NAMESPACE}/{GATEWAY_NAME} is not Programmed with an address: {status}")
        await asyncio.sleep(0.5)
    address = str(addresses[0]["value"])
    console.print(f"\n[bold]Send Request[/] (the seed README's last step) to Gateway {GATEWAY_NAME} at {address}:")
    models: dict[str, str] = {}
    for name, obj in services.items():
        why = route_unservable(obj)
        if why is not None:
            console.print(f"  {name}: not routable: {why}")
            continue
        for model in await _route_models(client, name):
            models.setdefault(model, name)
    # The seed's request first, then one per other model a routable service serves.
    ordered = [str(SEED_REQUEST["model"]), *sorted(m for m in models if m != SEED_REQUEST["model"])]
    for model in ordered:
        body = {**SEED_REQUEST, "model": model}
        answer = await chat(address, body)
        if answer.status != 200:
            raise DemoFailed(f"the gateway answered {answer.status} for model {model}: {answer.body[:500]}")
        served = f"InferenceService {models[model]}, " if model in models else ""
        console.print(f"  POST http://{address}/v1/chat/completions  model={model}")
        console.print(f"  -> {answer.status}, served by {served}pod {answer.pod or '?'}: {answer.text!r}")
    console.print("\nSend it yourself while the demo cluster is up:")
    console.print(curl_command(GATEWAY_NAME, NAMESPACE), markup=False, soft_wrap=True)


def run_demo(options: DemoOptions, console: Console | None = None) -> None:
    """Everything `make demo` does. Raises DemoFailed with a reason on failure."""
    from fusioninfer_dev.localcluster.cluster import LocalCluster
    from fusioninfer_dev.localcluster.components import FAKES, pick_free_ports
    from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR

    console = console or Console(highlight=False)
    docs, skipped, needed = plan_examples(_load_examples(options.examples), options.gpus_per_node)
    for reason in skipped:
        console.print(f"skipping {reason}")
    if not docs:
        raise DemoFailed("no example fits the simulated nodes: " + "; ".join(skipped))
    nodes = max(options.nodes, needed)
    cluster = LocalCluster(options.state_dir)
    if cluster.processes():
        # The demo always starts from a clean cluster (its own state dir, never `cluster up`'s).
        console.print(f"removing the previous demo cluster in {options.state_dir}")
        cluster.down()
    console.print("[bold]1/5[/] starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler)")
    cluster.up(nodes=nodes, gpus_per_node=options.gpus_per_node, fake_controllers=True)
    kubeconfig = cluster.kubeconfig_path
    sized = f" (the examples need {needed})" if nodes > options.nodes else ""
    console.print(f"      {nodes} simulated nodes with {options.gpus_per_node} nvidia.com/gpu each{sized}")
    console.print(
        "      the real LeaderWorkerSet controller, the local gateway (Envoy + the real GIE picker), "
        "stand-in Volcano and stand-in model servers (see docs/routing.md)"
    )
    try:
        console.print("[bold]2/5[/] installing CRDs: InferenceService + LWS, Volcano, Gateway API, Inference Extension")
        install_crds(kubeconfig, [BUNDLED_CRD_DIR])
        (metrics_port,) = pick_free_ports(1)
        console.print(f"[bold]3/5[/] starting the operator (metrics on http://127.0.0.1:{metrics_port}/metrics)")
        cluster.start_process(
            "operator",
            [
                # Supervised as a Deployment would be: restarted if it exits (e.g. lost Lease).
                sys.executable,
                "-m",
                "fusioninfer_dev.localcluster.supervise",
                "--",
                sys.executable,
                "-m",
                "fusioninfer.cli",
                "run",
                "--kubeconfig",
                str(kubeconfig),
                "--metrics-bind-address",
                f"127.0.0.1:{metrics_port}",
                "--health-probe-bind-address",
                "0",
                "--leader-election-namespace",
                "default",
            ],
        )
        console.print("[bold]4/5[/] applying examples: " + ", ".join(str(p) for p in options.examples))
        asyncio.run(_run_demo(kubeconfig, options, docs, console))
        console.print("[bold]5/5[/] done: every InferenceService is Ready\n")
    except BaseException:
        console.print(f"operator log: {cluster.log_path('operator')}")
        console.print(f"fake controllers log: {cluster.log_path(FAKES)}")
        if options.teardown:
            cluster.down()
        raise
    if options.teardown:
        cluster.down()
        console.print("torn down (--teardown)")
        return
    console.print(
        "Look around (any kubectl from 1.32 on talks to this server):\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  kubectl get fisvc -n {NAMESPACE}\n"
        f"  kubectl describe fisvc qwen-inference -n {NAMESPACE}\n"
        f"  kubectl get deploy,lws,podgroups,pods,inferencepools,httproutes,gateways -n {NAMESPACE}\n"
        f"  fusioninfer cluster status --state-dir {options.state_dir}\n"
        f"Operator log: {cluster.log_path('operator')}\n"
        f"Tear down: fusioninfer cluster down --state-dir {options.state_dir}"
    )
