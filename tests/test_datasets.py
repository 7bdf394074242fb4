"""``oxiformer embed-dataset`` / ``oxiformer.datasets.embed_file`` with the local engine:
formats, ids, results equal to ``SentenceEncoder.encode`` bit for bit, bad rows, progress bar."""

from __future__ import annotations

import fcntl
import json
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
from dataset_files import TINY_MODEL, read_output, run_cli, same_bits, sample_texts, write_input

pytest.importorskip(
    "pyarrow", reason="embed-dataset needs pyarrow: pip install 'oxiformer[parquet]'"
)

from helpers import require_fixtures
from oxiformer.datasets import embed_file

require_fixtures("tiny-bert/seqcls", "minilm/texts.json")

FORMATS = ("txt", "jsonl", "csv", "parquet")


@pytest.fixture(scope="module")
def minilm() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


@pytest.mark.parametrize(
    ("kind", "with_ids"),
    [(kind, False) for kind in FORMATS] + [(kind, True) for kind in FORMATS if kind != "txt"],
)
def test_formats_match_encode(
    kind: str, with_ids: bool, minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    texts = sample_texts(60, one_line=kind == "txt")
    keys = [f"doc-{i:03d}" for i in range(len(texts))]
    source = write_input(tmp_path / f"in.{kind}", texts, keys)
    summary = embed_file(
        source,
        tmp_path / "out",
        id_column="key" if with_ids else None,
        keep_text=True,
        rows_per_shard=25,
        quiet=True,
    )
    assert (summary.rows, summary.skipped, summary.shards) == (60, 0, 3)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "part-000000.parquet",
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    ids, embeddings, table = read_output(tmp_path / "out")
    assert ids == (keys if with_ids else list(range(60)))
    assert table.column("text").to_pylist() == texts
    assert table.schema.field("embedding").type.list_size == 384
    assert same_bits(embeddings, minilm.encode(texts))


def test_directory_numbers_rows_over_files_in_order(
    minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "b").mkdir(parents=True)
    first, second = sample_texts(50, one_line=True)[:20], sample_texts(50)[20:]
    write_input(corpus / "a.txt", first)
    write_input(corpus / "b" / "c.jsonl", second)
    (corpus / "notes.md").write_text("not an input\n")
    (corpus / ".hidden.txt").write_text("skipped: hidden\n")
    summary = embed_file(corpus, tmp_path / "out", rows_per_shard=8, quiet=True)
    assert summary.shards == 3 + 4  # chunks never span files
    ids, embeddings, _ = read_output(tmp_path / "out")
    assert ids == list(range(50))
    assert same_bits(embeddings, minilm.encode(first + second))


def test_normalize_int8_and_batch_size(tmp_path: Path) -> None:
    texts = sample_texts(40)
    source = write_input(tmp_path / "in.jsonl", texts)
    int8 = oxiformer.SentenceEncoder.from_pretrained(TINY_MODEL, dtype="int8")
    embed_file(
        source,
        tmp_path / "out",
        model=TINY_MODEL,
        int8=True,
        normalize=True,
        batch_size=3,
        quiet=True,
    )
    _, embeddings, _ = read_output(tmp_path / "out")
    assert same_bits(embeddings, int8.encode(texts, normalize_embeddings=True))
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-6)


def test_prompts_go_before_every_text_and_into_the_manifest(
    minilm: oxiformer.SentenceEncoder, minilm_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for item in minilm_dir.iterdir():
        if item.name != "config_sentence_transformers.json":
            (model / item.name).symlink_to(item)
    settings = {"prompts": {"query": "query: ", "passage": "passage: "}}
    (model / "config_sentence_transformers.json").write_text(json.dumps(settings))
    texts = sample_texts(30)
    source = write_input(tmp_path / "in.jsonl", texts)
    embed_file(source, tmp_path / "out", model=model, prompt_name="passage", quiet=True)
    _, embeddings, _ = read_output(tmp_path / "out")
    assert same_bits(embeddings, minilm.encode(["passage: " + t for t in texts]))
    manifest = json.loads((tmp_path / "out" / "_oxiformer.json").read_text())
    assert manifest["prompt_name"] == "passage" and "prompt" not in manifest
    # Resuming with another prompt would mix two kinds of embeddings: refused.
    with pytest.raises(oxiformer.ConfigError, match="prompt_name"):
        embed_file(source, tmp_path / "out", model=model, prompt="x: ", resume=True, quiet=True)
    # A prompt text, through the command line.
    result = run_cli(source, tmp_path / "cli", "--model", str(model), "--prompt", "query: ")
    assert result.returncode == 0, result.stderr
    _, embeddings, _ = read_output(tmp_path / "cli")
    assert same_bits(embeddings, minilm.encode(["query: " + t for t in texts]))
    # An unknown prompt name fails before any output is written.
    with pytest.raises(oxiformer.InputError, match="unknown prompt_name 'doc'"):
        embed_file(source, tmp_path / "none", model=model, prompt_name="doc", quiet=True)
    assert not (tmp_path / "none").exists()


def test_truncate_dim_narrows_the_embedding_column(
    minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    texts = sample_texts(20)
    source = write_input(tmp_path / "in.jsonl", texts)
    embed_file(source, tmp_path / "out", truncate_dim=48, quiet=True)
    _, embeddings, table = read_output(tmp_path / "out")
    assert table.schema.field("embedding").type.list_size == 48
    assert same_bits(embeddings, minilm.encode(texts, truncate_dim=48))
    manifest = json.loads((tmp_path / "out" / "_oxiformer.json").read_text())
    assert manifest["truncate_dim"] == 48
    empty = write_input(tmp_path / "empty.jsonl", [])
    result = run_cli(empty, tmp_path / "none", "--truncate-dim", "16", "-q")
    assert result.returncode == 0, result.stderr
    assert read_output(tmp_path / "none")[2].schema.field("embedding").type.list_size == 16
    with pytest.raises(oxiformer.InputError, match="truncate_dim"):
        embed_file(source, tmp_path / "bad", truncate_dim=0, quiet=True)


def test_cli_summary_without_a_progress_bar_when_not_a_terminal(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.txt", sample_texts(30, one_line=True))
    result = run_cli(str(source), str(tmp_path / "out"), "--model", str(TINY_MODEL))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("embedded 30 rows into "), result.stderr
    assert "%|" not in result.stderr and "\r" not in result.stderr  # no tqdm bar
    quiet = run_cli(str(source), str(tmp_path / "out2"), "--model", str(TINY_MODEL), "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_cli_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.txt", sample_texts(3000, one_line=True))
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    command = [sys.executable, "-m", "oxiformer", "embed-dataset", str(source)]
    process = subprocess.Popen(
        [*command, str(tmp_path / "out"), "--model", str(TINY_MODEL)],
        stderr=child,
        stdout=subprocess.DEVNULL,
    )
    os.close(child)
    screen = b""
    while True:
        try:
            data = os.read(parent, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        screen += data
    os.close(parent)
    assert process.wait(timeout=300) == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert "3000/3000" in text and "rows/s" in text and "100%" in text, text


def _bad_rows_inputs(directory: Path) -> dict[str, tuple[Path, list[tuple[int, str]]]]:
    """One file per format, each with bad rows: (path, [(row, part of the reason)])."""
    directory.mkdir()
    txt = directory / "a.txt"
    txt.write_bytes(b"good one\nbad \xff byte\ngood two\n")
    jsonl = directory / "b.jsonl"
    jsonl.write_bytes(
        b'{"text": "fine"}\n{"text": null}\n{"text": 7}\n{"other": "x"}\nnot json\n'
        b'{"text": "caf\xe9"}\n{"text": "fine again"}\n'
    )
    csv_file = directory / "c.csv"
    csv_file.write_bytes(b'id,text\n1,good\n2\n3,"multi\nline"\n4,bad \xfe\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = directory / "d.parquet"
    pq.write_table(pa.table({"text": ["ok", None, "ok too"]}), parquet)
    return {
        "txt": (txt, [(1, "not UTF-8")]),
        "jsonl": (
            jsonl,
            [
                (1, "text is null"),
                (2, "text is int"),
                (3, "missing column 'text'"),
                (4, "not JSON"),
                (5, "not UTF-8"),
            ],
        ),
        "csv": (csv_file, [(1, "missing column 'text'"), (3, "not UTF-8")]),
        "parquet": (parquet, [(1, "text is null")]),
    }


@pytest.mark.parametrize("kind", FORMATS)
def test_bad_rows_stop_the_run_by_default(kind: str, tmp_path: Path) -> None:
    path, bad = _bad_rows_inputs(tmp_path / "in")[kind]
    with pytest.raises(oxiformer.InputError) as caught:
        embed_file(path, tmp_path / "out", model=TINY_MODEL, quiet=True)
    message = str(caught.value)
    print(message)
    row, reason = bad[0]
    assert str(path) in message and f"row {row} (id {row})" in message and reason in message


def test_cli_bad_row_is_one_line_naming_file_and_row(tmp_path: Path) -> None:
    path, _ = _bad_rows_inputs(tmp_path / "in")["jsonl"]
    result = run_cli(str(path), str(tmp_path / "out"), "--model", str(TINY_MODEL))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "row 1 (id 1): text is null" in lines[0]


def test_skip_lists_every_bad_row_with_its_id_and_reason(tmp_path: Path) -> None:
    inputs = _bad_rows_inputs(tmp_path / "in")
    output = tmp_path / "out"
    summary = embed_file(
        tmp_path / "in", output, model=TINY_MODEL, on_error="skip", rows_per_shard=2, quiet=True
    )
    errors_file = tmp_path / "out.errors.jsonl"
    listed = [json.loads(line) for line in errors_file.read_text(encoding="utf-8").splitlines()]
    expected, offset = [], 0
    for kind in FORMATS:
        path, bad = inputs[kind]
        expected += [(offset + row, str(path), reason) for row, reason in bad]
        offset += {"txt": 3, "jsonl": 7, "csv": 4, "parquet": 3}[kind]
    assert len(listed) == len(expected) == summary.skipped == 9
    for entry, (row, path, reason) in zip(listed, expected):
        assert (entry["row"], entry["id"], entry["file"]) == (row, row, path)
        assert reason in entry["error"]
    ids, _, _ = read_output(output)
    assert sorted(ids + [entry["id"] for entry in listed]) == list(range(offset))
    assert summary.errors_file == errors_file
    assert "9 bad rows skipped, listed in" in summary.describe()


def test_bad_ids_are_bad_rows(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"key": 1, "text": "a"}\n{"key": "two", "text": "b"}\n{"text": "c"}\n'
        '{"key": null, "text": "d"}\n{"key": 5, "text": "e"}\n'
    )
    embed_file(
        source, tmp_path / "out", model=TINY_MODEL, id_column="key", on_error="skip", quiet=True
    )
    ids, _, _ = read_output(tmp_path / "out")
    assert ids == [1, 5]
    listed = (tmp_path / "out.errors.jsonl").read_text().splitlines()
    reasons = [json.loads(line)["error"] for line in listed]
    assert len(reasons) == 3
    assert "is str, the dataset's ids are int" in reasons[0]
    assert "missing column 'key'" in reasons[1] and "is null" in reasons[2]


def test_configuration_errors(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.csv", ["a", "b"])
    with pytest.raises(oxiformer.ConfigError, match="no column 'body'"):
        embed_file(source, tmp_path / "o1", model=TINY_MODEL, column="body", quiet=True)
    with pytest.raises(oxiformer.ConfigError, match="no --id-column"):
        embed_file(write_input(tmp_path / "in.txt", ["a"]), tmp_path / "o2", id_column="k")
    (tmp_path / "x.tsv").write_text("a\tb\n")
    with pytest.raises(oxiformer.ConfigError, match="unsupported input"):
        embed_file(tmp_path / "x.tsv", tmp_path / "o3")
    embed_file(source, tmp_path / "out", model=TINY_MODEL, quiet=True)
    with pytest.raises(oxiformer.ConfigError, match="exists and is not empty"):
        embed_file(source, tmp_path / "out", model=TINY_MODEL, quiet=True)
    with pytest.raises(oxiformer.ConfigError, match="normalize differ"):
        embed_file(source, tmp_path / "out", model=TINY_MODEL, normalize=True, resume=True)
    summary = embed_file(source, tmp_path / "out", model=TINY_MODEL, resume=True, quiet=True)
    assert (summary.rows, summary.resumed_shards) == (0, 1)


def test_missing_ray_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.txt", ["a"])
    code = (
        "import sys; sys.modules['ray'] = None; from oxiformer.cli import main; "
        f"sys.exit(main(['embed-dataset', {str(source)!r}, {str(tmp_path / 'out')!r}, "
        "'--engine', 'ray']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert 'needs ray, which is not installed: pip install "oxiformer[ray]"' in result.stderr


def test_empty_input_gives_an_empty_dataset_with_the_columns(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "in.txt").write_text("")
    summary = embed_file(tmp_path / "in.txt", tmp_path / "out", model=TINY_MODEL, quiet=True)
    table = pq.read_table(tmp_path / "out")
    assert summary.rows == table.num_rows == 0
    assert table.column_names == ["id", "embedding"]


def test_bits_precision_packs_the_embedding_column(
    minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    texts = sample_texts(30)
    source = write_input(tmp_path / "in.jsonl", texts)
    for precision, arrow in (("binary", "int8"), ("ubinary", "uint8")):
        output = tmp_path / precision
        embed_file(
            source, output, precision=precision, truncate_dim=100, rows_per_shard=7, quiet=True
        )
        table = pq.read_table(output).sort_by("id")
        kind = table.schema.field("embedding").type
        assert kind.list_size == 13 and str(kind.value_type) == arrow  # 100 bits in 13 bytes
        values = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        want = minilm.encode(texts, truncate_dim=100, precision=precision)
        assert values.dtype == want.dtype and same_bits(values, want)
        manifest = json.loads((output / "_oxiformer.json").read_text())
        assert manifest["precision"] == precision
    float_manifest = tmp_path / "float"
    embed_file(source, float_manifest, precision="float32", quiet=True)
    assert "precision" not in json.loads((float_manifest / "_oxiformer.json").read_text())
    # resuming a run with another precision is refused
    again = ("--precision", "ubinary", "--truncate-dim", "100", "--rows-per-shard", "7", "-q")
    result = run_cli(source, str(tmp_path / "binary"), "--resume", *again)
    assert result.returncode != 0 and "precision" in result.stderr, result.stderr
    # int8 and uint8 take their ranges from the batch: refused for a corpus
    for precision in ("int8", "uint8"):
        with pytest.raises(oxiformer.InputError, match="ranges from all the embeddings"):
            embed_file(source, tmp_path / precision, precision=precision, quiet=True)
    # an empty input still has the packed column
    empty = write_input(tmp_path / "empty.jsonl", [])
    result = run_cli(empty, str(tmp_path / "none"), "--precision", "binary", "-q")
    assert result.returncode == 0, result.stderr
    kind = pq.read_table(tmp_path / "none").schema.field("embedding").type
    assert kind.list_size == 48 and str(kind.value_type) == "int8"
