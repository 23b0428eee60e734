#!/usr/bin/env python3
"""Writes the malformed-input corpus under tests/data/malformed/ and its manifest.

Each case is a file (or folder) that Stunt must refuse with one clear error: the manifest names
the error class the library throws and a piece of the message that names the cause. The unit
tests check the class and message through the library; the CLI tests check exit code 1, the
message, and that no output was written. Rerun this script after changing a case.
"""
import json
import os
import shutil
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "malformed")
cases = []


def st_bytes(header, data=b"", pad=True):
    raw = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def add(name, content, error, message, kind="model"):
    path = os.path.join(OUT, name)
    if isinstance(content, dict):  # a folder: file name -> bytes
        os.makedirs(path)
        for fname, data in content.items():
            with open(os.path.join(path, fname), "wb") as f:
                f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(content)
    cases.append({"file": name, "kind": kind, "error": error, "message": message})


def entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def st(tensors, data, **kw):
    return st_bytes(json.dumps(tensors, separators=(",", ":")), data, **kw)


F = b"\0\0\x80\x3f"  # 1.0f

shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)

# --- safetensors files -------------------------------------------------------------------
add("empty.safetensors", b"", "FormatError", "too short")
add("five_bytes.safetensors", b"\x01\x02\x03\x04\x05", "FormatError", "too short")
add("header_over_limit.safetensors", struct.pack("<Q", 200_000_000) + b"{}", "FormatError",
    "exceeds the safetensors limit")
add("header_past_end.safetensors", struct.pack("<Q", 64) + b"{}      ", "FormatError",
    "runs past the end")
add("header_not_json.safetensors", st_bytes("{not json}"), "FormatError", "not valid JSON")
add("header_is_array.safetensors", st_bytes("[1, 2]"), "FormatError", "starting with '{'")
add("header_bad_utf8.safetensors", st_bytes(b'{"\xff\xfe":1}'), "FormatError", "not valid JSON")
add("unknown_dtype.safetensors", st({"w": entry(dtype="F17")}, F), "FormatError",
    "unknown dtype 'F17'")
add("dtype_not_string.safetensors", st({"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}}, F),
    "FormatError", "dtype must be a string")
add("missing_shape.safetensors", st({"w": {"dtype": "F32", "data_offsets": [0, 4]}}, F),
    "FormatError", "missing 'shape'")
add("negative_dim.safetensors", st({"w": entry(shape=(-1,))}, F), "FormatError",
    "non-negative integer")
add("shape_not_array.safetensors", st({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}}, F),
    "FormatError", "shape must be an array")
add("offsets_three.safetensors", st({"w": entry(offsets=(0, 4, 8))}, F), "FormatError",
    "data_offsets must be [begin, end]")
add("offsets_reversed.safetensors", st({"w": entry(offsets=(4, 0))}, F), "FormatError",
    "end before they begin")
add("size_mismatch.safetensors", st({"w": entry(shape=(4,), offsets=(0, 8))}, F + F),
    "FormatError", "hold 8 bytes but shape [4]")
add("overlap.safetensors", st({"a": entry(offsets=(0, 4)), "b": entry(offsets=(0, 4))}, F),
    "FormatError", "overlaps")
add("hole.safetensors", st({"a": entry(offsets=(4, 8))}, F + F), "FormatError", "a hole of 4 bytes")
add("trailing_bytes.safetensors", st({"a": entry()}, F + F), "FormatError", "trailing bytes")
add("truncated_data.safetensors", st({"a": entry(shape=(2,), offsets=(0, 8))}, F), "FormatError",
    "truncated")
add("duplicate_name.safetensors",
    st_bytes('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
             '"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', F + F),
    "FormatError", "names 'w' twice")
add("metadata_not_object.safetensors", st({"__metadata__": ["x"], "w": entry()}, F), "FormatError",
    "__metadata__ must be an object")
add("metadata_not_string.safetensors", st({"__metadata__": {"format": 1}, "w": entry()}, F),
    "FormatError", "must be a string")
add("entry_not_object.safetensors", st({"w": 5}, b""), "FormatError", "entry must be an object")
add("shape_overflow.safetensors",
    st({"w": entry(shape=(1 << 40, 1 << 40, 1 << 40), offsets=(0, 4))}, F), "FormatError",
    "has more elements than any file can hold")
add("f4_odd_count.safetensors", st({"w": entry(dtype="F4", shape=(3,), offsets=(0, 2))}, b"\0\0"),
    "FormatError", "do not fill whole bytes")
add("legacy_torch_save.pt", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.", "FormatError",
    "legacy (pre-1.6)")
zip_path = os.path.join(OUT, "not_pytorch.zip")
with zipfile.ZipFile(zip_path, "w") as z:
    z.writestr("hello.txt", "hello")
cases.append({"file": "not_pytorch.zip", "kind": "model", "error": "FormatError",
              "message": "not a PyTorch archive"})



def torch_zip(name, pickle_bytes, records=None, message="", error="FormatError"):
    """A zip laid out as torch.save writes it, with a hand-made data.pkl."""
    with zipfile.ZipFile(os.path.join(OUT, name), "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for record, data in (records or {}).items():
            z.writestr("archive/" + record, data)
    cases.append({"file": name, "kind": "model", "error": error, "message": message})


def storage_tensor(size, numel):
    """A pickle of {'w': tensor of `size` floats over a storage of `numel` floats}."""
    return (b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02("
            b"(X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05"
            b"X\x03\x00\x00\x00cpuq\x06K" + bytes([numel]) + b"tq\x07QK\x00K" + bytes([size]) +
            b"\x85q\x08K\x01\x85q\x09\x89ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0ds.")


torch_zip("python_object.pt", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.",
          message="type 'os.system'")
torch_zip("truncated_pickle.pt", b"\x80\x02}q\x00(X\x01\x00\x00\x00", message="ends in the middle")
torch_zip("view_outside_storage.pt", storage_tensor(10, 2), {"data/0": b"\0" * 8},
          message="a tensor view reaches element 9 of a storage of 2")
torch_zip("storage_size_mismatch.pt", storage_tensor(2, 2), {"data/0": b"\0" * 5},
          message="holds 5 bytes, not 2 elements")
torch_zip("missing_storage.pt", storage_tensor(2, 2), message="storage '0' has no data record")

# --- sharded folders ----------------------------------------------------------------------
good_shard = st({"a": entry()}, F)
add("index_not_json", {"model.safetensors.index.json": b"{weight_map", "s.safetensors": good_shard},
    "FormatError", "not valid JSON")
add("index_no_weight_map", {"model.safetensors.index.json": b'{"metadata": {}}'}, "FormatError",
    "missing 'weight_map'")
add("index_value_not_string",
    {"model.safetensors.index.json": b'{"weight_map": {"a": 3}}'}, "FormatError",
    "must be a file name string")
add("index_escapes_folder",
    {"model.safetensors.index.json": b'{"weight_map": {"a": "../secret.safetensors"}}'},
    "FormatError", "leaves the index's folder")
add("index_absolute_path",
    {"model.safetensors.index.json": b'{"weight_map": {"a": "/etc/x.safetensors"}}'},
    "FormatError", "must be relative")
add("index_missing_shard",
    {"model.safetensors.index.json": b'{"weight_map": {"a": "gone.safetensors"}}'}, "IoError",
    "does not exist")
add("index_not_safetensors",
    {"model.safetensors.index.json": b'{"weight_map": {"a": "weights.bin"}}'}, "FormatError",
    "expected a '.safetensors' shard file")
add("index_empty_map", {"model.safetensors.index.json": b'{"weight_map": {}}'}, "FormatError",
    "'weight_map' is empty")
add("index_tensor_not_in_shard",
    {"model.safetensors.index.json": b'{"weight_map": {"b": "s.safetensors"}}',
     "s.safetensors": good_shard}, "FormatError", "that shard has no such tensor")
add("index_bad_shard",
    {"model.safetensors.index.json": b'{"weight_map": {"a": "s.safetensors"}}',
     "s.safetensors": b"\x01\x02"}, "FormatError", "too short")

# --- recipes -------------------------------------------------------------------------------
GPTQ = """quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {WEIGHTS}
"""
W4 = "{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128}"


def recipe(name, text, message, error="RecipeError"):
    add(name, text.encode("utf-8", "surrogateescape"), error, message, kind="recipe")


recipe("unknown_modifier.yaml", "s_stage:\n  m_modifiers:\n    GPTQModifer: {scheme: W4A16}\n",
       "did you mean 'GPTQModifier'")
recipe("unknown_argument.yaml", "s_stage:\n  m_modifiers:\n    GPTQModifier: {scheme: W4A16, "
       "dampening_fraction: 0.1}\n", "did you mean 'dampening_frac'")
recipe("num_bits_not_int.yaml", GPTQ.replace("{WEIGHTS}", W4.replace("num_bits: 4", "num_bits: four")),
       "config_groups.group_0.weights.num_bits: expected an integer")
recipe("sparsity_out_of_range.yaml",
       "p_stage:\n  p_modifiers:\n    SparseGPTModifier: {sparsity: 1.5}\n", "out of range")
recipe("bad_nm.yaml", "p_stage:\n  p_modifiers:\n    SparseGPTModifier: {sparsity: 0.5, "
       "mask_structure: '4:2'}\n", "not a valid N:M structure")
recipe("token_static.yaml", GPTQ.replace("{WEIGHTS}", W4) +
       "          input_activations: {num_bits: 8, strategy: token, dynamic: false}\n",
       "cannot be static")
recipe("group_without_size.yaml", GPTQ.replace("{WEIGHTS}", "{num_bits: 4, strategy: group}"),
       "needs a positive group_size")
recipe("actorder_on_activations.yaml", GPTQ.replace("{WEIGHTS}", W4) +
       "          input_activations: {num_bits: 8, strategy: token, dynamic: true, actorder: weight}\n",
       "applies to weights only")
recipe("scheme_and_groups.yaml", GPTQ.replace("{WEIGHTS}", W4).replace(
    "      ignore: [lm_head]\n", "      ignore: [lm_head]\n      scheme: W4A16\n"), "not both")
recipe("invalid_yaml.yaml", "quant_stage:\n  quant_modifiers: [\n    unclosed\n", "not valid YAML")
recipe("invalid_json.json", '{"quant_stage": {"quant_modifiers": ', "not valid JSON")
recipe("sparseml_undefined_variable.yaml", "pruning_modifiers:\n  - !GMPruningModifier\n"
       "    params: __ALL_PRUNABLE__\n    init_sparsity: 0.05\n    final_sparsity: eval(target)\n"
       "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n",
       "'target', which is not a variable")
recipe("sparseml_cycle.yaml", "a: eval(b + 1)\nb: eval(a * 2)\npruning_modifiers:\n"
       "  - !ConstantPruningModifier\n    params: __ALL_PRUNABLE__\n", "part of a cycle")
recipe("unknown_preset.yaml", "s_stage:\n  m_modifiers:\n    QuantizationModifier: {scheme: W5A5}\n",
       "not a preset scheme")
recipe("top_level_key.yaml", "quant:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A16}\n",
       "unknown top-level key")
recipe("duplicate_key.yaml", "s_stage:\n  m_modifiers:\n    GPTQModifier: {scheme: W4A16}\n"
       "    GPTQModifier: {scheme: W8A8}\n", "duplicate key")
recipe("empty_recipe.yaml", "\n\n", "the recipe is empty")
recipe("null_modifier_args.yaml", "s_stage:\n  m_modifiers:\n    GPTQModifier:\n",
       "give the modifier's arguments")
recipe("eval_division_by_zero.yaml", "zero: 0\npruning_modifiers:\n  - !GMPruningModifier\n"
       "    params: __ALL_PRUNABLE__\n    init_sparsity: 0.05\n    final_sparsity: eval(1 / zero)\n"
       "    start_epoch: 0\n    end_epoch: 10\n    update_frequency: 1\n", "division by zero")
recipe("sparseml_untagged_item.yaml", "modifiers:\n  - start_epoch: 0\n", "tagged mapping")
recipe("invalid_utf8.yaml", "p_stage:\n  p_modifiers:\n    SparseGPTModifier: {sparsity: 1\udccd5}\n",
       "not valid UTF-8")
recipe("no_targets_or_params.yaml", "pruning_modifiers:\n  - !GMPruningModifier\n"
       "    init_sparsity: 0.05\n    final_sparsity: 0.5\n", "missing 'targets'")

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
print(f"{len(cases)} malformed inputs in {OUT}")
