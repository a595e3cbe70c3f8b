"""CLI: ``finecliper train``, ``eval``, ``cv`` and ``sweep``."""

from __future__ import annotations

import argparse
from pathlib import Path

from finecliper.io import dumps_json

PRESET_HELP = "a preset name (dfew, ferv39k, mafw, custom, synth, demo) or a YAML file"
OVERRIDE_HELP = "config overrides as section.key=value, e.g. data.root=/data/DFEW data.fold=2"


def register(commands: argparse._SubParsersAction) -> None:
    _register_train(commands)
    _register_eval(commands)
    _register_cv(commands)
    _register_sweep(commands)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help=PRESET_HELP)
    parser.add_argument("overrides", nargs="*", help=OVERRIDE_HELP)
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as last line")


def _register_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a FineCLIPER variant on one fold and report it",
        description="Train on the fold's training split (minus a seeded validation carve-out), "
        "evaluate on validation and test every epoch, and write checkpoints, metrics.json, "
        "predictions.csv and plots. Several GPUs or nodes: launch with torchrun.",
    )
    _add_run_arguments(train)
    train.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    train.set_defaults(handler=_run_train)


def _register_eval(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="evaluate a checkpoint or model on a split of any dataset",
        description="Evaluate a checkpoint file, a model folder of `finecliper export` or a "
        "Hugging Face Hub id of one on a split of its own dataset or of another one (classes are "
        "taken from the dataset read; PN logits work for any class names).",
    )
    evaluate.add_argument(
        "model", metavar="MODEL", help="checkpoint file, model folder or hub id (user/name)"
    )
    evaluate.add_argument("overrides", nargs="*", help="data overrides, e.g. data.fold=2")
    evaluate.add_argument("--split", choices=("test", "val", "train"), default="test")
    evaluate.add_argument("--out", type=Path, default=None, help="output folder")
    evaluate.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    evaluate.set_defaults(handler=_run_eval)


def _register_cv(commands: argparse._SubParsersAction) -> None:
    cv = commands.add_parser(
        "cv",
        help="train and evaluate every fold, then aggregate",
        description="Run every fold (DFEW and MAFW: 5, FERV39k: its one split), resuming "
        "unfinished folds, and write results.md with mean and std next to the paper's numbers.",
    )
    _add_run_arguments(cv)
    cv.add_argument(
        "--folds", type=_folds, default=None, help="comma-separated folds 1..5 (default: all)"
    )
    cv.set_defaults(handler=_run_cv)


def _register_sweep(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser("sweep", help="ablation sweeps")
    kinds = sweep.add_subparsers(dest="sweep", metavar="SWEEP", required=True)
    fixed = kinds.add_parser(
        "fixed-weights",
        help="fixed video weights 0.1..0.9 against adaptive weighting (seed Fig. 1)",
        description="Train with model.weighting=fixed at each video weight and once with "
        "adaptive weighting, and plot UAR/WAR against the video weight.",
    )
    _add_run_arguments(fixed)
    fixed.add_argument(
        "--weights",
        type=_video_weights,
        default="0.1,0.3,0.5,0.7,0.9",
        help="comma-separated video weights in (0, 1)",
    )
    fixed.set_defaults(handler=_run_sweep)


def _folds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() and 1 <= int(part) <= 5 for part in parts):
        raise argparse.ArgumentTypeError(f"expected folds 1..5 separated by commas, got {text!r}")
    return [int(part) for part in parts]


def _video_weights(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        weights = []
    if not weights or not all(0.0 < weight < 1.0 for weight in weights):
        raise argparse.ArgumentTypeError(
            f"expected weights in (0, 1) separated by commas, got {text!r}"
        )
    return weights


def _print(summary: dict, as_json: bool, text: str) -> None:
    print(dumps_json(summary) if as_json else text)


def _run_train(args: argparse.Namespace) -> int:
    from finecliper.config import load_config
    from finecliper.train.loop import train
    from finecliper.train.runs import default_run_dir

    config = load_config(args.preset, args.overrides)
    out = args.out or default_run_dir(config)
    metrics = train(config, out, resume=args.resume, progress=not args.json)
    summary = {"uar": metrics["uar"], "war": metrics["war"], "run_dir": str(out)}
    _print(summary, args.json, f"UAR {metrics['uar']:.4f}  WAR {metrics['war']:.4f}  -> {out}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from finecliper.train.runs import default_eval_dir, evaluate_checkpoint

    out = args.out or default_eval_dir(args.model, args.split)
    metrics = evaluate_checkpoint(args.model, args.overrides, split=args.split, out=out)
    summary = {"uar": metrics["uar"], "war": metrics["war"], "run_dir": str(out)}
    _print(summary, args.json, f"UAR {metrics['uar']:.4f}  WAR {metrics['war']:.4f}  -> {out}")
    return 0


def _run_cv(args: argparse.Namespace) -> int:
    from finecliper.config import load_config
    from finecliper.train.runs import cross_validate, default_run_dir

    config = load_config(args.preset, args.overrides)
    folds = args.folds
    out = args.out or default_run_dir(config, cv=True)
    result = cross_validate(config, out, folds=folds, progress=not args.json)
    _print(result, args.json, f"{result['summary']}\n-> {out / 'results.md'}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from finecliper.config import load_config
    from finecliper.train.runs import default_run_dir, fixed_weight_sweep

    config = load_config(args.preset, args.overrides)
    weights = args.weights
    out = args.out or default_run_dir(config, suffix="sweep_fixed_weights")
    result = fixed_weight_sweep(config, out, weights, progress=not args.json)
    _print(result, args.json, f"-> {out / 'fixed_weights.png'}")
    return 0
