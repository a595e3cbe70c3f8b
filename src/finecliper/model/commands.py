"""CLI: ``finecliper model summary``."""

from __future__ import annotations

import argparse

from finecliper.io import dumps_json

VARIANTS = ("base", "mid", "high", "full")


def register(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser("model", help="inspect FineCLIPER models")
    model_commands = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    summary = model_commands.add_parser(
        "summary",
        help="tunable and frozen parameter counts per component",
        description="Build a FineCLIPER variant on the meta device (no weights, no memory) and "
        "count its tunable and frozen parameters in total and per component.",
    )
    summary.add_argument("--variant", choices=VARIANTS, default="full")
    summary.add_argument(
        "--backbone",
        default="openai/clip-vit-base-patch16",
        help="backbone name: a known CLIP architecture or a config directory",
    )
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=_run_summary)


def _run_summary(args: argparse.Namespace) -> int:
    from finecliper.model.summary import format_summary, summarize_parameters

    summary = summarize_parameters(args.variant, args.backbone)
    print(dumps_json(summary) if args.json else format_summary(summary))
    return 0
