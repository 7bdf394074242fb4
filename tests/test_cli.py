"""The ``oxiformer`` command, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, max_abs_diff, require_fixtures

SEQCLS = FIXTURES / "tiny-bert" / "seqcls"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxiformer", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def model() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


@pytest.mark.parametrize(
    "command", [[], ["embed"], ["classify"], ["tokenize"], ["convert"], ["bench"]]
)
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: oxiformer" in result.stdout


def test_embed_arguments_to_json_lines(model: oxiformer.SentenceEncoder) -> None:
    result = run("embed", "hello world", "flag embedding", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["hello world", "flag embedding"]
    got = np.array([row["embedding"] for row in rows])
    assert max_abs_diff("cli embed", got, model.encode(["hello world", "flag embedding"])) <= 1e-6


def test_embed_stdin_and_file_to_npy(model: oxiformer.SentenceEncoder, tmp_path: Path) -> None:
    lines = ["first line", "second line", "third"]
    out = tmp_path / "emb.npy"
    result = run("embed", "-o", str(out), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    from_stdin = np.load(out)
    assert from_stdin.shape == (3, 384)
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(lines), encoding="utf-8")
    result = run("embed", "--file", str(source), "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert np.load(out).tobytes() == from_stdin.tobytes()
    assert max_abs_diff("stdin embed", from_stdin, model.encode(lines)) <= 1e-6


def test_embed_empty_stdin_writes_nothing() -> None:
    result = run("embed", stdin="")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_tokenize_and_classify() -> None:
    require_fixtures("tiny-bert/seqcls")
    result = run("tokenize", "Héllo, wörld!")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["tokens"] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert row["offsets"][1] == [0, 5]
    result = run("classify", "--model", str(SEQCLS), "I loved this movie!", "--pair", "Best film.")
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)
    assert prediction["label"].startswith("LABEL_") and 0 < prediction["score"] <= 1


def test_convert_then_load(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    result = run("convert", str(SEQCLS), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "sequence-classifier" in result.stderr
    original = oxiformer.SequenceClassifier.from_pretrained(SEQCLS)
    converted = oxiformer.SequenceClassifier.from_pretrained(tmp_path / "out")
    ids = np.array([[101, 2023, 2003, 102]])
    assert converted(ids).logits.tobytes() == original(ids).logits.tobytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "x", "--model", "/no/such/dir"], "no such model directory"),
        (["classify", "x", "--model", str(Path(__file__).parent)], "no config.json"),
        (["embed", "--file", "/no/such/file.txt"], "cannot read texts"),
        (["--threads", "0", "embed", "x"], "at least 1"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_wrong_config_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": "big"}')
    result = run("embed", "x", "--model", str(tmp_path))
    assert result.returncode == 1
    assert str(tmp_path / "config.json") in result.stderr


def test_bench_prints_a_markdown_table() -> None:
    # One round: each round starts a fresh process per engine.
    result = run("--threads", "1", "bench", "--sentences", "8", "--rounds", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "threads: 1" in result.stdout
    assert "| encoder 32x128 |" in result.stdout
    assert "| 8 sentences end to end |" in result.stdout
