"""Smoke run of the benchmark (benchmarks/run.py) with 3 orgs, so that it cannot rot.

Not a timing test: it checks that every scenario runs, rotates every org, and that the
CSV, Markdown and PNG outputs are written with the expected rows.
"""

import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_benchmark_smoke(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ)
    env.pop("SFDC_ECA_IN_PROCESS", None)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--orgs", "3", "--forks", "3",
                           "--repeat", "2", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["scenario"] for r in rows) == ["a", "b", "c"]
    assert set(r["delivery"] for r in rows) == {"vault_file"}
    for r in rows:
        assert r["rc"] == "0" and r["rotated"] == "3" and r["delivered"] == "3", r
        assert float(r["wall_s"]) > 0 and float(r["api_calls_per_org"]) >= 5, r
    a = next(r for r in rows if r["scenario"] == "a")
    assert float(a["a_over_b"]) > 0 and float(a["a_over_c"]) > 0
    assert (out / "results.md").read_text().count("| a ") == 1
    # a and c ran twice each (taking turns), b once; the row keeps every run's wall time
    assert len(a["wall_runs_s"].split()) == 2 and len(next(r for r in rows if r["scenario"] == "b")["wall_runs_s"].split()) == 1
    assert proc.stdout.count("scenario a:") == 2 and proc.stdout.count("scenario c:") == 2
    assert (out / "results.png").stat().st_size > 1000
    assert not (out / "work").exists()  # inventories with simulator credentials are removed


def test_benchmark_smoke_every_delivery(tmp_path):
    """The other delivery kinds in one run: OpenBao and moto started by the benchmark, each kind's baseline and
    floor writing to the same target as the role, every target read back."""
    out = tmp_path / "results"
    env = dict(os.environ)
    env.pop("SFDC_ECA_IN_PROCESS", None)
    kinds = ["file", "hashi_vault", "aws_secretsmanager", "tasks_file"]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--orgs", "3", "--forks", "3",
                           "--repeat", "1", "--delivery", ",".join(kinds), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["delivery"], r["scenario"]) for r in rows) == sorted((k, s) for k in kinds for s in "abc")
    for r in rows:
        assert r["rc"] == "0" and r["rotated"] == "3", r
        assert r["delivered"] == ("" if r["delivery"] == "tasks_file" else "3"), r
        if r["delivery"] in ("hashi_vault", "aws_secretsmanager"):
            assert r["store_cpu_s"] != "", r
    tasks_file = next(r for r in rows if r["delivery"] == "tasks_file" and r["scenario"] == "a")
    # the tasks file's debug task ran once per org, inside the role's per-org tasks
    assert float(tasks_file["host_tasks_per_org"]) > float(next(
        r for r in rows if r["delivery"] == "file" and r["scenario"] == "a")["host_tasks_per_org"]) + 1
    # ... as one task for all orgs of a batch (their hosts on the forks together), not one task start per org
    with open(out / "role-tasks-tasks_file-n3.json") as f:
        user_task = next(t for t in json.load(f) if t["task"].endswith("Hand the new pair to an integration (benchmark)"))
    assert user_task["ok"] == 3 and user_task["runs"] == 2, user_task  # once per batch: the canary, the rest
    assert not (out / "work").exists()
