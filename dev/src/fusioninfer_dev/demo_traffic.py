"""The demo's last step, the seed README's "Send Request": a chat completion through the Gateway.

The request is the seed's, sent to the address in the Gateway's `status.addresses`, where the
local gateway's Envoy listens; the pod that answered names itself in `x-inference-pod` (the
model server's header) and Envoy's access log names the endpoint the picker chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

import httpx

SEED_REQUEST: dict[str, Any] = {
    "model": "Qwen/Qwen3-8B",
    "messages": [{"role": "user", "content": "Hello, how are you?"}],
}


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    pod: str
    body: str


def curl_command(gateway: str, namespace: str, body: dict[str, Any] | None = None) -> str:
    """The seed README's two commands, for this Gateway."""
    payload = json.dumps(body or SEED_REQUEST)
    return (
        f"GATEWAY_IP=$(kubectl get gateway {gateway} -n {namespace} -o jsonpath='{{.status.addresses[0].value}}')\n"
        f'curl -X POST "http://${{GATEWAY_IP}}/v1/chat/completions" -H "Content-Type: application/json" '
        f"-d {shlex.quote(payload)}"
    )


async def chat(address: str, body: dict[str, Any] | None = None, *, port: int = 80, wait: float = 30.0) -> Answer:
    """POST the chat completion; retried while the gateway is still being programmed (connection
    refused, or a 503 from a picker that has not seen the pods yet)."""
    url = f"http://{address}:{port}/v1/chat/completions"
    deadline = time.monotonic() + wait
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        while True:
            try:
                response = await client.post(url, json=body or SEED_REQUEST)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            if response.status_code in (502, 503) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                continue
            text = ""
            with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
                text = str(response.json()["choices"][0]["message"]["content"])
            pod = response.headers.get("x-inference-pod", "")
            return Answer(response.status_code, text, pod, response.text)
