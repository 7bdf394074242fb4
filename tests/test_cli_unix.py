"""The ``oxiformer`` command behaves like a Unix tool (issue 18, points 3, 4 and 10-18).

``-`` is stdin, ``--version`` works, a closed pipe ends quietly, progress bars only go to a
terminal, bad UTF-8 names its line before any work, ``--threads`` works after the command,
outputs are written whole or not at all, and ``bench`` compares with ONNX Runtime.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, TINY_BERT_SEQCLS, require_fixtures

TINY = str(TINY_BERT_SEQCLS)
MINILM_ONNX = FIXTURES / "minilm" / "model.onnx"


def run(
    *args: str | bytes,
    stdin: bytes | str | None = None,
    env: dict[str, str] | None = None,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if file_size_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    result = subprocess.run(
        [sys.executable, "-m", "oxiformer", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
        preexec_fn=limit,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tree(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def tiny() -> oxiformer.SentenceEncoder:
    require_fixtures("tiny-bert/seqcls")
    return oxiformer.SentenceEncoder.from_pretrained(TINY)


# ---- point 10: - is stdin ---------------------------------------------------------------------


def test_dash_reads_stdin(tiny: oxiformer.SentenceEncoder, tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    want = tiny.encode(["a", "b"])
    for args in (["-"], ["--file", "-"]):
        out = tmp_path / "x.npy"
        result = run("embed", "-m", TINY, "-q", "-o", str(out), *args, stdin="a\nb\n")
        assert result.returncode == 0, result.stderr
        assert np.load(out).tobytes() == want.tobytes(), args
        out.unlink()


def test_texts_come_from_one_place(tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("from the file\n")
    one_error_line(run("embed", "-m", TINY, "--file", str(source), "text"), "not both", "--file")
    one_error_line(run("embed", "-m", TINY, "text", "-"), "'-' reads the texts from stdin")


# ---- point 11, 15, 16: arguments --------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"oxiformer {importlib.metadata.version('oxiformer')}"
    assert oxiformer.__version__ == importlib.metadata.version("oxiformer")


def test_threads_after_the_command(tiny: oxiformer.SentenceEncoder) -> None:
    require_fixtures("tiny-bert/seqcls")
    result = run("embed", "--threads", "1", "-m", TINY, "hello", "-q")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    one_error_line(run("embed", "--threads", "0", "-m", TINY, "x"), "at least 1")
    limit = oxiformer.max_num_threads()
    one_error_line(run("tokenize", "--threads", "100000", "x"), f"more than the limit of {limit}")
    result = run("bench", "--help")
    assert "--threads" in result.stdout and "--plot" in result.stdout


def test_classify_needs_a_classifier_model() -> None:
    one_error_line(run("classify", "x"), "classify needs a sequence-classification model")
    # The default model is a sentence encoder: the generative commands need their own.
    one_error_line(run("fill-mask", "a [MASK]"), "fill-mask needs a masked-LM model")
    one_error_line(run("generate", "x"), "generate needs an encoder-decoder model")


def test_json_commands_refuse_numpy_outputs(tmp_path: Path) -> None:
    for command in (["tokenize"], ["classify", "-m", TINY]):
        out = tmp_path / "tok.npy"
        one_error_line(run(*command, "x", "-o", str(out)), "writes JSON lines", "tok.jsonl")
        assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "--sentences", "-5"],
        ["bench", "--sentences", "0"],
        ["bench", "--rounds", "0"],
        ["embed", "--batch-size", "0", "x"],
        ["embed", "--batch-size", "two", "x"],
    ],
)
def test_counts_must_be_positive(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr or "not an integer" in result.stderr


# ---- point 12: a closed pipe ------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly() -> None:
    require_fixtures("tiny-bert/seqcls")
    texts = "".join(f"sentence number {i}\n" for i in range(400))
    process = subprocess.Popen(
        [sys.executable, "-m", "oxiformer", "embed", "-m", TINY, "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(texts.encode())
    process.stdin.close()
    first = process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    status = process.wait(timeout=300)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert first.startswith(b'{"text": "sentence number 0"')
    assert stderr == ""
    assert status == 0


# ---- point 13: progress bars ------------------------------------------------------------------


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    args = [sys.executable, "-m", "oxiformer", "embed", "-m", TINY, "--batch-size", "2"]
    texts = [f"text {i}" for i in range(9)]
    log = tmp_path / "stderr.log"
    with open(log, "wb") as stderr:
        subprocess.run([*args, *texts], stdout=subprocess.DEVNULL, stderr=stderr, check=True)
    assert b"\r" not in log.read_bytes() and b"Batches" not in log.read_bytes()
    primary, secondary = pty.openpty()
    # a terminal of 80 columns (a new pty has 0, and tqdm draws nothing in 0 columns)
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [*args, *texts], stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL
    )
    os.close(secondary)
    received = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    assert process.wait(timeout=300) == 0
    assert b"Batches" in received  # the same run on a terminal shows the bar


# ---- point 14: bad UTF-8 ----------------------------------------------------------------------


def test_bad_utf8_fails_at_once_naming_the_line(tmp_path: Path) -> None:
    good = b"".join(b"line %d \xc3\xa9t\xc3\xa9\n" % i for i in range(1, 3300))  # 'été'
    bad = good + b"caf\xe9 au lait\n" + b"more\n"
    offset = len(good) + 3
    # A model directory that does not exist: the input is read (and refused) before loading.
    result = run("embed", "-m", "/no/such/model", stdin=bad)
    one_error_line(
        result, f"stdin: line 3300 is not valid UTF-8 (bytes e9 at byte offset {offset}", "column 4"
    )
    source = tmp_path / "texts.txt"
    source.write_bytes(bad)
    one_error_line(
        run("embed", "-m", "/no/such/model", "--file", str(source)),
        f"{source}: line 3300 is not valid UTF-8",
        f"byte offset {offset}",
    )
    one_error_line(run("tokenize", "ok", b"caf\xe9"), "text argument 2 is not valid UTF-8")


# ---- point 18: truncation is said once --------------------------------------------------------


def test_truncation_is_reported_unless_quiet(tiny: oxiformer.SentenceEncoder) -> None:
    require_fixtures("tiny-bert/seqcls")
    long_text = "word " * 300  # 300 tokens; the tiny model takes 128
    result = run("embed", "-m", TINY, long_text, "short", long_text)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "oxiformer embed: 2 of 3 texts are longer than the model's maximum of 128 tokens and "
        "were truncated (the longest has 302 tokens)"
    )
    assert run("embed", "-m", TINY, "-q", long_text).stderr == ""
    result = run("classify", "-m", TINY, long_text, "--pair", "a pair")
    assert "1 of 1 texts are longer than the model's maximum of 128 tokens" in result.stderr


# ---- points 3 and 4: outputs ------------------------------------------------------------------


def test_quantize_and_convert_in_place_are_refused(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    model = tmp_path / "model"
    model.mkdir()
    for file in TINY_BERT_SEQCLS.iterdir():
        (model / file.name).write_bytes(file.read_bytes())
    before = tree(model)
    for command in ("quantize", "convert"):
        for extra in ([], ["--force"]):
            one_error_line(run(command, str(model), str(model), *extra), "is the source model")
    assert tree(model) == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    one_error_line(run("quantize", str(model), str(out)), "is not empty", "--force")
    result = run("quantize", str(model), str(out), "--force", "-q")
    assert result.returncode == 0, result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert oxiformer.SequenceClassifier.from_pretrained(out).encoder.dtype == "int8"


def test_quantize_writes_masked_lms_and_encoder_decoders_whole(tmp_path: Path) -> None:
    """A masked LM or an encoder-decoder is written with its head or decoder, not cut to a
    bare sentence encoder."""
    require_fixtures("tiny-bert/mlm", "tiny-bert2bert")
    for source, kind in (
        (FIXTURES / "tiny-bert" / "mlm", oxiformer.MaskedLM),
        (FIXTURES / "tiny-bert2bert", oxiformer.EncoderDecoder),
    ):
        out = tmp_path / source.name
        result = run("quantize", str(source), str(out), "-q")
        assert result.returncode == 0, result.stderr
        assert kind.from_pretrained(out).encoder.dtype == "int8"


def test_a_failed_write_keeps_the_previous_output(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    out = tmp_path / "out.npy"
    np.save(out, np.zeros((1, 32), np.float32))
    before = out.read_bytes()
    texts = "".join(f"text {i}\n" for i in range(1000))  # 128 KB of embeddings
    result = run("embed", "-m", TINY, "-o", str(out), "-q", stdin=texts, file_size_limit=32 << 10)
    one_error_line(result, f"{out}: cannot write", "File too large", "the file is unchanged")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]  # no temporary file left
    lines = tmp_path / "tokens.jsonl"
    result = run("tokenize", "-o", str(lines), "-q", stdin=texts * 20, file_size_limit=32 << 10)
    one_error_line(result, f"{lines}: cannot write", "nothing was written")
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


# ---- point 17: bench against ONNX Runtime -----------------------------------------------------


def test_bench_against_onnx_runtime_with_a_plot(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("matplotlib")
    require_fixtures("minilm/model.onnx")
    plot = tmp_path / "bench.png"
    args = ["--threads", "1", "bench", "--quick", "--rounds", "1", "--sentences", "4", "-q"]
    result = run(*args, "--against", "ort", "--onnx", str(MINILM_ONNX), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "each engine in its own process" in result.stdout
    paths = oxiformer.simd_info()
    assert f"oxiformer paths: fp32 {paths['fp32']}, int8 {paths['int8']}" in result.stdout
    assert "| work | oxiformer | ONNX Runtime | ratio |" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| encoder 1x16 |")]
    ratio = float(rows[0].split("|")[4].strip().removesuffix("x"))
    assert ratio > 0
    diff = float(result.stdout.split("max abs diff on the same ids ")[1].split(";")[0])
    assert diff < 1e-3
    image = __import__("matplotlib.image").image.imread(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 100


def test_bench_refuses_what_it_cannot_compare(tmp_path: Path) -> None:
    require_fixtures("minilm/model.onnx", "tiny-bert/seqcls")
    pytest.importorskip("onnxruntime")
    args = ["bench", "--quick", "--rounds", "1", "--sentences", "2", "-q", "--against", "ort"]
    one_error_line(run(*args, "-m", TINY), "no ONNX file for", "--onnx FILE")
    if MINILM_ONNX.is_file():  # an export of another model: refused before any timing
        one_error_line(run(*args, "-m", TINY, "--onnx", str(MINILM_ONNX)), "is it an export")
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    result = run("bench", "--plot", str(tmp_path / "x.png"), env={"PYTHONPATH": str(fake.parent)})
    one_error_line(result, "--plot needs matplotlib", "oxiformer[plot]")
