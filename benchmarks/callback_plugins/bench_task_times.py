"""Benchmark helper: wall and CPU time of every task (first host start to last host end) and host results.

CPU is the controller's own plus its workers' (RUSAGE_SELF + RUSAGE_CHILDREN + the live workers' from /proc)
between one task start and the next: robust against other load on the machine, unlike wall time.

Enabled by benchmarks/run.py for the role scenario (ANSIBLE_CALLBACKS_ENABLED=bench_task_times);
writes JSON to $BENCH_TASK_TIMES at the end of the run.
"""

import json
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_task_times
type: aggregate
short_description: per-task wall time for the sfdc.eca benchmark
description: Writes the wall time and per-host result counts of every task to $BENCH_TASK_TIMES.
"""


def _child_pids():
    """The controller's live children: from /proc/self/task/*/children (each thread's), else a scan of /proc."""
    pids = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % task) as f:
                pids += f.read().split()
        return pids
    except OSError:
        pass
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        pids.append(entry)
            except (OSError, ValueError, IndexError):
                continue
    return pids


def _live_children_cpu():
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in _child_pids():
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command name: state ppid ... utime (14th field) stime (15th)
        total += (int(fields[11]) + int(fields[12])) / float(ticks)
    return total


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = {}
        self.order = []
        self.current = None

    def _task(self, task):
        key = "%s | %s" % (task.get_path() or "", task.get_name())
        if key not in self.tasks:
            self.tasks[key] = {"task": task.get_name(), "path": task.get_path(), "wall_s": 0.0, "cpu_s": 0.0, "ok": 0,
                               "changed": 0, "skipped": 0, "failed": 0, "runs": 0,
                               "last_start_epoch": None}
            self.order.append(key)
        return key

    @staticmethod
    def _cpu():
        """CPU so far of the controller and its workers: reaped ones (RUSAGE_CHILDREN) and live ones (/proc), so
        that a worker's CPU counts for its task even when it is reaped later, during another task."""
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total + _live_children_cpu()

    def _close(self):
        if self.current is not None:
            key, start, cpu = self.current
            self.tasks[key]["wall_s"] += time.perf_counter() - start
            self.tasks[key]["cpu_s"] += self._cpu() - cpu
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        key = self._task(task)
        self.tasks[key]["runs"] += 1
        self.tasks[key]["last_start_epoch"] = time.time()
        self.current = (key, time.perf_counter(), self._cpu())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _count(self, result, field):
        self.tasks[self._task(result._task)][field] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("BENCH_TASK_TIMES")
        if path:
            with open(path, "w") as f:
                json.dump([self.tasks[k] for k in self.order], f, indent=1)
