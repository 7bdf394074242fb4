"""Model files: never damaged by oxiformer, and never able to hang or crash it (issue 18,
points 2, 3, 4 and 7, through the Python API; the CLI is in test_cli_unix.py).

- A loaded model keeps no view of its files: rewriting or truncating them under a running
  model changes nothing (the classifier head was memory-mapped: NaN logits, then SIGBUS).
- Saving refuses the model's own directory; every file is written to a temporary file and
  renamed, so a failed write (full disk, file-size limit) leaves the old file as it was.
- Only regular files are read, and JSON configurations only up to a size: a FIFO or a link to
  ``/dev/zero`` in a model directory is an error at once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import pytest
from helpers import TINY_BERT_SEQCLS, require_fixtures, run_python
from oxiformer import ConfigError, WeightsError
from oxiformer.convert import convert

require_fixtures("tiny-bert/seqcls")

IDS = np.array([[101, 7592, 2088, 102], [101, 2023, 102, 0]])
MASK = (IDS > 0).astype(np.int64)


def tree(directory: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``directory``."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def mapped_copy(tmp_path: Path, layout: str) -> Path:
    """The tiny sequence classifier with memory-mapped weights: ``model.safetensors`` or a
    ``weights/`` directory of ``.npy``."""
    model = tmp_path / "model"
    shutil.copytree(TINY_BERT_SEQCLS, model)
    (model / "weights.npz").unlink()
    if layout == "npy":
        tensors = oxiformer.weights.read_tensors(model / "model.safetensors")
        (model / "weights").mkdir()
        for name, array in tensors.items():
            np.save(model / "weights" / f"{name}.npy", array)
        (model / "model.safetensors").unlink()
    return model


def weight_files(model: Path) -> list[Path]:
    return (
        [model / "model.safetensors"]
        if (model / "model.safetensors").exists()
        else sorted((model / "weights").glob("*.npy"))
    )


# ---- point 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["safetensors", "npy"])
def test_rewriting_the_weights_in_place_changes_nothing(tmp_path: Path, layout: str) -> None:
    model = mapped_copy(tmp_path, layout)
    classifier = oxiformer.SequenceClassifier.from_pretrained(model)
    before = classifier(IDS, MASK).logits
    int8 = oxiformer.SequenceClassifier.from_pretrained(model, dtype="int8")
    int8_before = int8(IDS, MASK).logits
    for file in weight_files(model):
        with open(file, "r+b") as handle:  # same inode: what a mapping would see
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            handle.write(b"\x7f" * size)
    after = classifier(IDS, MASK).logits
    assert after.tobytes() == before.tobytes()
    assert np.isfinite(after).all()
    # Reading the tensors back from a file that changed would save something else.
    with pytest.raises(WeightsError, match="changed"):
        classifier.encoder.state_dict()
    # A model quantized at load keeps its tensors (to save them): its own copies.
    assert int8(IDS, MASK).logits.tobytes() == int8_before.tobytes()
    int8.save_pretrained(tmp_path / "int8")
    saved = oxiformer.SequenceClassifier.from_pretrained(tmp_path / "int8")
    assert saved(IDS, MASK).logits.tobytes() == int8_before.tobytes()


@pytest.mark.parametrize("layout", ["safetensors", "npy"])
def test_truncating_the_weights_under_a_loaded_model(tmp_path: Path, layout: str) -> None:
    """In a child process: a mapping that outlived the load would die here of SIGBUS."""
    model = mapped_copy(tmp_path, layout)
    code = """
import os, sys, numpy as np, oxiformer
model = sys.argv[1]
classifier = oxiformer.SequenceClassifier.from_pretrained(model)
ids = np.array([[101, 7592, 2088, 102]])
before = classifier(ids).logits
for name in sys.argv[2:]:
    os.truncate(name, 0)
after = classifier(ids).logits
print(after.tobytes() == before.tobytes())
"""
    result = run_python(code, str(model), *map(str, weight_files(model)))
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "True"


# ---- point 3 (API) ---------------------------------------------------------------------------


def test_saving_over_the_source_directory_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(TINY_BERT_SEQCLS, model)
    before = tree(model)
    classifier = oxiformer.SequenceClassifier.from_pretrained(model)
    for save in (
        lambda: classifier.save_pretrained(model),
        lambda: classifier.quantize().save_pretrained(model),
        lambda: classifier.save_pretrained(tmp_path / "." / "model"),
    ):
        with pytest.raises(ConfigError, match="is the directory this model was loaded from"):
            save()
    for force in (False, True):
        with pytest.raises(ConfigError, match="is the source model directory"):
            convert(model, model, dtype="int8", force=force)
    link = tmp_path / "link"
    link.symlink_to(model)
    with pytest.raises(ConfigError, match="is the source model directory"):
        convert(model, link, force=True)
    assert tree(model) == before


def test_convert_refuses_a_non_empty_destination_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty"):
        convert(TINY_BERT_SEQCLS, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    kind, written = convert(TINY_BERT_SEQCLS, out, force=True)
    assert kind == "sequence-classifier" and written == out
    assert (out / "notes.txt").read_text() == "mine"  # other files are left alone
    loaded = oxiformer.SequenceClassifier.from_pretrained(out)
    original = oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS)
    assert loaded(IDS, MASK).logits.tobytes() == original(IDS, MASK).logits.tobytes()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        convert(TINY_BERT_SEQCLS, tmp_path / "file")


def test_a_failed_convert_leaves_no_half_written_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(oxiformer._files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device") as caught:
        convert(TINY_BERT_SEQCLS, tmp_path / "new")
    assert caught.value.filename is not None and "weights.npz" in caught.value.filename
    assert list(tmp_path.iterdir()) == []  # neither `new` nor its staging directory


def test_a_full_disk_leaves_config_json_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected while config.json is written over an existing model (``force``):
    the old config.json is intact, not 0 bytes, and no temporary file is left."""
    out = tmp_path / "out"
    convert(TINY_BERT_SEQCLS, out)
    before = tree(out)
    real_fsync = os.fsync
    calls: list[str] = []

    def fsync_fails_on_config(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(name)
        if ".config.json." in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(oxiformer._files.os, "fsync", fsync_fails_on_config)
    classifier = oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS)
    with pytest.raises(OSError) as caught:
        classifier.save_pretrained(out)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(out / "config.json")
    assert "the file is unchanged" in str(caught.value)
    assert any(".config.json." in name for name in calls)
    assert tree(out)["config.json"] == before["config.json"]
    assert sorted(tree(out)) == sorted(before)  # no temporary file left


def test_a_failed_fdopen_closes_the_descriptor_and_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If wrapping the temporary file's descriptor fails (out of memory, say), the descriptor
    is closed, the temporary file removed, and the target left as it was."""
    target = tmp_path / "out.txt"
    target.write_text("old")
    opened: list[int] = []

    def fdopen_fails(fd: int, *args: Any, **kwargs: Any) -> Any:
        opened.append(fd)
        raise MemoryError

    monkeypatch.setattr(oxiformer._files.os, "fdopen", fdopen_fails)
    with pytest.raises(MemoryError), oxiformer._files.atomic_write(target, text=True) as out:
        out.write("new")
    assert len(opened) == 1
    with pytest.raises(OSError) as closed:
        os.fstat(opened[0])
    assert closed.value.errno == errno.EBADF
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_tokenizer_files_are_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    """Tokenizer.save (in Rust) under a file-size limit below vocab.txt's size: the error names
    the file and the previous, smaller files are intact."""
    tokenizer = oxiformer.Tokenizer.from_pretrained(TINY_BERT_SEQCLS)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    before = tree(tmp_path)
    code = (
        "import sys, oxiformer\noxiformer.Tokenizer.from_pretrained(sys.argv[1]).save(sys.argv[2])"
    )
    result = run_python(code, str(TINY_BERT_SEQCLS), str(tmp_path), file_size_limit=64 << 10)
    assert result.returncode != 0
    assert "TokenizerError" in result.stderr and "vocab.txt: cannot write" in result.stderr
    assert tree(tmp_path) == before
    tokenizer.save(tmp_path)  # without the limit, all three files are written
    assert {"vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= set(tree(tmp_path))


# ---- point 7 ---------------------------------------------------------------------------------

LOAD = """
import sys, oxiformer
kind, path = sys.argv[1:]
try:
    getattr(oxiformer, kind).from_pretrained(path)
except oxiformer.OxiformerError as err:
    print(type(err).__name__, err)
"""


def special_model(tmp_path: Path, name: str, special: str) -> Path:
    """A copy of the tiny classifier (weights as ``.npy`` files) whose file ``name`` is a FIFO
    or a symlink to ``/dev/zero``."""
    model = mapped_copy(tmp_path, "npy")
    (model / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
            ]
        )
    )
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    target = model / name
    if target.exists():
        target.unlink()
    if special == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    return model


@pytest.mark.parametrize(
    ("name", "special", "kind", "error", "what"),
    [
        ("weights/extra.npy", "fifo", "SentenceEncoder", "WeightsError", "a FIFO"),
        ("weights/extra.npy", "zero", "SentenceEncoder", "WeightsError", "a character device"),
        ("1_Pooling/config.json", "zero", "SentenceEncoder", "ConfigError", "a character device"),
        ("1_Pooling/config.json", "fifo", "SentenceEncoder", "ConfigError", "a FIFO"),
        ("modules.json", "fifo", "SentenceEncoder", "ConfigError", "a FIFO"),
        ("config.json", "zero", "SequenceClassifier", "ConfigError", "a character device"),
        ("tokenizer.json", "fifo", "SequenceClassifier", "TokenizerError", "a FIFO"),
        ("tokenizer.json", "zero", "SentenceEncoder", "TokenizerError", "a device"),
        ("tokenizer_config.json", "fifo", "SentenceEncoder", "TokenizerError", "a FIFO"),
        ("weights.npz", "fifo", "Encoder", "WeightsError", "a FIFO"),
        ("model.safetensors", "zero", "Encoder", "WeightsError", "a character device"),
    ],
)
def test_special_files_are_refused_at_once(
    tmp_path: Path, name: str, special: str, kind: str, error: str, what: str
) -> None:
    model = special_model(tmp_path, name, special)
    result = run_python(LOAD, kind, str(model), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"{error} "), result.stdout
    assert str(model / name) in result.stdout and what in result.stdout, result.stdout


def test_json_configs_have_a_size_cap(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(TINY_BERT_SEQCLS, model)
    config: dict[str, Any] = json.loads((model / "config.json").read_text())
    config["padding"] = " " * (17 << 20)
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="is too large for a JSON file"):
        oxiformer.Encoder.from_pretrained(model)


def test_weights_under_symlinks_still_load(tmp_path: Path) -> None:
    """The Hugging Face cache links every file to a blob: links to regular files are fine."""
    model = tmp_path / "model"
    model.mkdir()
    for file in TINY_BERT_SEQCLS.iterdir():
        (model / file.name).symlink_to(file)
    direct = oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS)
    linked = oxiformer.SequenceClassifier.from_pretrained(model)
    assert linked(IDS, MASK).logits.tobytes() == direct(IDS, MASK).logits.tobytes()
