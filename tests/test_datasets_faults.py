"""The local engine of ``embed-dataset`` under faults and at scale: killed with SIGKILL or
interrupted with Ctrl-C, then resumed; peak memory from 10,000 to 1,000,000 lines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from dataset_files import TINY_MODEL, read_output, same_bits, sample_texts, write_input
from helpers import ctrl_c_reaches_python, require_fixtures

require_fixtures("tiny-bert/seqcls", "minilm/texts.json")

pytest.importorskip(
    "pyarrow", reason="embed-dataset needs pyarrow: pip install 'oxiformer[parquet]'"
)

MIB = 1024 * 1024


def _start(source: Path, output: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "oxiformer", "embed-dataset", str(source), str(output)]
    return subprocess.Popen(
        [*command, "--rows-per-shard", "100", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_python,
    )


def _shards(output: Path) -> list[Path]:
    return sorted(output.glob("part-*.parquet")) if output.is_dir() else []


def _interrupt_after_two_shards(
    process: subprocess.Popen[str], output: Path, sig: int
) -> dict[str, tuple[int, int]]:
    """Send ``sig`` once two shards are written (the run must still be going); return
    (inode, mtime) of the shards written by then."""
    deadline = time.monotonic() + 600
    while len(_shards(output)) < 2:
        assert process.poll() is None, f"the run ended early: {process.stderr}"
        assert time.monotonic() < deadline, "no shard written in 10 minutes"
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(sig)
    process.wait(timeout=120)
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in _shards(output)}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_interrupted_run_resumes_with_every_row_once(sig: int, tmp_path: Path) -> None:
    texts = sample_texts(1000, one_line=True)
    source = write_input(tmp_path / "in.txt", texts)
    output = tmp_path / "out"
    process = _start(source, output)
    finished = _interrupt_after_two_shards(process, output, sig)
    stderr = process.stderr.read() if process.stderr else ""
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "interrupted" in stderr, stderr
        assert not list(output.glob(".*.tmp")), "Ctrl-C left a temporary shard"
    else:
        assert process.returncode == -signal.SIGKILL
    assert 2 <= len(finished) < 10, f"{len(finished)} of 10 shards done at the interruption"
    print(f"{len(finished)} of 10 shards done at the interruption")

    resumed = subprocess.run(
        [sys.executable, "-m", "oxiformer", "embed-dataset", str(source), str(output),
         "--rows-per-shard", "100", "--resume"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} finished shards kept from before" in resumed.stderr
    for name, identity in finished.items():  # kept, not rewritten
        path = output / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity
    assert len(_shards(output)) == 10 and not list(output.glob(".*.tmp"))
    ids, embeddings, _ = read_output(output)
    assert ids == list(range(len(texts)))
    assert same_bits(embeddings, oxiformer.SentenceEncoder.from_pretrained().encode(texts))


#: Runs the command line, then prints the process's peak RSS (VmHWM, kB) as its last line.
_MEASURED = """
import sys
from oxiformer.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def _peak_rss(source: Path, output: Path) -> int:
    """Peak RSS in bytes of one ``embed-dataset`` process (the tiny model, fast)."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, "embed-dataset", str(source), str(output),
         "--model", str(TINY_MODEL), "--batch-size", "256", "--quiet"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1]) * 1024


def test_peak_memory_does_not_grow_from_10_thousand_to_1_million_lines(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    peaks = {}
    for lines in (10_000, 1_000_000):
        source = tmp_path / f"{lines}.txt"
        with open(source, "w", encoding="utf-8") as handle:
            handle.writelines(f"line {i} of the corpus\n" for i in range(lines))
        output = tmp_path / f"out-{lines}"
        peaks[lines] = _peak_rss(source, output)
        assert pq.read_metadata(output / "part-000000.parquet").num_rows == min(lines, 10_000)
        assert sum(pq.read_metadata(p).num_rows for p in output.glob("*.parquet")) == lines
    growth = peaks[1_000_000] - peaks[10_000]
    print(
        f"peak RSS: 10,000 lines {peaks[10_000] / MIB:.1f} MiB, 1,000,000 lines "
        f"{peaks[1_000_000] / MIB:.1f} MiB, growth {growth / MIB:+.1f} MiB"
    )
    assert growth <= 50 * MIB


@pytest.mark.parametrize("at", ["opening", "writing", "committing"])
def test_an_interrupted_shard_leaves_no_temporary_file(
    at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C at any point of a shard's life, including while pyarrow creates its file (the
    moment right after the previous shard, where the interruption test once caught one)."""
    pq = pytest.importorskip("pyarrow.parquet")
    from oxiformer import _shards

    schema = _shards.output_schema("int", 2, keep_text=False)
    real_writer = pq.ParquetWriter

    def interrupted_writer(path: Path, schema: object) -> object:
        real_writer(path, schema)  # the file exists, then the signal arrives
        raise KeyboardInterrupt

    if at == "opening":
        monkeypatch.setattr(pq, "ParquetWriter", interrupted_writer)
    with pytest.raises(KeyboardInterrupt), _shards.ShardWriter(tmp_path, 3, schema) as writer:
        writer.write([1, 2], np.ones((2, 2), np.float32), None)
        if at == "committing":
            monkeypatch.setattr(_shards.os, "replace", _raise_interrupt)
            writer.commit()
        raise KeyboardInterrupt
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt
