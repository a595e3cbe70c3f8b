"""Bundle the model of a ``finecliper demo`` run as the package's default model.

``finecliper predict`` and ``finecliper serve`` use the model folder ``assets/demo_model`` (the
Hugging Face Hub layout of ``finecliper export``) when no ``--model`` is given. This script takes
the validation-selected checkpoint of a demo run, drops the machine-specific paths from its
config (the data root, the faces cache and the descriptions file; the backbone is already the
portable name ``finecliper/demo-backbone``), records where it came from and what it scored,
and exports it, with the run's metrics.json, into the package:

    finecliper demo --out runs/demo
    python scripts/bundle_demo_checkpoint.py runs/demo

``--checkpoint FILE`` re-exports a checkpoint bundled earlier (already portable, its provenance
inside) when its run is gone; its model card then says that the run's metrics.json is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from finecliper.assets_paths import DEMO_BACKBONE_NAME, assets_dir
from finecliper.errors import FineCLIPERError
from finecliper.runtime.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from finecliper.runtime.hub import export_model
from finecliper.serve.predictor import DEMO_CHECKPOINT


def bundle(demo_dir: Path, out: Path) -> dict:
    run = demo_dir / "run"
    loaded = load_checkpoint(run / "checkpoints" / "best_val.safetensors")
    config = loaded.config
    if config.model.backbone != DEMO_BACKBONE_NAME:
        raise FineCLIPERError(
            f"{run}: trained on {config.model.backbone!r}, not the bundled {DEMO_BACKBONE_NAME!r}"
        )
    portable = config.model_copy(
        update={
            "data": config.data.model_copy(
                update={"root": None, "descriptions": None, "faces_cache": None}
            )
        }
    )
    demo = json.loads((demo_dir / "demo.json").read_text(encoding="utf-8"))
    synth = json.loads((demo_dir / "synthdfer" / "meta.json").read_text(encoding="utf-8"))
    provenance = {
        **loaded.extra,
        "bundled_from": "finecliper demo",
        "synthdfer_seed": synth["seed"],
        "synthdfer_clips": synth["clips"],
        "demo_test_uar": demo["uar"],
        "demo_test_war": demo["war"],
    }
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "best_val.safetensors"
        save_checkpoint(checkpoint, loaded.model, portable, loaded.classes, provenance)
        export_model(checkpoint, out, metrics_file=run / "metrics.json")
    return provenance


def rebundle(checkpoint: Path, out: Path) -> dict:
    """Export an already bundled (portable) checkpoint as it is."""
    _, _, provenance = read_checkpoint_info(checkpoint)
    if provenance.get("bundled_from") != "finecliper demo":
        raise FineCLIPERError(f"{checkpoint}: not a bundled demo checkpoint (no provenance)")
    export_model(checkpoint, out)
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("demo_dir", type=Path, nargs="?", help="the --out folder of a demo")
    source.add_argument("--checkpoint", type=Path, help="a checkpoint bundled earlier")
    parser.add_argument("--out", type=Path, default=assets_dir() / DEMO_CHECKPOINT)
    args = parser.parse_args(argv)
    try:
        if args.checkpoint is not None:
            provenance = rebundle(args.checkpoint, args.out)
        else:
            provenance = bundle(args.demo_dir, args.out)
    except (FineCLIPERError, OSError, KeyError) as exc:
        print(f"bundle_demo_checkpoint: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"out": str(args.out), **provenance}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
