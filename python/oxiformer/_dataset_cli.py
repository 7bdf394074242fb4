"""``oxiformer embed-dataset INPUT OUTPUT``: the command line of :mod:`oxiformer.datasets`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

Option = Callable[[argparse.ArgumentParser], None]

__all__ = ["add_embed_dataset"]

HELP = "embed a corpus (.txt/.jsonl/.csv/.parquet files or a directory) into Parquet shards"


def _run(args: argparse.Namespace) -> None:
    from oxiformer.datasets import embed_file

    summary = embed_file(
        args.input,
        args.output,
        column=args.column,
        id_column=args.id_column,
        keep_text=args.keep_text,
        model=args.model,
        revision=args.revision,
        int8=args.int8,
        batch_size=args.batch_size,
        normalize=args.normalize,
        prompt_name=args.prompt_name,
        prompt=args.prompt,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
        engine=args.engine,
        resume=args.resume,
        on_error=args.on_error,
        rows_per_shard=args.rows_per_shard,
        address=args.address,
        workers=args.workers,
        worker_cpus=args.worker_cpus,
        quiet=args.quiet,
    )
    if not args.quiet:
        print(summary.describe(), file=sys.stderr)


def add_embed_dataset(commands: Any, int8_option: Option, revision_option: Option) -> None:
    """Register the subcommand on ``commands`` (the parser's ``add_subparsers()``), with
    ``cli``'s ``--int8`` and ``--revision`` options."""
    sub = commands.add_parser("embed-dataset", help=HELP, description=HELP)
    sub.add_argument(
        "input", help="a .txt (one text a line), .jsonl, .csv or .parquet file, or a directory"
    )
    sub.add_argument("output", help="output directory: a Parquet dataset of shards")
    sub.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    sub.add_argument("--column", default="text", help="the text field (default: text)")
    sub.add_argument(
        "--id-column",
        default=None,
        help="the field that identifies a row (default: the row number)",
    )
    sub.add_argument(
        "--keep-text", action="store_true", help="store the text next to its embedding"
    )
    sub.add_argument(
        "--model",
        "-m",
        default=None,
        help=(
            "model directory, or a model id the Hugging Face cache holds "
            "(default: all-MiniLM-L6-v2 or $OXIFORMER_MODEL)"
        ),
    )
    revision_option(sub)
    int8_option(sub)
    sub.add_argument("--batch-size", type=int, default=32)
    sub.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    sub.add_argument(
        "--prompt-name", default=None, help="put the model's prompt NAME before every text"
    )
    sub.add_argument("--prompt", default=None, help="put TEXT before every text")
    sub.add_argument("--truncate-dim", type=int, default=None, help="keep the first N dimensions")
    sub.add_argument(
        "--precision",
        choices=("float32", "binary", "ubinary"),
        default="float32",
        help="float32, or one bit a dimension packed in int8 (binary) / uint8 (ubinary) lists",
    )
    sub.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="bad rows: stop (default), or list them in OUTPUT.errors.jsonl and go on",
    )
    sub.add_argument(
        "--rows-per-shard",
        type=int,
        default=10_000,
        help="rows per output shard and per Ray read task (default: 10000)",
    )
    sub.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted local run: keep its finished shards",
    )
    sub.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (this process, default) or ray (Ray Data)",
    )
    ray = sub.add_argument_group("Ray engine")
    ray.add_argument(
        "--address",
        default=None,
        help="auto, or ray://HOST:PORT (default: start a local Ray instance)",
    )
    ray.add_argument(
        "--workers",
        type=int,
        default=None,
        help="actors (default: the cluster's CPUs / --worker-cpus)",
    )
    ray.add_argument(
        "--worker-cpus", type=float, default=1, help="CPUs (and threads) per actor (default: 1)"
    )
    sub.set_defaults(run=_run)
