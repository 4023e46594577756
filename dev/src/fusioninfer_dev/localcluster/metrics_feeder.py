"""Feeds the local custom metrics API from the pods' own metrics, as Prometheus and
prometheus-adapter do in a real cluster: scrape every model-server pod's `/metrics`, publish each
gauge as a Pods metric of that pod (`vllm:num_requests_waiting` of pod P in namespace N).

The HPA controller then reads `custom.metrics.k8s.io/.../pods/*/vllm:num_requests_waiting` for
the pods of the workload it scales and averages them, exactly as it would against
prometheus-adapter. Only the scraping and the write are ours; the metrics API server
(`metrics_api`) and the HPA controller are upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fusioninfer.kube.quantity import Quantity
from fusioninfer_dev.localcluster.metrics_api import write_url

log = logging.getLogger("fusioninfer.metrics-feeder")

Key = tuple[str, str]  # (namespace, pod name)
SCRAPE_INTERVAL = 2.0


def pod_gauges(exposition: str) -> dict[str, float]:
    """Each gauge of a Prometheus text exposition, summed over its label sets (vLLM labels its
    gauges by model name; the pod's value is their total). Info-style gauges whose labels carry
    the information (vLLM's LoRA gauge) are left out: their value is not a quantity."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.type != "gauge" or family.name.endswith("_info"):
            continue
        values[family.name] = sum(sample.value for sample in family.samples)
    return values


def quantity(value: float) -> str:
    """A Kubernetes quantity for `value`, exact to the thousandth (`2`, `1500m`)."""
    milli = int((Decimal(repr(value)) * 1000).to_integral_value())
    return str(Quantity(milli * 1_000_000))


class MetricsFeeder:
    """Every `interval` s: scrape the pods `targets()` lists, write their gauges to the adapter."""

    def __init__(
        self, targets: Callable[[], Mapping[Key, str]], write_port: int, *, interval: float = SCRAPE_INTERVAL
    ) -> None:
        self.targets = targets
        self.write_port = write_port
        self.interval = interval
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
            while not self._stop.is_set():
                await self.feed_once(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)

    def stop(self) -> None:
        self._stop.set()

    async def feed_once(self, http: httpx.AsyncClient) -> int:
        """One scrape-and-write round; returns how many values were written."""
        written = 0
        for (namespace, pod), url in sorted(self.targets().items()):
            try:
                response = await http.get(url)
                response.raise_for_status()
                gauges = pod_gauges(response.text)
            except (httpx.HTTPError, ValueError) as exc:
                log.debug("scraping %s/%s at %s failed: %s", namespace, pod, url, exc)
                continue  # a pod that is starting or going away; the next round retries
            for metric, value in gauges.items():
                try:
                    written_ok = await http.post(
                        write_url(self.write_port, namespace, pod, metric), json=quantity(value)
                    )
                    written_ok.raise_for_status()
                    written += 1
                except httpx.HTTPError as exc:
                    log.warning("writing %s of %s/%s to the metrics adapter failed: %s", metric, namespace, pod, exc)
        return written
