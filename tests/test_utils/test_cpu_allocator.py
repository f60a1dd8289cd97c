# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
"""``retain_freed_memory``: glibc keeps freed large blocks for reuse;
``release_freed_memory``: free heap memory goes back to the system."""
import platform
import subprocess
import sys

import pytest

from mmmaskdino.utils.cpu_allocator import (release_freed_memory,
                                            retain_freed_memory)

GLIBC = platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc'

# Allocate and free a 256 MiB block repeatedly; print the fewest page faults
# (minor) of one allocation after the first, which reuses a freed block when
# retained.
PROBE = '''
import resource, sys
import torch
if sys.argv[1] == 'retain':
    from mmmaskdino.utils.cpu_allocator import (release_freed_memory,
                                            retain_freed_memory)
    assert retain_freed_memory()
torch.ones(64 * 2**20).sum()
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20).sum()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
'''


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', PROBE, mode],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not GLIBC, reason='glibc only')
def test_retained_memory_is_reused_without_page_faults():
    default, retained = _faults('default'), _faults('retain')
    pages = 256 * 2**20 // 4096
    assert default > pages // 2  # the block is mapped afresh
    assert retained < pages // 20  # the freed block is reused


# 8192 blocks of 64 KiB on the heap (below the mmap threshold), every other
# one freed, so the free memory lies between live blocks and is not trimmed
# from the top; print the resident MiB before and after the release.
HEAP_PROBE = '''
import ctypes, ctypes.util
from mmmaskdino.utils.cpu_allocator import release_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library('c'))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) // 1024
blocks = [libc.malloc(2**16) for _ in range(8192)]
for block in blocks:
    ctypes.memset(block, 1, 2**16)
for block in blocks[::2]:
    libc.free(block)
before = rss()
assert release_freed_memory()
print(before, rss())
'''


@pytest.mark.skipif(not GLIBC, reason='glibc only')
def test_released_heap_memory_leaves_the_process():
    out = subprocess.run([sys.executable, '-c', HEAP_PROBE],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    before, after = map(int, out.split()[-2:])
    assert before - after > 200  # of the 256 MiB freed between live blocks


def test_returns_false_without_glibc(monkeypatch):
    monkeypatch.setattr(platform, 'libc_ver', lambda: ('', ''))
    assert retain_freed_memory() is False
    assert release_freed_memory() is False
