#!/usr/bin/env bash
# Build the fuzz targets and run each for a set time (libFuzzer via cargo fuzz).
#
#   fuzz/run.sh SECONDS [TARGET...]     (targets: tokenizer config tokenizer_files)
#
# Corpora grow in fuzz/corpus/<target> (seeded here on first run), crashes land
# in fuzz/artifacts/<target>, logs in fuzz/logs. cargo-fuzz needs nightly
# features: RUSTC_BOOTSTRAP=1 lets the stable toolchain build it. One job per
# target, run niced, so the machine stays usable.
set -euo pipefail

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(tokenizer config tokenizer_files)
fi
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
mkdir -p corpus logs artifacts

seed() {
    # Seed inputs: option bytes then text for `tokenizer`; JSON for `config`;
    # a kind byte then tokenizer.json / vocab.txt for `tokenizer_files`.
    python3 - <<'PY'
import json, os
def put(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    path = f"corpus/{target}/seed-{name}"
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
texts = ["Hello, world! [MASK] unaffable café", "中国 한국 😀 naïve ﬁ İ", "a\u0301\u0302 e\u0301 ς",
         "ab abc <s w> [CLS] x [SEP]", "\t\n\r \u00a0\u2028 \x00\x7f\ud7ff", "hellohellohello" * 9,
         "don't  $12.3-4", ""]
for i, text in enumerate(texts):
    for j, options in enumerate([b"\x00\x01\x00\x00", b"\x31\x03\x0a\x85", b"\x4a\x07\x05\x22"]):
        put("tokenizer", f"{i}-{j}", options + text.encode("utf-8", "surrogatepass"))
base = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "hidden_act": "gelu", "max_position_embeddings": 128,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
        "architectures": ["BertModel"], "model_type": "bert"}
put("config", "base", json.dumps(base).encode())
put("config", "min", json.dumps({k: base[k] for k in list(base)[:5]}).encode())
put("config", "sin", json.dumps(dict(base, position_embedding_type="sinusoidal",
                                     hidden_act="gelu_new", type_vocab_size=0)).encode())
words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##s", "world", "un", "##aff",
         "##able", "中", "é", "!", "a", "##a"]
put("tokenizer_files", "vocab", b"\x01" + "\n".join(words).encode() + b"\n")
put("tokenizer_files", "vocab-crlf", b"\x03" + "\r\n".join(words).encode())
added = [{"id": i, "content": w, "single_word": False, "lstrip": i == 4, "rstrip": False,
          "normalized": False, "special": True} for i, w in enumerate(words[:5])]
doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
       "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                      "strip_accents": None, "lowercase": True},
       "pre_tokenizer": {"type": "BertPreTokenizer"},
       "post_processor": {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
           "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
       "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
       "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                 "max_input_chars_per_word": 100,
                 "vocab": {w: i for i, w in enumerate(words)}}}
put("tokenizer_files", "json", b"\x00" + json.dumps(doc, ensure_ascii=False).encode())
doc["post_processor"] = {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}
doc["normalizer"] = None
put("tokenizer_files", "json-bert", b"\x00" + json.dumps(doc).encode())
PY
}

# Tokens libFuzzer may splice into inputs (JSON keys and values).
cat > logs/json.dict <<'DICT'
"\"vocab_size\""
"\"hidden_size\""
"\"num_hidden_layers\""
"\"num_attention_heads\""
"\"intermediate_size\""
"\"hidden_act\""
"\"max_position_embeddings\""
"\"type_vocab_size\""
"\"layer_norm_eps\""
"\"position_embedding_type\""
"\"model\""
"\"vocab\""
"\"added_tokens\""
"\"normalizer\""
"\"post_processor\""
"\"TemplateProcessing\""
"\"BertProcessing\""
"\"special_tokens\""
"\"SpecialToken\""
"\"Sequence\""
"\"ids\""
"\"type_id\""
"\"continuing_subword_prefix\""
"\"max_input_chars_per_word\""
"\"unk_token\""
"\"WordPiece\""
"\"BertPreTokenizer\""
"\"BertNormalizer\""
"\"strip_accents\""
"\"lowercase\""
"\"lstrip\""
"\"rstrip\""
"\"single_word\""
"\"[UNK]\""
"\"[CLS]\""
"\"[SEP]\""
"null"
"true"
"false"
"-1"
"1e308"
"9223372036854775807"
"18446744073709551616"
"4294967295"
DICT

seed
for target in "${targets[@]}"; do
    cargo fuzz build --release --debug-assertions "$target"
done

for target in "${targets[@]}"; do
    mkdir -p "artifacts/$target"
    dict=()
    if [ "$target" != tokenizer ]; then
        dict=(-dict=logs/json.dict)
    fi
    echo "== $target for ${seconds}s (log: fuzz/logs/$target.log)"
    nice -n 10 cargo fuzz run --release --debug-assertions "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=20 -rss_limit_mb=3072 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" "${dict[@]}" \
        >"logs/$target.log" 2>&1 || status=$?
    tail -n 25 "logs/$target.log" | grep -E "stat::|Done|cov:|SUMMARY|panicked" | tail -n 8 || true
    if [ "${status:-0}" -ne 0 ]; then
        echo "!! $target failed (exit ${status}); see fuzz/logs/$target.log and fuzz/artifacts/$target"
        exit "$status"
    fi
done
