"""organsim.memory: freed arrays are reused, so arrays that grow a little each time (a mesh
that a cut enlarges increment by increment) stop faulting in fresh pages."""

import json
import platform
import subprocess
import sys

import pytest

_GROWING = """
import json, resource, sys
import numpy as np
if sys.argv[1] == "retain":
    import organsim.memory
    assert organsim.memory.retain_freed_memory()
faults, n = [], 1_000_000
for _ in range(12):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(n)           # 8 MB, then 1 % larger each time
    b = np.ones(n // 2)
    del a, b
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    n = int(n * 1.01)
print(json.dumps(faults))
"""


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", _GROWING, mode], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy is set on glibc only")
def test_growing_arrays_reuse_freed_memory():
    default, retained = _faults("default"), _faults("retain")
    # 12 MB of fresh pages is about 3000 faults; reused memory faults only where the heap grows
    assert max(retained[1:]) < 200, retained
    assert sum(retained[1:]) * 3 < sum(default[1:]), (default, retained)
