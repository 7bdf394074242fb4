"""oxiformer against ONNX Runtime on MiniLM, fp32 and int8: the one script that times them.

Engines (each in a process of its own, taking turns round by round; see ``_common.Turns``):
oxiformer fp32 and int8 (``SentenceEncoder.from_pretrained(dtype="int8")``), ONNX Runtime fp32
on ``../shared/fixtures/minilm/model.onnx`` and its ``quantize_dynamic`` int8 (per-channel
weights). Work: encoder batches 1x16, 1x128, 32x128 of random ids, and ``--sentences`` real
sentences of mixed length end to end (text in, normalized embeddings out, batches of 32; HF
tokenizers feed ORT), with ORT's batches in input order (``texts``) and batched by token count,
longest first, to pad the least (``texts-sorted``; oxiformer packs its batches without padding
either way). Each cell is the median over ``--rounds`` rounds of each round's best
call; ratios are peer time / oxiformer time (> 1: oxiformer is faster).

Also (unless ``--speed-only``): min cosine to the fp32 golden per token and per sentence
(PyTorch's output in ``golden.npz``), and cold start (a fresh process that imports, loads and
embeds one sentence: wall time, peak RSS).

    python benches/compare.py [--threads 2] [--rounds 5] [--sentences 1000]
    python benches/compare.py --engines ox-fp32 --simd "avx512 avx2,avx2"  # paths side by side
    python benches/compare.py --baseline /path/to/venv/bin/python        # two builds, A/B

Needs onnxruntime, onnx and tokenizers, and the corpus packages of ``tests/corpus.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    FIXTURES,
    REPORT_PEAK,
    Engine,
    Turns,
    hf_tokenizer,
    machine_header,
    minilm_dir,
    ort_int8_model,
    ort_pipeline,
    ort_session,
    real_sentences,
)

ENGINES = ("ox-fp32", "ox-int8", "ort-fp32", "ort-int8")
SHAPES = {"1x16": (1, 16, 30), "1x128": (1, 128, 10), "32x128": (32, 128, 2)}
# (mine, peer) pairs the table gives ratios for.
RATIOS = (
    ("ox-fp32", "ort-fp32"),
    ("ox-int8", "ort-int8"),
    ("ox-int8", "ox-fp32"),
)


def engines(args: argparse.Namespace) -> dict[str, Engine]:
    chosen = args.engines.split(",")
    tokenizer = str(minilm_dir() / "tokenizer.json")
    table: dict[str, Engine] = {}
    for name in chosen:
        if name == "ort-fp32":
            table[name] = Engine("ort", str(FIXTURES / "model.onnx"), tokenizer=tokenizer)
        elif name == "ort-int8":
            table[name] = Engine(
                "ort", str(ort_int8_model(FIXTURES / "model.onnx")), tokenizer=tokenizer
            )
        elif name in ("ox-fp32", "ox-int8"):
            dtype = "int8" if name == "ox-int8" else "float32"
            for path in args.simd.split() or [""]:
                suffix = f" [{path}]" if path else ""
                env = {"OXIFORMER_SIMD": path} if path else {}
                table[name + suffix] = Engine("oxiformer", dtype=dtype, env=env)
                if args.baseline:
                    table[f"{name}{suffix} (baseline)"] = Engine(
                        "oxiformer", dtype=dtype, python=args.baseline, env=env
                    )
        else:
            raise SystemExit(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    return table


def speed_rows(args: argparse.Namespace, table: dict[str, Engine]) -> list[dict[str, Any]]:
    works = args.work.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Turns(table, args.threads) as turns:
        for work in works:
            if work in SHAPES:
                batch, seq, repeats = SHAPES[work]
                command: dict[str, Any] = {"op": "encoder", "batch": batch, "seq": seq}
                command["repeats"] = repeats
                label = f"encoder {work}"
            elif work in ("texts", "texts-sorted"):
                sentences = real_sentences(args.sentences)
                path = Path(tmp) / "texts.json"
                path.write_text(json.dumps(sentences), encoding="utf-8")
                command = {"op": "texts", "file": str(path), "batch_size": 32, "repeats": 1}
                label = f"{len(sentences)} real sentences, text -> embedding"
                if work == "texts-sorted":
                    command["by_length"] = True
                    label += " (ORT length-sorted)"
            else:
                known = ", ".join([*SHAPES, "texts", "texts-sorted"])
                raise SystemExit(f"unknown work {work!r}: {known}")
            rows.append({"work": label, **turns.medians(command, args.rounds)})
            print(f"  {label}: done", file=sys.stderr)
        turns.close()
    return rows


def ratio_columns(names: list[str]) -> list[tuple[str, str]]:
    """(mine, peer) engine names to give ratios for, matched by their base names."""
    pairs = []
    for mine, peer in RATIOS:
        for name in names:
            if name.split(" ")[0] != mine:
                continue
            # the peer of the same path / build, else the plain one
            suffix = name[len(mine) :]
            match = peer + suffix if peer + suffix in names else peer
            if match in names and match != name:
                pairs.append((name, match))
    return pairs


def speed_table(rows: list[dict[str, Any]], names: list[str]) -> list[str]:
    pairs = ratio_columns(names)
    header = ["work", *names, *(f"{mine} vs {peer}" for mine, peer in pairs)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        cells = [row["work"], *(f"{row[name] * 1e3:.1f} ms" for name in names)]
        cells += [f"**{row[peer] / row[mine]:.2f}x**" for mine, peer in pairs]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def min_cosines(tokens: Any, sentences: Any, golden: dict[str, Any]) -> tuple[float, float]:
    """(min token cosine, min sentence cosine) against the fp32 golden."""
    mask = golden["attention_mask"].astype(bool)
    want = golden["last_hidden_state"][mask]
    got = tokens[mask]
    token_cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    gold = golden["sentence_embedding"]
    sentence_cos = (sentences * gold).sum(1) / (
        np.linalg.norm(sentences, axis=1) * np.linalg.norm(gold, axis=1)
    )
    return float(token_cos.min()), float(sentence_cos.min())


def accuracy_line(table: dict[str, Engine], threads: int) -> str:
    import oxiformer

    oxiformer.set_num_threads(threads)
    golden = dict(np.load(FIXTURES / "golden.npz"))
    texts = json.loads((FIXTURES / "texts.json").read_text(encoding="utf-8"))
    ids, mask = golden["input_ids"], golden["attention_mask"]
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    cells = []
    hf = hf_tokenizer(minilm_dir())
    for name, engine in table.items():
        if engine.kind == "oxiformer":
            dtype = None if engine.dtype == "float32" else engine.dtype
            model = oxiformer.SentenceEncoder.from_pretrained(dtype=dtype)
            tokens = model.encoder(ids, mask).last_hidden_state
            sentences = model.encode(texts)
        else:
            session = ort_session(Path(str(engine.model)), threads)
            tokens = session.run(None, feed)[0]
            sentences = ort_pipeline(session, hf, texts, 64)
        token, sentence = min_cosines(tokens, sentences, golden)
        cells.append(f"{name} {token:.4f} / {sentence:.4f}")
    return "min cosine to the fp32 golden, token / sentence: " + "; ".join(cells)


COLD_OXIFORMER = (
    "import oxiformer; m = oxiformer.SentenceEncoder.from_pretrained(); m.encode('hello world')"
)
COLD_ORT = """
import sys, numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
s = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
e = t.encode("hello world"); ids = np.array([e.ids], dtype=np.int64); m = np.ones_like(ids)
h = s.run(None, {"input_ids": ids, "attention_mask": m, "token_type_ids": np.zeros_like(ids)})[0]
v = h.mean(1); v / np.linalg.norm(v)
"""


def cold_start(code: str, *args: str, runs: int = 3) -> tuple[float, float]:
    """(best wall seconds, peak RSS MiB) of a fresh ``python -c code``."""
    best, peak = float("inf"), 0.0
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", code + REPORT_PEAK, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"cold start failed: {result.stderr.strip()[-300:]}")
        best, peak = min(best, elapsed), max(peak, float(result.stdout.split()[-1]) / 1024)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--engines", default=",".join(ENGINES), help=", ".join(ENGINES))
    parser.add_argument("--work", default="1x16,1x128,32x128,texts,texts-sorted")
    parser.add_argument(
        "--simd",
        default="",
        help="OXIFORMER_SIMD values to run side by side, space-separated ('avx512 avx2,avx2')",
    )
    parser.add_argument("--baseline", default="", help="a Python with another oxiformer build")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()

    table = engines(args)
    print(machine_header(args.threads))
    print(
        f"median over {args.rounds} rounds of each round's best; every engine in its own "
        "process, taking turns; ratio = peer time / oxiformer time\n"
    )
    rows = speed_rows(args, table)
    print("\n".join(speed_table(rows, list(table))))
    if args.speed_only:
        return
    print()
    print(
        accuracy_line({k: v for k, v in table.items() if v.python == sys.executable}, args.threads)
    )
    ox = cold_start(COLD_OXIFORMER)
    ort = cold_start(COLD_ORT, str(minilm_dir() / "tokenizer.json"), str(FIXTURES / "model.onnx"))
    print(
        f"cold start (import, load, embed 1): oxiformer {ox[0]:.2f} s, {ox[1]:.0f} MiB peak; "
        f"ORT fp32 {ort[0]:.2f} s, {ort[1]:.0f} MiB"
    )


if __name__ == "__main__":
    main()
