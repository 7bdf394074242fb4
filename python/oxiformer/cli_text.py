"""The ``oxiformer generate`` and ``oxiformer fill-mask`` commands (registered by
:mod:`oxiformer.cli`): text in, JSON lines out."""

from __future__ import annotations

import argparse
from typing import Any, Callable

__all__ = ["register"]

Command = Callable[[str, str], argparse.ArgumentParser]
Option = Callable[..., None]


def _early_stopping(value: str) -> bool | str:
    choices: dict[str, bool | str] = {"true": True, "false": False, "never": "never"}
    if value.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {value!r}")
    return choices[value.lower()]


def _require_model(args: argparse.Namespace, command: str, kind: str) -> None:
    """The default model is a sentence encoder: these commands need their own."""
    from oxiformer.errors import InputError

    if args.model is None:
        raise InputError(f"{command} needs {kind}: give its directory with --model DIR")


def _generate(args: argparse.Namespace) -> None:
    from oxiformer._textio import read_texts, refuse_numpy_output, write_json_lines
    from oxiformer.cli import _dtype
    from oxiformer.seq2seq import EncoderDecoder

    _require_model(args, "generate", "an encoder-decoder model (EncoderDecoderModel)")
    refuse_numpy_output("generate", args.output)
    texts = read_texts(args.texts, args.file)
    model = EncoderDecoder.from_pretrained(args.model, dtype=_dtype(args), revision=args.revision)
    generated = model.generate_text(
        texts,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        length_penalty=args.length_penalty,
        early_stopping=args.early_stopping,
        batch_size=args.batch_size,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        min_new_tokens=args.min_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    write_json_lines(
        ({"text": text, "generated": out} for text, out in zip(texts, generated)), args.output
    )


def _fill_mask(args: argparse.Namespace) -> None:
    from oxiformer._textio import read_texts, refuse_numpy_output, write_json_lines
    from oxiformer.cli import _dtype
    from oxiformer.masked_lm import MaskedLM

    _require_model(args, "fill-mask", "a masked-LM model (BertForMaskedLM)")
    refuse_numpy_output("fill-mask", args.output)
    texts = read_texts(args.texts, args.file)
    model = MaskedLM.from_pretrained(args.model, dtype=_dtype(args), revision=args.revision)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(texts), max(1, args.batch_size)):
        batch = texts[start : start + max(1, args.batch_size)]
        predictions = model.fill_mask(batch, top_k=args.top_k)
        rows.extend({"text": t, "predictions": p} for t, p in zip(batch, predictions))
    write_json_lines(iter(rows), args.output)


def register(command: Command, text_input: Option, int8_option: Option) -> None:
    """Add the two commands with ``cli``'s helpers (common options, text input, ``--int8``)."""
    generate = command("generate", "generate text with an encoder-decoder (EncoderDecoderModel)")
    text_input(generate, "model directory (EncoderDecoderModel, e.g. a bert2bert)")
    from_config = "default: the model's generation config, else "
    generate.add_argument("--max-new-tokens", type=int, default=None, help=from_config + "20")
    generate.add_argument("--num-beams", type=int, default=None, help=from_config + "1 (greedy)")
    generate.add_argument("--length-penalty", type=float, default=None, help=from_config + "1")
    generate.add_argument(
        "--early-stopping",
        type=_early_stopping,
        default=None,
        help="true, false or never (" + from_config + "false)",
    )
    generate.add_argument(
        "--no-repeat-ngram-size", type=int, default=None, help="never repeat an n-gram of N"
    )
    generate.add_argument(
        "--min-new-tokens", type=int, default=None, help="no end of sequence before N tokens"
    )
    generate.add_argument(
        "--do-sample",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw each token from the warped distribution (" + from_config + "argmax)",
    )
    generate.add_argument(
        "--temperature", type=float, default=None, help="sampling: " + from_config + "1"
    )
    generate.add_argument("--top-k", type=int, default=None, help="sampling: " + from_config + "50")
    generate.add_argument(
        "--top-p", type=float, default=None, help="sampling: " + from_config + "1"
    )
    generate.add_argument("--seed", type=int, default=None, help="sampling: repeatable draws")
    int8_option(generate)
    generate.set_defaults(run=_generate)

    fill_mask = command("fill-mask", "the likeliest tokens at each [MASK] (BertForMaskedLM)")
    text_input(fill_mask, "model directory (a masked-LM checkpoint)")
    fill_mask.add_argument("--top-k", type=int, default=5)
    int8_option(fill_mask)
    fill_mask.set_defaults(run=_fill_mask)
