"""Time `finecliper describe`'s Video-LLaVA path with a random-weight Video-LLaVA-7B-shaped model.

Prints one JSON object per setting and a last line with the best. Meant for one H100/H200:

    PYTHONPATH=src python scripts/bench_describe.py --batch-sizes 16,32 \
        --modes dynamic,static,static+compile --clips 128

``--size tiny`` runs the same code at toy size on CPU (a check of the script, not a figure).
Target (issue 6): >= 10 clips/s; plain batched generate gave 3.4 at batch 32 (environment.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from finecliper.text.backends import BackendOptions
from finecliper.text.bench import build_random_backend, synthetic_requests, time_describe

MODES = {
    "dynamic": {"static_cache": False, "compile": False},
    "static": {"static_cache": True, "compile": False},
    "static+compile": {"static_cache": True, "compile": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("7b", "tiny"), default="7b")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated, e.g. 16,32,64")
    parser.add_argument("--modes", default="dynamic,static+compile", help=", ".join(MODES))
    parser.add_argument("--clips", type=int, default=128, help="timed clips per setting")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-size", type=int, default=224, help="decoded frame side")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--warmup-batches", type=int, default=1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, else float32")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    return args


def run(args: argparse.Namespace) -> list[dict]:
    results = []
    backend = None
    for mode in args.modes.split(","):
        options = BackendOptions(
            device=args.device,
            dtype=args.dtype,
            max_new_tokens=args.max_new_tokens,
            extra={"min_new_tokens": args.max_new_tokens},
            **MODES[mode],
        )
        if backend is None:
            backend = build_random_backend(args.size, options)
        backend.options = options  # same weights, new generation settings
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            requests = synthetic_requests(max(args.clips, batch_size), args.frames, args.frame_size)
            timing = time_describe(backend, requests, batch_size, args.warmup_batches)
            result = {"size": args.size, "mode": mode, **timing, **_machine(backend)}
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def _machine(backend) -> dict:
    device = backend.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": name or device.type,
        "dtype": str(backend.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "params_b": round(sum(p.numel() for p in backend.model.parameters()) / 1e9, 3),
    }


def main(argv: list[str] | None = None) -> int:
    results = run(parse_args(argv))
    best = max(results, key=lambda r: r["clips_per_s"])
    print(json.dumps({"best": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
