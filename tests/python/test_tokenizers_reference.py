"""`compress tokenize` against Hugging Face `tokenizers` (and `sentencepiece` for .model files):
the ids of every line of wikitext-2 test must be equal.

Real tokenizer: all-MiniLM-L6-v2 (WordPiece). The others are trained here, offline, on
wikitext-2 valid: GPT-2 style byte-level BPE, Llama 3 and Qwen2 style BPE (Split regex +
ByteLevel without regex), and a SentencePiece Unigram model, read both as .model and as a
T5-style tokenizer.json (Precompiled charsmap + Metaspace).
"""
import json
import pathlib
import struct

import pytest
from conftest_common import MINILM, SOURCE_DIR, run, WIKITEXT_DIR

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402

DATA = WIKITEXT_DIR
TEST_TXT = DATA / "test.txt"
VALID_TXT = DATA / "valid.txt"
VOCAB_SIZE = 4000

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")



def lines_of(path):
    """Splits on '\\n' only and keeps empty lines, exactly as the CLI does (a final '\\n' ends
    the last line rather than starting an empty one)."""
    text = pathlib.Path(path).read_bytes().decode("utf-8")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def train_gpt2(path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train([str(VALID_TXT)], trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # wikitext's "<unk>" becomes an added token that swallows the space before it (lstrip).
    tok.add_special_tokens([AddedToken("<unk>", lstrip=True, normalized=False)])
    tok.save(str(path))


def train_llama(path, pattern, merges_as_strings):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train([str(VALID_TXT)], trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
        show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    if merges_as_strings:
        spec["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                   for m in spec["model"]["merges"]]
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def read_charsmap(model_path):
    """ModelProto.normalizer_spec (field 3).precompiled_charsmap (field 2), without protobuf."""
    data = pathlib.Path(model_path).read_bytes()

    def fields(buf):
        pos = 0
        while pos < len(buf):
            key, pos = varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = varint(buf, pos)
            elif wire == 2:
                length, pos = varint(buf, pos)
                value, pos = buf[pos:pos + length], pos + length
            elif wire == 5:
                value, pos = buf[pos:pos + 4], pos + 4
            elif wire == 1:
                value, pos = buf[pos:pos + 8], pos + 8
            else:
                raise ValueError(f"wire type {wire}")
            yield number, value

    def varint(buf, pos):
        value = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value, pos

    for number, value in fields(data):
        if number == 3:
            for n, v in fields(value):
                if n == 2:
                    return bytes(v)
    return b""


def train_sentencepiece(model_prefix):
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(
        input=str(VALID_TXT), model_prefix=str(model_prefix), vocab_size=VOCAB_SIZE,
        model_type="unigram", character_coverage=0.9995, byte_fallback=True,
        pad_id=3, minloglevel=2, num_threads=2)
    return pathlib.Path(f"{model_prefix}.model")


def unigram_json_from_spm(model_path, path):
    """A T5-style tokenizer.json from a .model, as transformers' converter builds it."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=True))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(read_charsmap(model_path)), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", sp.eos_id())])
    tok.save(str(path))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    paths = {"gpt2": root / "gpt2.json", "llama3": root / "llama3.json", "qwen2": root / "qwen2.json"}
    train_gpt2(paths["gpt2"])
    train_llama(paths["llama3"], LLAMA3_PATTERN, merges_as_strings=False)
    train_llama(paths["qwen2"], QWEN2_PATTERN, merges_as_strings=True)
    return paths


def cli_ids(tokenizer_path, text_path, special):
    args = ["tokenize", tokenizer_path, text_path] + ([] if special else ["--no-special-tokens"])
    result = run(*args, check=0)
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_same_ids(name, expected, got, lines):
    assert len(got) == len(expected), f"{name}: {len(got)} lines from the CLI, {len(expected)} expected"
    for i, (want, have) in enumerate(zip(expected, got)):
        assert have == want, (f"{name}: line {i + 1} {lines[i][:200]!r} differs\n"
                              f"  tokenizers: {want}\n  stunt:      {have}")


def check_tokenizer_json(name, path, special=True):
    lines = lines_of(TEST_TXT)
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    expected = [e.ids for e in tok.encode_batch(lines, add_special_tokens=special)]
    assert_same_ids(name, expected, cli_ids(path, TEST_TXT, special), lines)


@pytest.mark.parametrize("special", [True, False])
def test_wordpiece_minilm(special):
    check_tokenizer_json("all-MiniLM-L6-v2", MINILM / "tokenizer.json", special)


@pytest.mark.parametrize("name", ["gpt2", "llama3", "qwen2"])
@pytest.mark.parametrize("special", [True, False])
def test_byte_level_bpe(trained, name, special):
    check_tokenizer_json(name, trained[name], special)


def test_folder_is_accepted():
    lines = lines_of(TEST_TXT)[:50]
    tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    expected = [e.ids for e in tok.encode_batch(lines)]
    got = [json.loads(line) for line in run("tokenize", MINILM, TEST_TXT, check=0).stdout.splitlines()]
    assert_same_ids("folder", expected, got[:50], lines)


def test_sentencepiece_unigram(tmp_path):
    import sentencepiece as spm
    model = train_sentencepiece(tmp_path / "spm")
    lines = lines_of(TEST_TXT)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert_same_ids("spm .model", sp.encode(lines), cli_ids(model, TEST_TXT, special=False), lines)
    as_json = tmp_path / "unigram.json"
    unigram_json_from_spm(model, as_json)
    check_tokenizer_json("unigram tokenizer.json", as_json, special=True)


def test_unsupported_model_type_is_named(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"model": {"type": "WordLevel", "vocab": {}}}))
    result = run("tokenize", bad, TEST_TXT, check=1)
    assert 'model.type "WordLevel" is not supported; supported: BPE, WordPiece, Unigram' in result.stderr


if __name__ == "__main__":
    # Writes the trained tokenizers into a folder, for manual checks: python ... OUT_DIR
    import sys
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    train_gpt2(out / "gpt2.json")
    train_llama(out / "llama3.json", LLAMA3_PATTERN, merges_as_strings=False)
    train_llama(out / "qwen2.json", QWEN2_PATTERN, merges_as_strings=True)
    unigram_json_from_spm(train_sentencepiece(out / "spm"), out / "unigram.json")
