"""Check, without a GPU, that mmcv's compiled extension really carries its CUDA ops.

Run it with the Python of the environment to check (after
``bash scripts/setup.sh --cuda``):

    .venv/bin/python scripts/check_cuda_build.py [--arch 8.0 9.0]

One line per check, then ``N passed, N failed``; exit status 0 only when all
pass. A CPU-only build of mmcv fails it. The checks:

1. torch is a CUDA build (``torch.version.cuda``);
2. ``mmcv.ops`` and its extension ``mmcv._ext`` import;
3. the extension's shared object links the CUDA runtime (``libcudart``);
4. its ``.nv_fatbin`` section holds device code (SASS) for every ``--arch``
   (default: the ``TORCH_CUDA_ARCH_LIST`` of the build, else 8.0 and 9.0);
5. mmcv's device registry has a CUDA implementation of the ops the pipeline
   uses (nms, RoIAlign, RoIPool, bbox overlaps, sigmoid focal loss): each op is
   called with tensors that claim to live on ``cuda:0`` but hold no memory. A
   build without CUDA ops stops at mmcv's dispatcher ("implementation for
   device cuda:0 not found"); a CUDA build gets past it into the CUDA launcher,
   which then fails because this script hides every GPU
   (``CUDA_VISIBLE_DEVICES=""``), so no kernel is ever launched.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import sys
from pathlib import Path

# Set before torch is imported: the probe of check 5 must never reach a real device.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

FATBIN_MAGIC = 0xBA55ED50
FATBIN_KIND = {1: "ptx", 2: "sass"}
DT_NEEDED = 1
NOT_REGISTERED = "implementation for device"
# What the CUDA launcher says when it gets past the dispatcher on a machine
# (or with CUDA_VISIBLE_DEVICES) without a usable GPU, or the probe tensor's own error.
REACHED_CUDA = re.compile(
    r"probe tensor reached|CUDA error|CUDA driver|no CUDA-capable|NVIDIA driver|cudaError",
    re.IGNORECASE,
)


def elf_sections(data: bytes) -> dict[str, tuple[int, int, int]]:
    """``name -> (offset, size, link)`` of a little-endian 64-bit ELF file's sections."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for i in range(shnum):
        name, _type, _flags, _addr, offset, size, link = struct.unpack_from(
            "<IIQQQQI", data, shoff + i * shentsize
        )
        headers.append((name, offset, size, link))
    names_at = headers[shstrndx][1]
    sections = {}
    for name, offset, size, link in headers:
        end = data.index(b"\0", names_at + name)
        sections[data[names_at + name : end].decode()] = (offset, size, link)
    return sections


def needed_libraries(data: bytes, sections: dict[str, tuple[int, int, int]]) -> list[str]:
    """The ``DT_NEEDED`` entries of the ``.dynamic`` section."""
    offset, size, _ = sections[".dynamic"]
    strings = sections[".dynstr"][0]
    names = []
    for at in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == DT_NEEDED:
            names.append(data[strings + value : data.index(b"\0", strings + value)].decode())
    return names


def fatbin_entries(section: bytes) -> list[tuple[str, int]]:
    """``(kind, sm)`` of every device-code entry in an ``.nv_fatbin`` section (one or more fat binaries)."""
    entries, at = [], 0
    while at + 16 <= len(section):
        magic, _version, header_size, fat_size = struct.unpack_from("<IHHQ", section, at)
        if magic != FATBIN_MAGIC:
            at += 8  # fat binaries are 8-byte aligned; skip padding
            continue
        entry, end = at + header_size, at + header_size + fat_size
        while entry < end:
            kind, _unknown, entry_header, payload = struct.unpack_from("<HHIQ", section, entry)
            (sm,) = struct.unpack_from("<I", section, entry + 28)
            entries.append((FATBIN_KIND.get(kind, f"kind{kind}"), sm))
            entry += entry_header + payload
        at = end
    return entries


def wanted_archs(given: list[str] | None) -> list[int]:
    """``["8.0", "9.0+PTX"]`` or ``TORCH_CUDA_ARCH_LIST`` -> ``[80, 90]``."""
    names = given or os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0").replace(";", " ").split()
    archs = []
    for name in names:
        major, _, minor = name.removesuffix("+PTX").partition(".")
        archs.append(int(major) * 10 + int(minor or 0))
    return archs


class Probe:
    """Tensors that report ``cuda:0`` and hold no memory; any aten op on them raises."""

    @staticmethod
    def make(torch, *size, dtype=None):
        class ProbeTensor(torch.Tensor):
            @classmethod
            def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
                raise RuntimeError(f"probe tensor reached {func} on the CUDA path")

        return torch.Tensor._make_wrapper_subclass(
            ProbeTensor, size, dtype=dtype or torch.float32, device="cuda:0"
        )


def registry_probes(torch, ext) -> dict[str, object]:
    """One call per op, all tensors on the (fake) CUDA device; arguments as mmcv.ops passes them."""
    t = lambda *size, dtype=None: Probe.make(torch, *size, dtype=dtype)  # noqa: E731
    return {
        "nms": lambda: ext.nms(t(8, 4), t(8), iou_threshold=0.5, offset=0),
        "roi_align_forward": lambda: ext.roi_align_forward(
            t(1, 4, 16, 16),
            t(2, 5),
            t(2, 4, 7, 7),
            t(2, 4, 7, 7),
            t(2, 4, 7, 7),
            aligned_height=7,
            aligned_width=7,
            spatial_scale=1.0,
            sampling_ratio=0,
            pool_mode=1,
            aligned=True,
        ),
        "roi_pool_forward": lambda: ext.roi_pool_forward(
            t(1, 4, 16, 16),
            t(2, 5),
            t(2, 4, 7, 7),
            t(2, 4, 7, 7, dtype=torch.int32),
            pooled_height=7,
            pooled_width=7,
            spatial_scale=1.0,
        ),
        "bbox_overlaps": lambda: ext.bbox_overlaps(
            t(3, 4), t(5, 4), t(3, 5), mode=0, aligned=False, offset=0
        ),
        "sigmoid_focal_loss_forward": lambda: ext.sigmoid_focal_loss_forward(
            t(4, 3), t(4, dtype=torch.int64), t(3), t(4, 3), gamma=2.0, alpha=0.25
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", nargs="+", help="compute capabilities that must have SASS, e.g. 8.0 9.0"
    )
    args = parser.parse_args()
    results: list[tuple[bool, str]] = []

    def check(ok: bool, line: str) -> bool:
        results.append((ok, line))
        print(f"{'PASS' if ok else 'FAIL'}  {line}", flush=True)
        return ok

    import torch

    check(bool(torch.version.cuda), f"torch {torch.__version__}: CUDA {torch.version.cuda}")
    try:
        import mmcv
        import mmcv.ops  # noqa: F401
        from mmcv import _ext as ext
    except Exception as err:  # noqa: BLE001 - reported, not raised
        check(False, f"import mmcv.ops: {type(err).__name__}: {err}")
        return finish(results)
    so_path = Path(ext.__file__)
    check(
        True, f"mmcv {mmcv.__version__}: {so_path.name} ({so_path.stat().st_size / 2**20:.1f} MiB)"
    )

    data = so_path.read_bytes()
    sections = elf_sections(data)
    needed = needed_libraries(data, sections)
    cudart = [name for name in needed if name.startswith("libcudart")]
    check(
        bool(cudart), f"links the CUDA runtime: {', '.join(cudart) or 'no libcudart in DT_NEEDED'}"
    )

    entries = []
    if ".nv_fatbin" in sections:
        offset, size, _ = sections[".nv_fatbin"]
        entries = fatbin_entries(data[offset : offset + size])
    found = sorted({(kind, sm) for kind, sm in entries})
    listing = ", ".join(
        f"{kind} sm_{sm} x{sum(1 for e in entries if e == (kind, sm))}" for kind, sm in found
    )
    check(bool(entries), f"device code in .nv_fatbin: {listing or 'none (no .nv_fatbin section)'}")
    sass = {sm for kind, sm in entries if kind == "sass"}
    for arch in wanted_archs(args.arch):
        check(arch in sass, f"SASS for sm_{arch}")

    for name, call in registry_probes(torch, ext).items():
        try:
            call()
            outcome, ok = "ran", True
        except Exception as err:  # noqa: BLE001 - the message is the result
            message = " ".join(str(err).split())
            ok = NOT_REGISTERED not in message and bool(REACHED_CUDA.search(message))
            outcome = message[:160]
        check(ok, f"CUDA implementation of {name} registered ({outcome})")
    return finish(results)


def finish(results: list[tuple[bool, str]]) -> int:
    passed = sum(ok for ok, _ in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
