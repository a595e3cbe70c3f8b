"""The ``finecliper`` command line: a thin dispatcher over the stage packages.

Each stage registers its subcommands in its own ``commands`` module and imports heavy libraries
(torch, transformers) only inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import sys
import traceback
from typing import NoReturn

from finecliper import __version__
from finecliper.errors import ConfigError, FineCLIPERError

DEBUG_ENV = "FINECLIPER_DEBUG"
# OSErrors about the paths the user gave (not the machine's state): exit 2, like other bad input.
_BAD_INPUT_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG}

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


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors are one line too (argparse prints the whole usage first); subcommand
    parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="finecliper",
        description="FineCLIPER: dynamic facial expression recognition with CLIP and adapters.",
    )
    parser.add_argument("--version", action="version", version=f"finecliper {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also: {DEBUG_ENV}=1)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        _refuse_non_finite_options(args)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("finecliper: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error is one line; --debug adds the traceback
        if debug:
            traceback.print_exc()
        message, code = describe_error(exc)
        print(f"finecliper: error: {message}", file=sys.stderr)
        return code


def describe_error(exc: Exception) -> tuple[str, int]:
    """One line for the user and the exit status: 2 for bad input, 1 for the environment."""
    if isinstance(exc, FineCLIPERError):
        return _one_line(str(exc)), exc.exit_code
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or _one_line(str(exc))
        return f"{where}{reason}", 2 if exc.errno in _BAD_INPUT_ERRNOS else 1
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not valid {exc.encoding} text ({_one_line(str(exc))})", 2
    if isinstance(exc, ValueError | TypeError | LookupError):
        return f"invalid input: {_one_line(str(exc)) or type(exc).__name__}", 2
    hint = f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
    return f"unexpected {type(exc).__name__}: {_one_line(str(exc))}{hint}", 1


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else " / ".join(lines[:3])


def _refuse_non_finite_options(args: argparse.Namespace) -> None:
    """No command takes NaN or infinity for a number (``--fps inf`` would run forever)."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                option = "--" + name.replace("_", "-")
                raise ConfigError(f"{option} {item}: expected a finite number")


if __name__ == "__main__":
    sys.exit(main())
