"""The Ray engine of ``embed-dataset`` and ``oxiformer.ray.Embedder``, on a real local Ray
instance with 2 CPUs (started once for the module): same bits as the local engine and
``SentenceEncoder.encode``, actor threads from their CPUs, a worker killed mid-run, bad rows."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import pytest
from dataset_files import TINY_MODEL, read_output, same_bits, sample_texts, write_input
from helpers import require_fixtures

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (pip install 'oxiformer[ray]'): Ray engine not tested"
)
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")

from oxiformer.datasets import embed_file  # noqa: E402
from oxiformer.ray import Embedder  # noqa: E402

require_fixtures("tiny-bert/seqcls", "minilm/texts.json")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """A local Ray instance with 2 CPUs, as on one machine of a cluster."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def minilm() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


def test_ray_engine_equals_local_engine_and_encode(
    ray_instance: None, minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    texts = sample_texts(120)
    keys = [f"doc-{i:03d}" for i in range(len(texts))]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_input(corpus / "a.jsonl", texts[:50], keys[:50])
    write_input(corpus / "b.parquet", texts[50:], keys[50:])
    outputs = {}
    for engine in ("local", "ray"):
        for id_column in (None, "key"):
            output = tmp_path / f"{engine}-{id_column}"
            summary = embed_file(
                corpus, output, engine=engine, id_column=id_column, rows_per_shard=40,
                workers=2, keep_text=True, quiet=True,
            )  # fmt: skip
            assert (summary.rows, summary.skipped) == (120, 0)
            outputs[engine, id_column] = read_output(output)
    expected = minilm.encode(texts)
    for (engine, id_column), (ids, embeddings, table) in outputs.items():
        print(engine, id_column)
        assert ids == (keys if id_column else list(range(120)))  # each row once, ids kept
        assert same_bits(embeddings, expected)
        by_id = dict(zip(ids, table.column("text").to_pylist()))
        assert [by_id[key] for key in (keys if id_column else range(120))] == texts


def test_embedder_in_a_user_pipeline(ray_instance: None, tmp_path: Path) -> None:
    tiny = oxiformer.SentenceEncoder.from_pretrained(TINY_MODEL)
    texts = sample_texts(50)
    rows = [{"doc": i, "text": text} for i, text in enumerate(texts)]
    dataset = ray.data.from_items(rows).map_batches(
        Embedder,
        fn_constructor_kwargs={"model": str(TINY_MODEL)},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_size=16,
    )
    got = sorted(dataset.take_all(), key=lambda row: row["doc"])
    assert [row["text"] for row in got] == texts
    assert same_bits(np.stack([row["embedding"] for row in got]), tiny.encode(texts))
    arrow = ray.data.from_items(rows).map_batches(
        Embedder,
        fn_constructor_kwargs={"model": str(TINY_MODEL), "keep_text": False, "normalize": True},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_size=16,
        batch_format="pyarrow",
    )
    arrow.write_parquet(str(tmp_path / "out"))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out").sort_by("doc")
    assert table.column_names == ["doc", "embedding"]
    values = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert same_bits(values.astype(np.float32), tiny.encode(texts, normalize_embeddings=True))
    prompted = ray.data.from_items(rows).map_batches(
        Embedder,
        fn_constructor_kwargs={"model": str(TINY_MODEL), "prompt": "query: ", "truncate_dim": 8},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_size=16,
    )
    got = sorted(prompted.take_all(), key=lambda row: row["doc"])
    want = tiny.encode(["query: " + text for text in texts], truncate_dim=8)
    assert same_bits(np.stack([row["embedding"] for row in got]), want)
    bits = ray.data.from_items(rows).map_batches(
        Embedder,
        fn_constructor_kwargs={"model": str(TINY_MODEL), "precision": "ubinary"},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_size=16,
        batch_format="pyarrow",
    )
    got = sorted(bits.take_all(), key=lambda row: row["doc"])
    packed = np.stack([np.asarray(row["embedding"], dtype=np.uint8) for row in got])
    assert same_bits(packed, tiny.encode(texts, precision="ubinary"))
    with pytest.raises(oxiformer.InputError, match="ranges from all the embeddings"):
        Embedder(str(TINY_MODEL), precision="int8")


@pytest.mark.parametrize("cpus", [1, 2])
def test_actor_threads_follow_its_cpus(ray_instance: None, cpus: int) -> None:
    actor = ray.remote(num_cpus=cpus)(Embedder).remote(model=str(TINY_MODEL))
    try:
        threads = ray.get(actor.__ray_call__.remote(lambda _: oxiformer.get_num_threads()))
    finally:
        ray.kill(actor)
    assert threads == cpus


def _actor_pids() -> list[int]:
    """Processes of the embed-dataset actors, by their Ray process title."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"MapBatches(Embedder)" in title:
                pids.append(int(entry.name))
    return pids


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_killed_worker_is_replaced_and_every_row_written_once(
    ray_instance: None, minilm: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    texts = sample_texts(2000)
    source = write_input(tmp_path / "in.jsonl", texts)
    output = tmp_path / "out"
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["summary"] = embed_file(
                source, output, engine="ray", workers=2, rows_per_shard=200, quiet=True
            )
        except BaseException as err:  # reported by the test thread
            outcome["error"] = err

    job = threading.Thread(target=run)
    job.start()
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and job.is_alive() and time.monotonic() < deadline:
        busy = [pid for pid in _actor_pids() if _cpu_seconds(pid) >= 3.0]  # loaded, embedding
        victim = busy[0] if busy else None
        time.sleep(0.05)
    assert victim is not None and job.is_alive(), "the job ended before a worker could be killed"
    import os

    os.kill(victim, signal.SIGKILL)
    print(f"killed actor process {victim}")
    job.join(timeout=900)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"].rows == len(texts)
    ids, embeddings, _ = read_output(output)
    assert ids == list(range(len(texts)))
    assert same_bits(embeddings, minilm.encode(texts))


def _bad_jsonl(path: Path) -> Path:
    path.write_bytes(
        b'{"text": "fine"}\n{"text": null}\n{"text": "also fine"}\n{"other": 1}\n'
        b'{"text": "bad \xff"}\n{"text": "last"}\n'
    )
    return path


def test_ray_bad_rows_fail_or_go_to_the_same_errors_file(
    ray_instance: None, tmp_path: Path
) -> None:
    source = _bad_jsonl(tmp_path / "in.jsonl")
    with pytest.raises(oxiformer.InputError) as caught:
        embed_file(source, tmp_path / "fail", model=TINY_MODEL, engine="ray", quiet=True)
    message = str(caught.value)
    print(message)
    assert message.count("\n") == 0
    assert str(source) in message and "row 1 (id 1): text is null" in message
    errors = {}
    for engine in ("local", "ray"):
        summary = embed_file(
            source, tmp_path / engine, model=TINY_MODEL, engine=engine, on_error="skip",
            rows_per_shard=2, quiet=True,
        )  # fmt: skip
        assert (summary.rows, summary.skipped) == (3, 3)
        errors[engine] = (tmp_path / f"{engine}.errors.jsonl").read_text(encoding="utf-8")
        assert read_output(tmp_path / engine)[0] == [0, 2, 5]
    assert errors["ray"] == errors["local"]
    assert [json.loads(line)["id"] for line in errors["ray"].splitlines()] == [1, 3, 4]


def test_cli_on_a_running_cluster_and_on_its_own_instance(
    ray_instance: None, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.txt", sample_texts(40, one_line=True))
    tiny = oxiformer.SentenceEncoder.from_pretrained(TINY_MODEL)
    command = [sys.executable, "-m", "oxiformer", "embed-dataset", str(source)]
    for name, extra in (("auto", ["--address", "auto"]), ("own", [])):
        result = subprocess.run(
            [*command, str(tmp_path / name), "--model", str(TINY_MODEL), "--engine", "ray", *extra],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "embedded 40 rows into" in result.stderr and "(ray engine" in result.stderr
        ids, embeddings, _ = read_output(tmp_path / name)
        assert ids == list(range(40))
        assert same_bits(embeddings, tiny.encode(sample_texts(40, one_line=True)))
