"""The ``oxiformer`` command (also ``python -m oxiformer``).

Errors print as one line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import numpy as np

from oxiformer.errors import OxiformerError

__all__ = ["main"]


def _read_texts(args: argparse.Namespace) -> list[str]:
    """Texts from the arguments, else from ``--file``, else one per line on stdin."""
    if args.texts:
        return list(args.texts)
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                return [line.rstrip("\r\n") for line in handle]
        except (OSError, UnicodeDecodeError) as err:
            raise OxiformerError(f"{args.file}: cannot read texts ({err})") from err
    if sys.stdin is None or sys.stdin.isatty():
        raise OxiformerError("no input: give texts as arguments, --file FILE, or lines on stdin")
    return [line.rstrip("\r\n") for line in sys.stdin]


def _json_lines(rows: Iterator[Any], output: str | None) -> None:
    handle: TextIO = sys.stdout if output in (None, "-") else open(output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if handle is not sys.stdout:
            handle.close()


def _embed(args: argparse.Namespace) -> None:
    from oxiformer.sentence import SentenceEncoder

    texts = _read_texts(args)
    model = SentenceEncoder.from_pretrained(args.model, dtype=_dtype(args))
    embeddings = model.encode(
        texts,
        batch_size=args.batch_size,
        show_progress_bar=not args.quiet and len(texts) > args.batch_size,
        normalize_embeddings=args.normalize,
    )
    if args.output and args.output.endswith(".npy"):
        np.save(args.output, np.asarray(embeddings))
        if not args.quiet:
            print(
                f"wrote {len(texts)} embeddings of size {model.dimension} to {args.output}",
                file=sys.stderr,
            )
        return
    _json_lines(
        (
            {"text": text, "embedding": [round(float(v), 7) for v in vector]}
            for text, vector in zip(texts, embeddings)
        ),
        args.output,
    )


def _classify(args: argparse.Namespace) -> None:
    from oxiformer.classifiers import SequenceClassifier

    texts = _read_texts(args)
    model = SequenceClassifier.from_pretrained(args.model, dtype=_dtype(args))
    items: list[Any] = texts
    if args.pair is not None:
        items = [(text, args.pair) for text in texts]
    predictions = model.predict(items, batch_size=args.batch_size)
    _json_lines(({"text": text, **pred} for text, pred in zip(texts, predictions)), args.output)


def _tokenize(args: argparse.Namespace) -> None:
    from oxiformer.pretrained import model_dir
    from oxiformer.tokenizer import Tokenizer

    texts = _read_texts(args)
    tokenizer = Tokenizer.from_pretrained(model_dir(args.model))
    encodings = tokenizer.encode_batch(texts)
    _json_lines(
        (
            {
                "text": text,
                "tokens": enc.tokens,
                "ids": enc.ids,
                "offsets": [list(o) for o in enc.offsets],
            }
            for text, enc in zip(texts, encodings)
        ),
        args.output,
    )


def _convert(args: argparse.Namespace) -> None:
    from oxiformer.convert import convert

    kind, out = convert(args.source, args.destination)
    if not args.quiet:
        print(f"converted {kind} {args.source} -> {out}", file=sys.stderr)


def _quantize(args: argparse.Namespace) -> None:
    from oxiformer.convert import convert

    kind, out = convert(args.source, args.destination, dtype="int8")
    if not args.quiet:
        print(f"quantized {kind} {args.source} -> {out} (int8)", file=sys.stderr)


def _dtype(args: argparse.Namespace) -> str | None:
    return "int8" if args.int8 else None


def _bench(args: argparse.Namespace) -> None:
    from oxiformer.bench import run_bench

    print(
        run_bench(
            model=args.model,
            sentences=args.sentences,
            threads=args.threads,
            quiet=args.quiet,
            dtype=_dtype(args),
        )
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oxiformer", description="CPU-only Transformer inference: embeddings, classification."
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads to use (default: all cores)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")
        return sub

    def text_input(sub: argparse.ArgumentParser, model_help: str) -> None:
        sub.add_argument(
            "texts", nargs="*", help="texts (default: --file, else stdin, one per line)"
        )
        sub.add_argument("--file", "-f", help="read texts from FILE, one per line")
        sub.add_argument("--model", "-m", default=None, help=model_help)
        sub.add_argument("--output", "-o", default=None, help="output file (default: stdout)")
        sub.add_argument("--batch-size", type=int, default=32)

    def int8_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--int8",
            action="store_true",
            help="run the dense layers in int8 (quantizes a float model at load)",
        )

    default_model = "model directory (default: all-MiniLM-L6-v2 or $OXIFORMER_MODEL)"
    embed = command("embed", "sentence embeddings, as .npy (-o x.npy) or JSON lines")
    text_input(embed, default_model)
    embed.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    int8_option(embed)
    embed.set_defaults(run=_embed)

    classify = command("classify", "label texts with a sequence-classification model")
    text_input(classify, "model directory (BertForSequenceClassification)")
    classify.add_argument("--pair", default=None, help="second text of every pair")
    int8_option(classify)
    classify.set_defaults(run=_classify)

    tokenize = command("tokenize", "WordPiece tokens, ids and character offsets as JSON lines")
    text_input(tokenize, default_model)
    tokenize.set_defaults(run=_tokenize)

    convert = command("convert", "convert a Hugging Face model directory to the oxiformer format")
    convert.add_argument("source", help="HF model directory (config.json, model.safetensors, ...)")
    convert.add_argument("destination", help="output directory")
    convert.set_defaults(run=_convert)

    quantize = command(
        "quantize", "write an int8 copy of a model (weights.npz with int8 weights and scales)"
    )
    quantize.add_argument("source", help="model directory (HF or oxiformer format, float)")
    quantize.add_argument("destination", help="output directory")
    quantize.set_defaults(run=_quantize)

    bench = command("bench", "time oxiformer against ONNX Runtime (when installed) on this machine")
    bench.add_argument("--model", "-m", default=None, help=default_model)
    bench.add_argument("--sentences", type=int, default=256, help="sentences to embed")
    int8_option(bench)
    bench.set_defaults(run=_bench)

    from oxiformer._dataset_cli import add_embed_dataset

    add_embed_dataset(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.threads is not None:
            from oxiformer import set_num_threads

            set_num_threads(args.threads)
        args.run(args)
    except (OxiformerError, OSError, ValueError) as err:
        print(f"oxiformer {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"oxiformer {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0
