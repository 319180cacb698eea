#!/usr/bin/env python3
"""Writes the small GGUF seed files of fuzz/corpus/fuzz_gguf_inspect/.

Hand-built GGUF v3 files (a few hundred bytes each) covering what
InspectGguf reads: string/integer metadata of every width, arrays, tensors
of float and block-quantized types, an explicit alignment, and a file with
no tensors. Run it again only to change the seeds: python3 make_gguf_seeds.py DIR
"""
import struct
import sys
from pathlib import Path

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8
# (block size, bytes per block) of the ggml types used here
TYPE_SIZE = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34)}
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
          BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, i) for i in items)
    return struct.pack(SCALAR[t], v)


def gguf(kvs, tensors, alignment=32):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gstr(key) + struct.pack("<I", t) + value(t, v)
    offset = 0
    sizes = []
    for name, ttype, ne in tensors:
        n = 1
        for d in ne:
            n *= d
        block, nbytes = TYPE_SIZE[ttype]
        size = n // block * nbytes
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", d) for d in ne)
        out += struct.pack("<IQ", ttype, offset)
        sizes.append(size)
        offset += (size + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    for size in sizes:
        out += bytes(range(256)) * (size // 256) + bytes(size % 256)
        out += b"\0" * ((-size) % alignment)
    return out


def main(outdir):
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    llama = [("general.architecture", STR, "llama"), ("general.name", STR, "tiny"),
             ("general.file_type", U32, 1), ("llama.context_length", U32, 2048),
             ("llama.block_count", U32, 1)]
    seeds = {
        "llama_f16": gguf(llama, [("token_embd.weight", GGML_F16, [8, 4]), ("output_norm.weight", GGML_F32, [8])]),
        "metadata_only": gguf(llama, []),
        "q8_no_file_type": gguf([("general.architecture", STR, "qwen2"), ("qwen2.context_length", U64, 32768)],
                                [("blk.0.attn_q.weight", GGML_Q8_0, [32, 2]), ("blk.0.attn_k.weight", GGML_Q4_0, [32, 1]),
                                 ("norm", GGML_F32, [4])]),
        "widths_and_arrays": gguf([("general.architecture", STR, "gemma"), ("general.alignment", U32, 64),
                                   ("gemma.context_length", I64, 8192), ("general.file_type", U8, 15),
                                   ("a.i8", I8, -1), ("a.u16", U16, 7), ("a.i16", I16, -7), ("a.i32", I32, -9),
                                   ("a.f32", F32, 0.5), ("a.f64", F64, 1.5), ("a.bool", BOOL, True),
                                   ("tokenizer.ggml.tokens", ARR, (STR, ["<s>", "</s>", "a"])),
                                   ("tokenizer.ggml.scores", ARR, (F32, [0.0, 0.0, -1.0]))],
                                  [("w", GGML_F32, [4, 4])], alignment=64),
        "wrong_types": gguf([("general.architecture", U32, 5), ("general.file_type", STR, "F16"),
                             ("general.name", ARR, (U8, [1, 2]))], [("x", GGML_F16, [2, 2, 2, 2])]),
    }
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    # a truncated file: header promises more tensor data than is there
    (out / "truncated").write_bytes(seeds["llama_f16"][:-40])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "corpus" / "fuzz_gguf_inspect"))
