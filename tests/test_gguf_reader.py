"""The check's GGUF header reader (``gguf/reader.py``) against llama.cpp's own Python reader
(``gguf.GGUFReader``) on a GGUF written by llama.cpp's own writer, and on broken copies of it.

The file has every value type, a long string array and a long integer array (the vocabulary's
shape: skipped, their length kept), and f32, f16 and q8_0 tensors. No llama-server: fast.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from reranker_seqcls.errors import BadInput
from reranker_seqcls.gguf.reader import read_header


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gguf

    path = tmp_path_factory.mktemp("gguf-reader") / "all-types.gguf"
    writer = gguf.GGUFWriter(path, "qwen3")
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -100)
    writer.add_uint16("t.u16", 60_000)
    writer.add_int16("t.i16", -30_000)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -2_000_000_000)
    writer.add_float32("t.f32", 0.25)
    writer.add_bool("t.bool", True)
    writer.add_uint64("t.u64", 1 << 60)
    writer.add_int64("t.i64", -(1 << 60))
    writer.add_float64("t.f64", 1e-300)
    writer.add_string("t.str", "{query} → {document} 🙂\n")
    writer.add_array("t.short", [1, 2, 3])
    writer.add_array("t.short_str", ["a", "ü", ""])
    writer.add_token_list([f"tok{i}·{'é' * (i % 5)}" for i in range(3000)])
    writer.add_token_types([1 + i % 3 for i in range(3000)])
    writer.add_token_scores([float(i) for i in range(3000)])
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((2, 64)).astype(np.float32)
    f16 = rng.standard_normal((4, 32)).astype(np.float16)
    q8 = rng.standard_normal((3, 64)).astype(np.float32)
    writer.add_tensor("a.f32", f32)
    writer.add_tensor("b.f16", f16)
    quantized = gguf.quants.quantize(q8, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("c.q8_0", quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_header_agrees_with_llama_cpps_reader(gguf_file: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(gguf_file)
    header = read_header(gguf_file)
    compared = 0
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        long = isinstance(value, list) and len(value) > 1024  # skipped: its length is kept
        expected = len(value) if long else value
        assert (
            header.fields[key] == pytest.approx(expected)
            if isinstance(expected, float)
            else (header.fields[key] == expected)
        ), key
        compared += 1
    assert compared == len(header.fields) >= 17
    assert header.fields["tokenizer.ggml.tokens"] == 3000
    assert header.fields["t.str"] == "{query} → {document} 🙂\n"
    assert header.fields["t.short_str"] == ["a", "ü", ""]
    assert set(header.tensors) == {t.name for t in reader.tensors}
    for tensor in reader.tensors:
        info = header.tensors[tensor.name]
        assert info.shape == tuple(int(n) for n in tensor.shape)
        assert info.ggml_type == int(tensor.tensor_type)
        assert header.data_start + info.offset == tensor.data_offset
        expected_rows = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        got = header.tensor(tensor.name)
        assert got.dtype == np.float32 and got.shape == (int(tensor.shape[1]), int(tensor.shape[0]))
        assert np.array_equal(got, np.asarray(expected_rows, np.float32).reshape(got.shape))


def test_broken_headers_are_one_bad_input(gguf_file: Path, tmp_path: Path) -> None:
    """Every cut of the header, and random byte changes anywhere in it, give a header or
    BadInput: no other exception, no hang."""
    whole = gguf_file.read_bytes()
    data_start = read_header(gguf_file).data_start
    broken = tmp_path / "broken.gguf"
    for cut in [0, 3, 4, 8, 23, *range(24, data_start, max(1, data_start // 150))]:
        broken.write_bytes(whole[:cut])
        with pytest.raises(BadInput, match="is not a readable GGUF file"):
            read_header(broken)
    rng = random.Random(7)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(300):
        mutated = bytearray(whole[:data_start])
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(4, data_start)] = rng.randrange(256)
        broken.write_bytes(bytes(mutated) + whole[data_start:])
        try:
            header = read_header(broken)
            for name in header.tensors:
                header.tensor(name)
            outcomes["read"] += 1
        except BadInput as exc:
            assert str(exc).count("\n") == 0
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["read"] > 0, outcomes
