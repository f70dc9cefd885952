import subprocess
import sys

import pytest

from itemrec.experiment.memory import keep_freed_memory

KEPT = """
import os, sys
import numpy as np
from itemrec.experiment.memory import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep")
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
block = np.ones(10_000_000, dtype=np.float32)  # a 40 MB temporary: a LightGCN layer's size
del block
print(resident() - before)
"""


def kept_after_free(mode: str) -> int:
    """Bytes still resident in a fresh process after a 40 MB temporary was made and freed."""
    out = subprocess.run([sys.executable, "-c", KEPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_kept_memory_holds_freed_large_temporaries_for_reuse():
    assert kept_after_free("keep") >= 30_000_000  # from the heap, kept there for the next one
    assert kept_after_free("usual") < 10_000_000  # mapped for it, unmapped when freed


def test_keep_freed_memory_reports_whether_it_applied():
    applied = keep_freed_memory(False)  # the usual settings for this test process
    assert applied is sys.platform.startswith("linux")  # glibc's mallopt there, a no-op elsewhere
