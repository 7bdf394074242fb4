"""``oxiformer generate`` and ``oxiformer fill-mask``, run as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import oxiformer
import pytest
from helpers import FIXTURES, require_fixtures

require_fixtures("tiny-bert/mlm", "tiny-bert2bert")

BERT2BERT = FIXTURES / "tiny-bert2bert"
MLM = FIXTURES / "tiny-bert" / "mlm"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxiformer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("command", ["generate", "fill-mask"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: oxiformer {command}" in result.stdout


def test_generate_prints_what_generate_text_returns() -> None:
    texts = json.loads((BERT2BERT / "texts.json").read_text(encoding="utf-8"))["source"]
    args = ["--max-new-tokens", "7", "--num-beams", "3", "--early-stopping", "true"]
    result = run("generate", "--model", str(BERT2BERT), *texts, *args)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    model = oxiformer.EncoderDecoder.from_pretrained(BERT2BERT)
    expected = model.generate_text(texts, max_new_tokens=7, num_beams=3, early_stopping=True)
    assert rows == [{"text": t, "generated": g} for t, g in zip(texts, expected)]


def test_fill_mask_prints_the_pipeline_output() -> None:
    text = "Paris is the [MASK] of France."
    result = run("fill-mask", "--model", str(MLM), "--top-k", "3", text)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    model = oxiformer.MaskedLM.from_pretrained(MLM)
    assert row == {"text": text, "predictions": model.fill_mask(text, top_k=3)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--model", str(BERT2BERT), "--max-new-tokens", "0", "x"], "max_new_tokens"),
        (["generate", "--model", str(BERT2BERT), "--num-beams", "0", "x"], "num_beams"),
        (["generate", "--model", str(MLM), "x"], "not an encoder-decoder"),
        (["fill-mask", "--model", str(MLM), "no mask"], "no mask token"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
