"""What a speed figure was measured on: the processor, the ISA class Stunt's kernels take on it
(AVX-512 VNNI, AVX2 or neither) and the logical CPUs. Read from /proc/cpuinfo (Linux)."""
import os
import pathlib
import platform


def cpu_description():
    info = pathlib.Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    isa = "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {isa}, {os.cpu_count()} logical CPUs"
