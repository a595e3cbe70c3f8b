"""The command-line arguments of every command that reads a dataset: DATASET, ROOT and the
reader options, declared once so that they read and default the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finecliper.data.readers import reader_names


def add_dataset_arguments(parser: argparse.ArgumentParser, *, captions: bool = False) -> None:
    """``dataset root [--dfew-frames] [--mafw-source] [--mafw-captions]``."""
    parser.add_argument("dataset", choices=reader_names())
    parser.add_argument("root", type=Path, help="dataset root (custom: the manifest CSV)")
    # None = not given: the reader's default applies, and another dataset's option is an error.
    parser.add_argument(
        "--dfew-frames",
        choices=("clip_224x224", "clip_224x224_16f"),
        default=None,
        help="DFEW frame folder to read (default clip_224x224: original length)",
    )
    parser.add_argument(
        "--mafw-source",
        choices=("frames", "video"),
        default=None,
        help="MAFW aligned frame folders or the mp4 clips (default frames)",
    )
    if captions:
        parser.add_argument(
            "--mafw-captions",
            action="store_true",
            help="read MAFW's single/with_caption lists (GBK captions)",
        )


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options of ``add_dataset_arguments``, as ``read_dataset`` keywords."""
    options = {"dfew_frames": args.dfew_frames, "mafw_source": args.mafw_source}
    if getattr(args, "mafw_captions", False):
        options["mafw_captions"] = True
    return options
