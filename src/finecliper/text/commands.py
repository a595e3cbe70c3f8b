"""CLI: ``finecliper describe`` (fine-grained descriptions) and ``finecliper refine``."""

from __future__ import annotations

import argparse
from pathlib import Path

from finecliper.argtypes import COUNT, FOLD, NON_NEGATIVE, float_range, int_range
from finecliper.data.cli_args import add_dataset_arguments, reader_options
from finecliper.io import dumps_json
from finecliper.text.backends import backend_names


def register(commands: argparse._SubParsersAction) -> None:
    _register_describe(commands)
    _register_refine(commands)


def _add_backend_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Model and server settings; ``prefix`` "judge-" gives the LLM judge its own set."""
    dest = prefix.replace("-", "_")
    parser.add_argument(f"--{prefix}model", dest=f"{dest}model", help="model path or hub id")
    parser.add_argument(f"--{prefix}revision", dest=f"{dest}revision", help="hub revision")
    parser.add_argument(
        f"--{prefix}url",
        dest=f"{dest}url",
        default="http://127.0.0.1:8000/v1",
        help="openai-compatible: server base URL (default %(default)s)",
    )
    parser.add_argument(
        f"--{prefix}api-key-env",
        dest=f"{dest}api_key_env",
        default="OPENAI_API_KEY",
        help="openai-compatible: environment variable holding the API key, if any",
    )


def _register_describe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "describe",
        help="generate fine-grained facial-movement descriptions (high-semantic input)",
        description="Describe every clip of a dataset with a video MLLM (Fig. 3 prompt of the "
        "paper, 8 uniform frames), with --backend template from prepared landmarks, or with "
        "--backend mafw-captions from MAFW's own English captions. Writes "
        "one JSON line per clip and prompt; reruns resume, --shard I/N splits the work. "
        "Training clips see their label (the paper's prompt); test clips do not, unless "
        "--labels all.",
    )
    add_dataset_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output JSONL file")
    parser.add_argument("--backend", choices=backend_names(), default="video-llava")
    _add_backend_options(parser)
    parser.add_argument("--shard", default="0/1", help="I/N: this machine's share (default 0/1)")
    parser.add_argument("--batch-size", type=COUNT, default=8, help="clips per batch (default 8)")
    parser.add_argument("--fold", type=FOLD, default=None, help="only this fold (default: all)")
    parser.add_argument(
        "--labels",
        choices=("train", "all", "never"),
        default="train",
        help="show the label to the MLLM for training clips (default), for every clip (the "
        "paper's choice), or never",
    )
    parser.add_argument(
        "--seed",
        type=NON_NEGATIVE,
        default=0,
        help="train.seed of the runs to come: with --val-fraction it fixes the validation clips "
        "carved from each training split, which get label-free descriptions too (default 0)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float_range(0.0, 0.49),
        default=0.1,
        help="data.val_fraction of the runs to come (default 0.1)",
    )
    parser.add_argument(
        "--both-ways",
        action="store_true",
        help="describe every training clip label-free as well, for any seed or val fraction",
    )
    parser.add_argument("--frames", type=COUNT, default=8, help="frames per clip (default 8)")
    parser.add_argument("--max-new-tokens", type=COUNT, default=100)
    parser.add_argument("--temperature", type=float_range(0.0), default=0.0, help="0 = greedy")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: auto)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None)
    parser.add_argument("--static-cache", action="store_true", help="static KV cache")
    parser.add_argument("--compile", action="store_true", help="compile decoding (static cache)")
    parser.add_argument("--concurrency", type=COUNT, default=8, help="openai-compatible requests")
    parser.add_argument(
        "--timeout", type=float_range(0.0, low_open=True), default=120.0, help="seconds per request"
    )
    parser.add_argument("--retries", type=NON_NEGATIVE, default=3, help="retries per request")
    parser.add_argument(
        "--landmarks",
        type=Path,
        default=None,
        help="template: folder holding clips/<clip_id>/landmarks.npy (default: ROOT, as "
        "SynthDFER lays it out; for real data the `prepare faces` cache)",
    )
    parser.add_argument("--workers", type=COUNT, default=4, help="frame-loading threads")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    parser.set_defaults(handler=_run_describe)


def _register_refine(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "refine",
        help="remove emotion words and interpretations from descriptions; check label leakage",
        description="Stage (a): drop the sentences and clauses that name or interpret an "
        "emotion, keep the physical movements (adds refined_text to every line). Stage (b): a "
        "text-only probe (TF-IDF + logistic regression, stratified k-fold) and optionally an "
        "LLM judge try to recover the label; accuracy before/after against chance goes to a "
        "JSON report and confidently recovered texts to a CSV for manual review, which "
        "--apply-review reads back.",
    )
    parser.add_argument("input", type=Path, help="JSONL with clip_id and text per line")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL")
    parser.add_argument("--report", type=Path, help="leakage report (default OUT.leakage.json)")
    parser.add_argument(
        "--review-csv", type=Path, help="flagged lines for review (default OUT.review.csv)"
    )
    parser.add_argument("--apply-review", type=Path, help="reviewed CSV to apply")
    parser.add_argument("--no-probe", action="store_true", help="cleaning only")
    parser.add_argument(
        "--threshold",
        type=float_range(0.0, 1.0),
        default=0.6,
        help="flag when the probe gives the true label at least this probability (default 0.6)",
    )
    parser.add_argument("--folds", type=int_range(2), default=5)
    parser.add_argument("--seed", type=NON_NEGATIVE, default=0)
    parser.add_argument("--judge-backend", choices=backend_names(judge=True), default=None)
    _add_backend_options(parser, "judge-")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run_refine)


def _backend_options(args: argparse.Namespace, prefix: str = ""):
    from finecliper.text.backends import BackendOptions

    return BackendOptions(
        model=getattr(args, f"{prefix}model"),
        revision=getattr(args, f"{prefix}revision"),
        base_url=getattr(args, f"{prefix}url"),
        api_key_env=getattr(args, f"{prefix}api_key_env"),
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
        max_new_tokens=getattr(args, "max_new_tokens", 100),
        temperature=getattr(args, "temperature", 0.0),
        static_cache=getattr(args, "static_cache", False),
        compile=getattr(args, "compile", False),
        concurrency=getattr(args, "concurrency", 8),
        timeout_s=getattr(args, "timeout", 120.0),
        retries=getattr(args, "retries", 3),
        landmarks_root=getattr(args, "landmarks", None),
        dataset_root=getattr(args, "root", None),
    )


def _run_describe(args: argparse.Namespace) -> int:
    from finecliper.data.readers import read_dataset
    from finecliper.text.backends import create_backend
    from finecliper.text.describe import (
        DescribeJob,
        in_shard,
        parse_shard,
        plan_items,
        validation_carve,
    )
    from finecliper.text.prompts import check_policy

    shard = parse_shard(args.shard)
    policy = check_policy(args.labels)
    index = read_dataset(
        args.dataset,
        args.root,
        fold=args.fold,
        **reader_options(args),
    )
    options = _backend_options(args)
    if args.backend == "template" and options.landmarks_root is None:
        options.landmarks_root = args.root if args.root.is_dir() else args.root.parent
    backend = create_backend(args.backend, options)
    if args.both_ways:
        evaluated = {r.clip_id for records in index.splits.values() for r in records}
    else:
        evaluated = validation_carve(index, seed=args.seed, val_fraction=args.val_fraction)
    planned = plan_items(index, policy, backend, evaluated=evaluated)
    items = [i for i in planned if in_shard(i.record.clip_id, shard)]
    job = DescribeJob(
        backend,
        args.out,
        dataset=index.dataset,
        batch_size=args.batch_size,
        num_frames=args.frames,
        loader_workers=args.workers,
    )
    summary = job.run(items, progress=not args.json).as_dict()
    summary.update(out=str(args.out), backend=backend.name, model=backend.model_id)
    if args.json:
        print(dumps_json(summary))
    else:
        print(
            f"describe: {summary['described']} described, {summary['errors']} errors, "
            f"{summary['already_done']} already done of {summary['items']} "
            f"({summary['clips_per_s']:.2f} clips/s) -> {args.out}"
        )
        for error in summary["first_errors"]:
            print(f"  error: {error}")
    return 0


def _run_refine(args: argparse.Namespace) -> int:
    from finecliper.text.refine_job import RefineOptions, run_refine

    judge = None
    if args.judge_backend:
        from finecliper.text.backends import create_backend

        judge = create_backend(args.judge_backend, _backend_options(args, "judge_"))
    options = RefineOptions(
        probe=not args.no_probe,
        threshold=args.threshold,
        folds=args.folds,
        seed=args.seed,
        review_in=args.apply_review,
        review_out=args.review_csv or args.out.with_suffix(".review.csv"),
        judge=judge,
    )
    report_path = args.report or args.out.with_suffix(".leakage.json")
    report = run_refine(args.input, args.out, report_path, options)
    if args.json:
        print(dumps_json(report))
    else:
        print(format_refine_report(report, report_path))
    return 0


def format_refine_report(report: dict, report_path: Path) -> str:
    emotion = report["texts_with_emotion_words"]
    lines = [
        f"refine: {report['lines']} lines, {report['clauses_removed']} clauses removed; texts "
        f"with emotion words {emotion['before']} -> {emotion['after']} -> {report['output']}"
    ]
    probe = report.get("probe") or {}
    for stage in ("before", "after"):
        cv = (probe.get(stage) or {}).get("train_cv")
        if cv:
            lines.append(
                f"  probe {stage:6s}: accuracy {cv['accuracy']:.3f} (n={cv['n']}; chance: "
                f"majority {cv['chance']['majority']:.3f}, 1/C {cv['chance']['uniform']:.3f})"
            )
    if "flagged" in probe:
        where = f" -> {probe['review_csv']}" if "review_csv" in probe else ""
        lines.append(f"  flagged for review: {probe['flagged_unreviewed']}{where}")
    lines.append(f"  report: {report_path}")
    return "\n".join(lines)
