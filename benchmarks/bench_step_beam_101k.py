"""step-beam-101k: the 76x16x16 corotational beam (101,250 tets), dt = 0.04 s.

Same problem and modes as step-beam-19k (SOFA CPU: 109 ms/step; target 80 ms).
"""

from __future__ import annotations

from benchmarks._femcore import load_average, warm_up_kernels
from benchmarks.bench_step_beam_19k import beam_rows

ID = "step-beam-101k"


def run(quick: bool = False) -> dict:
    warm_up_kernels()
    load = load_average()
    if quick:
        rows = beam_rows((16, 5, 5), 0.04, n_warm=3, n_meas=10, n_ref=13, sofa_ms=109.0, target_ms=80)
    else:
        rows = beam_rows((76, 16, 16), 0.04, n_warm=5, n_meas=30, n_ref=35, sofa_ms=109.0, target_ms=80)
    return {"rows": rows, "load_average_at_start": load,
            "notes": "median over 30 timed steps after 5 warm-up (200 for the 19k beam); wall and CPU time;"
                     " shared machine"}
