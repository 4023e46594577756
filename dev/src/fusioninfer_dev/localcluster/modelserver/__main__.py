"""`python -m fusioninfer_dev.localcluster.modelserver --bind IP --pod P --namespace NS -- ENGINE ARGV...`

The local cluster's pod runner starts one per serving pod, with the pod's IP and the serving
container's command and args after `--`, read as the engine would read them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from fusioninfer_dev.localcluster.modelserver.engine_args import parse_engine_args
from fusioninfer_dev.localcluster.modelserver.server import ModelServer, Timing


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    ours, engine = (words[: words.index("--")], words[words.index("--") + 1 :]) if "--" in words else (words, [])
    parser = argparse.ArgumentParser(prog="fusioninfer-modelserver", description=__doc__)
    parser.add_argument("--bind", required=True, help="the pod's IP")
    parser.add_argument("--pod", default="")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--image", default="", help="the container's image (tells SGLang from vLLM)")
    parser.add_argument("--time-to-first-token-ms", type=float, default=0.0)
    parser.add_argument("--inter-token-latency-ms", type=float, default=0.0)
    parser.add_argument("--max-num-seqs", type=int, default=5)
    options = parser.parse_args(ours)
    args = parse_engine_args(engine, options.image)
    timing = Timing(options.time_to_first_token_ms / 1000, options.inter_token_latency_ms / 1000)
    server = ModelServer(
        args, host=options.bind, pod=options.pod, namespace=options.namespace, timing=timing,
        max_num_seqs=options.max_num_seqs,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(
        f"stand-in {args.engine} server for {', '.join(args.served_model_names)} on {options.bind}:{args.port}",
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
