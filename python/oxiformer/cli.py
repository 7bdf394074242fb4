"""The ``oxiformer`` command (also ``python -m oxiformer``).

Errors print as one line on stderr with a non-zero exit code, never a traceback. As in other
Unix tools: ``-`` means stdin, a closed stdout (``| head``) ends the command quietly, progress
bars appear only on a terminal, and ``--threads`` works before or after the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from oxiformer._textio import read_texts, refuse_numpy_output, write_array, write_json_lines
from oxiformer.errors import InputError, OxiformerError

__all__ = ["main"]


def _progress(args: argparse.Namespace, count: int) -> bool:
    """A progress bar only for a long run, on a terminal (never into a log file)."""
    terminal = sys.stderr is not None and sys.stderr.isatty()
    return terminal and not args.quiet and count > args.batch_size


def _warning_line(args: argparse.Namespace) -> Any:
    """``warnings.showwarning`` for a command: one line on stderr, as its errors are (not the
    Python source line), none with ``--quiet``."""

    def show(message: Any, *_: Any, **__: Any) -> None:
        if not getattr(args, "quiet", False):
            print(f"oxiformer {args.command}: warning: {message}", file=sys.stderr)

    return show


def _warn_truncated(args: argparse.Namespace, counts: Any, limit: int) -> None:
    """Say once, on stderr, how many inputs were cut to the model's maximum length."""
    truncated = int((counts > limit).sum())
    if truncated and not args.quiet:
        print(
            f"oxiformer {args.command}: {truncated} of {len(counts)} texts are longer than the "
            f"model's maximum of {limit} tokens and were truncated (the longest has "
            f"{int(counts.max())} tokens)",
            file=sys.stderr,
        )


def _embed(args: argparse.Namespace) -> None:
    from oxiformer.sentence import SentenceEncoder

    if args.output and args.output.lower().endswith(".npz"):
        raise InputError("embed writes .npy arrays or JSON lines: use -o NAME.npy")
    texts = read_texts(args.texts, args.file)
    model = SentenceEncoder.from_pretrained(args.model, dtype=_dtype(args), revision=args.revision)
    counts = model.tokenizer.count_tokens(texts)
    embeddings = model.encode(
        texts,
        batch_size=args.batch_size,
        show_progress_bar=_progress(args, len(texts)),
        normalize_embeddings=args.normalize,
        prompt_name=args.prompt_name,
        prompt=args.prompt,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
    )
    if args.output and args.output.lower().endswith(".npy"):
        array = np.asarray(embeddings)
        write_array(args.output, array)
        if not args.quiet:
            print(
                f"wrote {len(texts)} embedding{'s' * (len(texts) != 1)} of "
                f"{array.shape[-1]} {array.dtype} values to {args.output}",
                file=sys.stderr,
            )
    else:
        write_json_lines(
            (
                {"text": text, "embedding": _json_values(vector)}
                for text, vector in zip(texts, embeddings)
            ),
            args.output,
        )
    _warn_truncated(args, counts, model.max_seq_length)


def _json_values(vector: Any) -> list[Any]:
    """An embedding for JSON: floats to 7 digits, quantized ones as integers."""
    if np.asarray(vector).dtype.kind in "iu":
        return [int(v) for v in vector]
    return [round(float(v), 7) for v in vector]


def _classify(args: argparse.Namespace) -> None:
    from oxiformer.classifiers import SequenceClassifier

    if args.model is None:
        raise InputError(
            "classify needs a sequence-classification model (BertForSequenceClassification): "
            "give its directory with --model DIR"
        )
    refuse_numpy_output("classify", args.output)
    texts = read_texts(args.texts, args.file)
    model = SequenceClassifier.from_pretrained(
        args.model, dtype=_dtype(args), revision=args.revision
    )
    items: list[Any] = list(texts)
    if args.pair is not None:
        items = [(text, args.pair) for text in texts]
    predictions = model.predict(items, batch_size=args.batch_size)
    write_json_lines(
        ({"text": text, **pred} for text, pred in zip(texts, predictions)), args.output
    )
    if model.tokenizer is not None:
        _warn_truncated(args, model.tokenizer.count_tokens(items), model.max_length)


def _tokenize(args: argparse.Namespace) -> None:
    from oxiformer.pretrained import model_dir
    from oxiformer.tokenizer import Tokenizer

    refuse_numpy_output("tokenize", args.output)
    texts = read_texts(args.texts, args.file)
    tokenizer = Tokenizer.from_pretrained(model_dir(args.model, args.revision))
    encodings = tokenizer.encode_batch(texts)
    write_json_lines(
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

    kind, out = convert(args.source, args.destination, force=args.force, revision=args.revision)
    if not args.quiet:
        print(f"converted {kind} {args.source} -> {out}", file=sys.stderr)


def _quantize(args: argparse.Namespace) -> None:
    from oxiformer.convert import convert

    kind, out = convert(
        args.source, args.destination, dtype="int8", force=args.force, revision=args.revision
    )
    if not args.quiet:
        print(f"quantized {kind} {args.source} -> {out} (int8)", file=sys.stderr)


def revision_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--revision", default=None, help="branch, tag or commit of a model id in the HF cache"
    )


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
            against=args.against,
            onnx=args.onnx,
            rounds=args.rounds,
            plot=args.plot,
            quick=args.quick,
            revision=args.revision,
        )
    )


def _count(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from oxiformer import __version__

    parser = argparse.ArgumentParser(
        prog="oxiformer", description="CPU-only Transformer inference: embeddings, classification."
    )
    parser.add_argument("--version", action="version", version=f"oxiformer {__version__}")
    threads_help = "threads to use (default: $OXIFORMER_NUM_THREADS, else all cores)"
    parser.add_argument("--threads", type=int, default=None, help=threads_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")
        # Also after the command; SUPPRESS keeps a value given before it.
        sub.add_argument("--threads", type=int, default=argparse.SUPPRESS, help=threads_help)
        return sub

    def text_input(sub: argparse.ArgumentParser, model_help: str) -> None:
        sub.add_argument(
            "texts",
            nargs="*",
            help="texts (- or none: read stdin, one per line; or --file)",
        )
        sub.add_argument("--file", "-f", help="read texts from FILE, one per line (- for stdin)")
        sub.add_argument("--model", "-m", default=None, help=model_help)
        revision_option(sub)
        sub.add_argument("--output", "-o", default=None, help="output file (default or -: stdout)")
        sub.add_argument("--batch-size", type=_count, default=32)

    def int8_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--int8",
            action="store_true",
            help="run the dense layers in int8 (quantizes a float model at load)",
        )

    def destination(sub: argparse.ArgumentParser, source_help: str) -> None:
        sub.add_argument("source", help=source_help)
        revision_option(sub)
        sub.add_argument("destination", help="output directory (new or empty; not SOURCE)")
        sub.add_argument(
            "--force",
            action="store_true",
            help="write into a non-empty destination, replacing its files of the same name",
        )

    default_model = (
        "model directory, or a model id the Hugging Face cache holds "
        "(default: all-MiniLM-L6-v2 or $OXIFORMER_MODEL)"
    )
    embed = command("embed", "sentence embeddings, as .npy (-o x.npy) or JSON lines")
    text_input(embed, default_model)
    embed.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    embed.add_argument(
        "--prompt-name", default=None, help="put the model's prompt NAME before every text"
    )
    embed.add_argument("--prompt", default=None, help="put TEXT before every text")
    embed.add_argument(
        "--truncate-dim", type=_count, default=None, help="keep the first N dimensions"
    )
    embed.add_argument(
        "--precision",
        choices=("float32", "int8", "uint8", "binary", "ubinary"),
        default="float32",
        help="quantize the embeddings as sentence-transformers does (default: float32)",
    )
    int8_option(embed)
    embed.set_defaults(run=_embed)

    classify = command("classify", "label texts with a sequence-classification model")
    text_input(classify, "model directory (BertForSequenceClassification; required)")
    classify.add_argument("--pair", default=None, help="second text of every pair")
    int8_option(classify)
    classify.set_defaults(run=_classify)

    tokenize = command("tokenize", "WordPiece tokens, ids and character offsets as JSON lines")
    text_input(tokenize, default_model)
    tokenize.set_defaults(run=_tokenize)

    convert = command("convert", "convert a Hugging Face model directory to the oxiformer format")
    destination(convert, "HF model directory (config.json, model.safetensors, ...)")
    convert.set_defaults(run=_convert)

    quantize = command(
        "quantize", "write an int8 copy of a model (weights.npz with int8 weights and scales)"
    )
    destination(quantize, "model directory (HF or oxiformer format, float)")
    quantize.set_defaults(run=_quantize)

    bench = command(
        "bench",
        "time oxiformer, and ONNX Runtime on the same model when it is installed, each in its "
        "own process",
    )
    bench.add_argument("--model", "-m", default=None, help=default_model)
    revision_option(bench)
    bench.add_argument("--sentences", type=_count, default=256, help="sentences to embed")
    bench.add_argument(
        "--against",
        choices=("auto", "ort", "none"),
        default="auto",
        help="peer engine: ort (ONNX Runtime), none, or auto (ort when it is installed and "
        "the model has an ONNX file)",
    )
    bench.add_argument(
        "--onnx",
        default=None,
        help="ONNX export of the model (default: model.onnx or "
        "onnx/model.onnx in the model directory)",
    )
    bench.add_argument("--rounds", type=_count, default=3, help="rounds (median is reported)")
    bench.add_argument(
        "--quick", action="store_true", help="a smoke run: smaller batches, fewer runs"
    )
    bench.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw the table as a bar chart (needs matplotlib: pip install 'oxiformer[plot]')",
    )
    int8_option(bench)
    bench.set_defaults(run=_bench)

    from oxiformer.cli_text import register as register_text_commands

    register_text_commands(command, text_input, int8_option)
    from oxiformer._dataset_cli import add_embed_dataset

    add_embed_dataset(commands, int8_option, revision_option)
    return parser


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def _quiet_stdout() -> None:
    """Send what is left of stdout nowhere: the reader went away (``| head``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.threads is not None:
            from oxiformer import set_num_threads

            set_num_threads(args.threads)
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(args)
            args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe: what it did not read is not wanted. End quietly.
        _quiet_stdout()
        return 0
    except (OxiformerError, OSError, ValueError) as err:
        print(f"oxiformer {args.command}: error: {_message(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"oxiformer {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
