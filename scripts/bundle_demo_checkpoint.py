"""Bundle the checkpoint of a ``finecliper demo`` run as the package's default checkpoint.

``finecliper predict`` and ``finecliper serve`` use ``assets/demo_checkpoint.safetensors`` when
no ``--checkpoint`` is given. This script takes the validation-selected checkpoint of a demo run,
drops the machine-specific paths from its config (the data root and the descriptions file; the
backbone is already the portable name ``finecliper/demo-backbone``), records where it came from
and what it scored, and writes it into the package:

    finecliper demo --out runs/demo
    python scripts/bundle_demo_checkpoint.py runs/demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finecliper.assets_paths import DEMO_BACKBONE_NAME, assets_dir
from finecliper.errors import FineCLIPERError
from finecliper.runtime.checkpoint import load_checkpoint, save_checkpoint
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
        update={"data": config.data.model_copy(update={"root": None, "descriptions": None})}
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
    save_checkpoint(out, loaded.model, portable, loaded.classes, provenance)
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo_dir", type=Path, help="the --out folder of `finecliper demo`")
    parser.add_argument("--out", type=Path, default=assets_dir() / DEMO_CHECKPOINT)
    args = parser.parse_args(argv)
    try:
        provenance = bundle(args.demo_dir, args.out)
    except (FineCLIPERError, OSError, KeyError) as exc:
        print(f"bundle_demo_checkpoint: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"out": str(args.out), **provenance}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
