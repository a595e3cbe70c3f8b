"""The ``finecliper`` command line: a thin dispatcher over the stage packages.

Each stage registers its subcommands in its own ``commands`` module and imports heavy libraries
(torch, transformers) only inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from finecliper import __version__
from finecliper.errors import FineCLIPERError

COMMAND_MODULES = (
    "finecliper.data.commands",
    "finecliper.face.commands",
    "finecliper.model.commands",
    "finecliper.text.commands",
    "finecliper.train.commands",
    "finecliper.serve.commands",
    "finecliper.bench.commands",
    "finecliper.runtime.commands",
    "finecliper.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finecliper",
        description="FineCLIPER: dynamic facial expression recognition with CLIP and adapters.",
    )
    parser.add_argument("--version", action="version", version=f"finecliper {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FineCLIPERError as exc:
        print(f"finecliper: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("finecliper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
