"""Benchmark helper: where the controller's memory is, by source file and line (tracemalloc).

Enabled by benchmarks/run.py --profile memory (ANSIBLE_CALLBACKS_ENABLED=bench_memory, PYTHONTRACEMALLOC set so
that tracing starts with the interpreter). At every task start, and at the end, it looks at the memory Python has
allocated; at the largest it takes a snapshot. Writes JSON to $BENCH_MEMORY: the traced peak and the snapshot's
largest files and lines, with the task that was starting.
"""

import json
import os
import tracemalloc

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_memory
type: aggregate
short_description: the controller's memory by source line for the sfdc.eca benchmark
description: Writes tracemalloc's largest allocations (at the largest traced size seen at a task start) to $BENCH_MEMORY.
"""

TOP = 25


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NEEDS_ENABLED = True
    CALLBACK_NAME = "bench_memory"

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.at = None
        self.snapshot = None

    def _look(self, where):
        if not tracemalloc.is_tracing():
            return
        current, _peak = tracemalloc.get_traced_memory()
        if current > self.largest:
            self.largest, self.at = current, where
            self.snapshot = tracemalloc.take_snapshot().filter_traces((
                tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._look("before task: %s" % task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._look("end of the run")
        path = os.environ.get("BENCH_MEMORY")
        if not path:
            return
        out = {"traced": tracemalloc.is_tracing(), "largest_mb": round(self.largest / 1e6, 1), "at": self.at}
        if tracemalloc.is_tracing():
            out["peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
        if self.snapshot is not None:
            for key in ("filename", "lineno"):
                stats_ = self.snapshot.statistics(key)
                out["by_" + key] = [{"where": "%s:%s" % (s.traceback[0].filename, s.traceback[0].lineno) if key == "lineno"
                                     else s.traceback[0].filename, "mb": round(s.size / 1e6, 2), "blocks": s.count}
                                    for s in stats_[:TOP]]
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
