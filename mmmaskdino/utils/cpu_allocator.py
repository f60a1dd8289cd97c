# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""Keep freed memory in the process for CPU runs (glibc ``mallopt``).

glibc serves every allocation above 32 MiB with a fresh ``mmap`` and returns
it to the system when freed, so each large tensor of a step (the pixel
decoder's ``(tokens, 2048)`` FFN activations, full-resolution masks) is
page-faulted in again, 4 KiB at a time. Raising the mmap and trim thresholds
lets freed blocks be reused by the next step instead. Measured on the 2-core
benchmark machine (``docs/benchmarks.md``): R50 instance inference at
800 x 1333, 9.7 -> 7.5 s per image; but panoptic inference was not faster
(heap fragmentation grew its peak by 1.2 GiB), and the process keeps its peak
heap between steps, so two 1024 x 1024 training processes no longer fit in
23 GiB. It is therefore opt-in (``--retain-malloc`` of the tools).

This is what ``MALLOC_MMAP_THRESHOLD_=2147483647
MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=1073741824`` set at start
do; alternative allocators (tcmalloc, jemalloc via ``LD_PRELOAD``) have the
same effect.
"""
import argparse
import ctypes
import ctypes.util
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
LIMIT = 2**31 - 1  # mallopt takes an int
TOP_PAD = 1 << 30


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Returns:
        bool: True if applied (Linux with glibc), False elsewhere.
    """
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    settings = ((M_MMAP_THRESHOLD, LIMIT), (M_TRIM_THRESHOLD, LIMIT),
                (M_TOP_PAD, TOP_PAD))
    return all(
        libc.mallopt(param, ctypes.c_int(value)) == 1
        for param, value in settings)


def release_freed_memory() -> bool:
    """Return the free parts of the heap to the system (glibc
    ``malloc_trim(0)``).

    Temporaries below the mmap threshold (e.g. the chunked deformable
    attention and FFN of training) come from the heap, and freed heap memory
    between live blocks stays resident. Benchmarks that keep several
    processes alive call this between steps so that an idle process holds
    only its live tensors.

    Returns:
        bool: True if called (Linux with glibc), False elsewhere.
    """
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    libc.malloc_trim(ctypes.c_size_t(0))
    return True


def add_retain_malloc_arg(parser: argparse.ArgumentParser) -> None:
    """The ``--retain-malloc`` option of the tools."""
    parser.add_argument(
        '--retain-malloc',
        action='store_true',
        help='on CPU, keep freed memory for reuse instead of returning it '
        'to the system (glibc mallopt, see mmmaskdino.utils.cpu_allocator): '
        'faster instance inference, higher resident memory')
