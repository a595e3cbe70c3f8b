"""CLI: ``finecliper predict`` (videos in, probabilities and a timeline out) and ``serve``."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from finecliper.errors import ConfigError
from finecliper.io import dumps_json

CHECKPOINT_HELP = "a checkpoint file of `finecliper train` (default: the bundled demo model)"
MODEL_HELP = (
    "a model folder of `finecliper export` or a Hugging Face Hub id of one, e.g. "
    "user/finecliper-dfew-full (default: the bundled demo model)"
)
MAX_SECONDS = 86_400.0  # timeouts: a day at most (larger ones overflow the socket layer)
# The numeric options and their allowed ranges, checked before anything is loaded.
PREDICT_RANGES = {"--batch-size": (1, 4096), "--fps": (0.0, 10_000.0)}
SERVE_RANGES = {
    "--batch-size": (1, 4096),
    "--port": (0, 65535),
    "--max-upload-mb": (0.0, 1e6),
    "--max-duration": (0.0, MAX_SECONDS),
    "--max-side": (1, 1 << 16),
    "--max-frames": (1, 1 << 31),
    "--max-megapixels": (0.0, 1e9),
    "--max-queue": (1, 1024),
    "--max-wait": (0.0, MAX_SECONDS),
    "--max-uploads": (1, 1024),
    "--max-connections": (1, 65536),
    "--client-timeout": (0.0, MAX_SECONDS),
    "--upload-timeout": (0.0, MAX_SECONDS),
}


def register(commands: argparse._SubParsersAction) -> None:
    _register_predict(commands)
    _register_serve(commands)


def _add_predictor_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=None, metavar="ID_OR_DIR", help=MODEL_HELP)
    source.add_argument("--checkpoint", type=Path, default=None, help=CHECKPOINT_HELP)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--window", default="16", help="window length: frames (16) or seconds (2.5s)"
    )
    parser.add_argument("--stride", default="8", help="window step: frames (8) or seconds (1s)")
    parser.add_argument(
        "--text",
        choices=("template", "none"),
        default="template",
        help="description backend: template (movements measured from the landmarks) or none "
        "(the text modality is missing)",
    )
    parser.add_argument(
        "--crop",
        choices=("auto", "always", "never"),
        default="auto",
        help="crop around the main face: auto = video files yes, frame folders (already "
        "face crops) no",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="windows per forward pass (default 8)"
    )


def _register_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="expression probabilities and a timeline for any video",
        description="Find and track the main face, compute landmarks, parsing and a movement "
        "description on the fly, and classify every sliding window of each video with a "
        "checkpoint. Whole-video probabilities are the mean over the windows.",
    )
    predict.add_argument(
        "videos", nargs="+", type=Path, metavar="VIDEO", help="video file or frame folder"
    )
    _add_predictor_arguments(predict)
    predict.add_argument(
        "--fps", type=float, default=None, help="frame rate of frame folders (default 25)"
    )
    predict.add_argument("--json", action="store_true", help="print one JSON object per video")
    predict.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write OUT/<video>/annotated.mp4, timeline.png and result.json",
    )
    predict.set_defaults(handler=_run_predict)


def _register_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="a web page to upload a video and see its prediction",
        description="Serve a page (and a JSON API, POST /api/predict) that predicts uploaded "
        "videos or SynthDFER samples and shows the probabilities, the timeline, the annotated "
        "video, the modality weights and the description.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=7860, help="port (0: any free port)")
    serve.add_argument(
        "--workdir",
        type=Path,
        default=Path("finecliper-serve"),
        help="working folder: every file the server writes goes here",
    )
    _add_serve_limits(serve)
    serve.add_argument("--quiet", action="store_true", help="do not log every request")
    _add_predictor_arguments(serve)
    serve.set_defaults(handler=_run_serve)


def _add_serve_limits(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group(
        "limits",
        "An upload over a limit is refused before any work (its header and packets are read, "
        "its first frame decoded). Predictions run one at a time; a busy server answers 503 "
        "with Retry-After instead of letting requests wait without end.",
    )
    for option, kind, default, what in (
        ("--max-upload-mb", float, 50.0, "largest upload, MB"),
        ("--max-duration", float, 60.0, "longest video, s"),
        ("--max-side", int, 4096, "largest frame width or height, pixels"),
        ("--max-frames", int, 1800, "most frames in a video (60 s at 30 fps)"),
        ("--max-megapixels", float, 2000.0, "most pixels to decode: frames x width x height"),
        ("--max-queue", int, 4, "most predictions running or waiting; more get 503"),
        ("--max-wait", float, 120.0, "longest wait for a prediction's turn, s; then 503"),
        ("--max-uploads", int, 4, "most uploads being received at once; more get 503"),
        ("--max-connections", int, 32, "most open connections; more get 503"),
        ("--client-timeout", float, 30.0, "close a connection silent this long, s"),
        ("--upload-timeout", float, 300.0, "cut off a request not received within this, s"),
    ):
        limits.add_argument(
            option, type=kind, default=default, help=f"{what} (default {default:g})"
        )


def check_ranges(args: argparse.Namespace, ranges: dict[str, tuple[float, float]]) -> None:
    """Refuse an out-of-range, NaN or infinite numeric option with one line naming it. Integer
    ranges include both ends; real ones exclude the lower end (all are positive)."""
    for option, (low, high) in ranges.items():
        value = getattr(args, option.removeprefix("--").replace("-", "_"))
        if value is None:
            continue
        if isinstance(low, int):
            if not low <= value <= high:
                raise ConfigError(f"{option} {value}: expected an integer from {low} to {high}")
        elif not (math.isfinite(value) and low < value <= high):
            raise ConfigError(f"{option} {value}: expected a number above {low:g}, up to {high:g}")


def _predictor(args: argparse.Namespace, progress: bool):
    from finecliper.serve.predictor import Predictor

    return Predictor.from_pretrained(
        args.checkpoint or args.model,
        args.device,
        text=args.text,
        crop=args.crop,
        window=args.window,
        stride=args.stride,
        batch_size=args.batch_size,
        progress=progress,
    )


def _run_predict(args: argparse.Namespace) -> int:
    from finecliper.serve.annotate import write_outputs

    check_ranges(args, PREDICT_RANGES)
    failures = 0
    folders = output_folders(args.videos, args.out) if args.out is not None else {}
    with _predictor(args, progress=not args.json) as predictor:
        for item in predictor.predict_many(args.videos, fps=args.fps):
            if item.result is None:
                failures += 1
                _print_failure(item.video, item.error or "", args.json)
                continue
            outputs = {}
            if args.out is not None:
                written = write_outputs(item.result, folders[item.video])
                outputs = {name: str(path) for name, path in written.items()}
            if args.json:
                print(dumps_json({**item.result.to_dict(), "outputs": outputs}), flush=True)
            else:
                print(format_result(item.result.to_dict(), outputs), flush=True)
    return 1 if failures else 0


def output_folders(videos: list[Path], out: Path) -> dict[str, Path]:
    """OUT/<video name>/ per video; repeated names get -2, -3, ..."""
    folders: dict[str, Path] = {}
    used: set[str] = set()
    for video in videos:
        stem = Path(video).stem or "video"
        name, number = stem, 1
        while name in used:
            number += 1
            name = f"{stem}-{number}"
        used.add(name)
        folders[str(video)] = out / name
    return folders


def _print_failure(video: str, error: str, as_json: bool) -> None:
    import sys

    if as_json:
        print(dumps_json({"video": video, "error": error}), flush=True)
    else:
        print(f"finecliper: error: {error}", file=sys.stderr, flush=True)


def format_result(result: dict[str, Any], outputs: dict[str, str]) -> str:
    """The human-readable summary of one video's result."""
    windows = result["timeline"]
    faces = sum(window["face_found"] for window in windows)
    lines = [
        f"{result['video']}: {result['top']} ({result['top_probability']:.0%})  "
        f"{result['duration_s']:.2f} s, {result['num_frames']} frames, "
        f"a face in {faces}/{len(windows)} windows"
    ]
    for name, value in sorted(result["probabilities"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<12} {'#' * round(30 * value):<30} {value:6.1%}")
    weights = ", ".join(f"{m} {w:.2f}" for m, w in result["modality_weights"].items())
    lines.append(f"  modality weights: {weights}")
    lines.append(f"  description: {result['description'] or '(none)'}")
    lines.append("  timeline:")
    for window in windows:
        note = "" if window["face_found"] else "  (no face)"
        lines.append(
            f"    {window['start_s']:7.2f}-{window['end_s']:<7.2f} s  {window['top']:<12} "
            f"{window['probabilities'][window['top']]:.0%}{note}"
        )
    lines += [f"  problem: {problem}" for problem in result["problems"]]
    lines += [f"  {name}: {path}" for name, path in outputs.items()]
    return "\n".join(lines)


def _run_serve(args: argparse.Namespace) -> int:
    from finecliper.serve.server import ServeServer, serve
    from finecliper.serve.web import ServeApp

    check_ranges(args, SERVE_RANGES)
    limits = _serve_limits(args)
    server = ServeServer(args.host, args.port, limits, quiet=args.quiet)  # a port in use: now
    try:
        with _predictor(args, progress=False) as predictor:
            serve(server, ServeApp(predictor, args.workdir, limits))
    finally:
        server.server_close()
    _exit_now()


def _exit_now() -> NoReturn:
    """Leave the stopped server's process without interpreter shutdown.

    The uploads are deleted and the predictor closed by now, but a request's handler thread (a
    daemon) may still be inside native code: a prediction, a socket read. Shutting the
    interpreter down under such a thread intermittently aborted the process ("terminate called
    without an active exception", exit -6), so the process ends here, after flushing its output.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve_limits(args: argparse.Namespace):
    from finecliper.serve.limits import ServeLimits

    return ServeLimits(
        max_upload_bytes=max(1, int(args.max_upload_mb * 2**20)),
        max_duration_s=args.max_duration,
        max_side=args.max_side,
        max_frames=args.max_frames,
        max_pixels=max(1, int(args.max_megapixels * 1e6)),
        max_queue=args.max_queue,
        max_wait_s=args.max_wait,
        max_uploads=args.max_uploads,
        max_connections=args.max_connections,
        client_timeout_s=args.client_timeout,
        upload_timeout_s=args.upload_timeout,
    )
