"""The workflow of awx/workflow_rotate.yml run the way AWX runs it, against one simulator of 2,000 orgs:
canary job -> (approval) -> sliced rotate, its slices in parallel -> merge of the reports.

How AWX runs a sliced job, from its source (ansible/awx):

* ``JobTemplate.create_unified_job`` with ``job_slice_count`` N > 1 makes a WorkflowJob (``is_sliced_job``) with
  N nodes; ``WorkflowJobNode.get_job_kwargs`` (awx/main/models/workflow.py) gives node k
  ``job_slice_number = ancestor_artifacts['job_slice']`` (1..N) and ``job_slice_count = workflow_job_nodes.count()``,
  and the workflow job's extra vars (in a workflow: the ancestors' set_stats artifacts and the workflow's extra vars
  and survey answers) become each slice job's extra vars.
* Each slice's inventory is ``Inventory.get_script_data(slice_number=k, slice_count=N)``
  (awx/main/models/inventory.py): ``hosts = self.hosts.filter(enabled=True).order_by('name')``, then
  ``if slice_count > 1 and slice_number > 0: offset = slice_number - 1; hosts = hosts[offset::slice_count]``:
  round robin over the hosts sorted by name, the host at index i in slice i % N + 1. ``AwxJob`` of
  test_awx_runner.py cuts the inventory script exactly so (``job_slice=(k, N)``).
* The playbook sees no slice number: ``UnifiedJob.awx_meta_vars`` (awx/main/models/unified_jobs.py) gives
  ``awx_job_id``/``tower_job_id`` (the slice's own job) and ``awx_workflow_job_id``/``tower_workflow_job_id`` (the
  workflow the job is a node of: for a slice, the sliced WorkflowJob). ``job_slice_number``/``job_slice_count`` are
  fields of the job in the API, not variables.

The emulation: ``AwxJob`` (private data dir, inventory script, extra vars, ansible-runner), one process per job, the
slices started together (``ansible_runner.run_async``). The state dir and the report dir are one shared volume.

Size: SFDC_SLICING_ORGS (default 2000) orgs, SFDC_SLICING_SLICES (default 4) slices.
"""
import json
import os
import re
import sys
import time
from pathlib import Path

import ansible_runner
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_awx_runner import AWX_PROJECT, ORG_GROUP_VARS, AwxJob, survey_extra_vars  # noqa: E402

from eca_simulator import Simulator  # noqa: E402

ORGS = int(os.environ.get("SFDC_SLICING_ORGS", "2000"))
SLICES = int(os.environ.get("SFDC_SLICING_SLICES", "4"))
FORKS = 20
WORKFLOW, SLICED_WORKFLOW = 9100, 9200  # ids of the workflow job and of the WorkflowJob AWX makes for the slices
CANARY_JOB, SLICE_JOB0, MERGE_JOB, SINGLE_JOB = 9101, 9200, 9300, 9400
# the keys that differ between two runs of the same fleet by their nature: times, durations, and the new keys
# (random), whose presence is compared instead
TIMES = ("started", "finished", "duration", "expiry", "grace_end", "staged_expiration", "last_rotated")


def _org(i):
    org = {"name": "org%04d" % i, "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync",
                                            "consumers": [{"name": "Billing"}]}]}
    staged = {3: {"state": "Rotated", "age_days": 5},    # previous pair in its grace: blocked
              6: {"state": "Expired", "age_days": 40},   # replaced
              8: {"state": "Active", "age_days": 2}}.get(i % 10)  # resumed
    if staged:
        org["apps"][0]["consumers"][0]["staged"] = staged
    return org


@pytest.fixture(scope="module")
def fleet():
    sim = Simulator({"orgs": [_org(i) for i in range(1, ORGS + 1)]}, tls=True)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


class WorkflowJob(AwxJob):
    """An AwxJob that is a node of a workflow: AWX adds the workflow's id to the job's variables, and runs it with
    the job template's forks (RunJob.build_args: --forks)."""

    def __init__(self, *args, workflow_job_id=None, **kwargs):
        self.workflow_job_id = workflow_job_id
        super().__init__(*args, **kwargs)

    def _awx_vars(self):
        out = super()._awx_vars()
        if self.workflow_job_id is not None:
            out.update(awx_workflow_job_id=self.workflow_job_id, tower_workflow_job_id=self.workflow_job_id,
                       awx_workflow_job_name="sfdc.eca canary, approve, rotate", awx_job_launch_type="workflow")
        return out

    def _write_cmdline(self, args):
        super()._write_cmdline(["--forks=%d" % FORKS] + list(args))

    def start(self):
        """Like run(), without waiting: -> (thread, runner)."""
        params = {"ident": self.job_id, "private_data_dir": str(self.pdd), "playbook": self.playbook,
                  "inventory": self.inventory_path, "envvars": self.env, "quiet": True,
                  "settings": {"job_timeout": 900, "suppress_ansible_output": True, "suppress_output_file": False}}
        thread, self.runner = ansible_runner.run_async(**params)
        return thread


def _inventory(sim, volume):
    """The AWX inventory (what its inventory script prints): one host per org, the rotation in the group's vars."""
    hostvars = {}
    for name in sorted(sim.orgs):
        o = sim.orgs[name]
        hostvars[name] = {"sfdc_eca_connection": {"instance_url": o.instance_url, "client_id": o.admin["client_id"],
                                                  "client_secret": o.admin["client_secret"], "ca_path": sim.ca_path,
                                                  "retry_backoff": 0.05, "retry_max_delay": 1}}
    group_vars = dict(ORG_GROUP_VARS, sfdc_eca_rotations=[{"app_name": "Billing_Sync", "deliver": {"file": {
        "path": str(volume / "delivered" / "{org}-{app_name}-{consumer_name}.json"), "format": "json"}}}])
    return {"all": {"children": ["salesforce_orgs"]}, "salesforce_orgs": {"hosts": sorted(hostvars), "vars": group_vars},
            "_meta": {"hostvars": hostvars}}


def _template_vars(volume, **more):
    """The job templates' extra vars (awx/workflow_rotate.yml) and the workflow's survey answers."""
    out = dict(survey_extra_vars({}), sfdc_eca_report_dir=str(volume / "reports"), sfdc_eca_state_dir=str(volume / "state"),
               sfdc_eca_verify_delay=0, sfdc_eca_verify_retries=1)
    out.update(more)
    return out


def _slices(tmp_path, sim, inventory, extra, ids):
    """The sliced rotate job: SLICES jobs, each on its part of the inventory, started together."""
    jobs = [WorkflowJob(tmp_path, job_id, "rotate.yml", AWX_PROJECT, inventory, extra_vars=extra,
                        job_slice=(k + 1, SLICES), workflow_job_id=SLICED_WORKFLOW)
            for k, job_id in enumerate(ids)]
    threads = [job.start() for job in jobs]
    for thread in threads:
        thread.join(900)
    return jobs


def _normalized(rows, volume):
    """Rows as two runs of the same fleet must agree on them: times only present or not, new keys (random) only
    present or not, the run's own folders and the times in the plan's reasons masked."""
    out = []
    for row in rows:
        row = {k: (v is not None if k in TIMES else v) for k, v in row.items()}
        row["new_key"] = bool(row.get("new_key"))
        for key in ("plan_reason", "delivered_to", "error"):
            if isinstance(row.get(key), str):
                row[key] = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:?\d\d)?", "TIME",
                                  row[key].replace(str(volume), "VOLUME"))
        out.append(row)
    return out


def _patches(requests):
    """{(org, consumer): number of PATCH}: a PATCH of a staged item is a promotion (the staged id left out)."""
    out = {}
    for entry in requests:
        if entry["method"] == "PATCH":
            consumer = (entry["org"], entry["path"].split("/staged/")[0])
            out[consumer] = out.get(consumer, 0) + 1
    return out


def _leaks(paths, sim):
    """Secrets of the simulator in the files: every token-like word of the files, looked up in the set."""
    secrets = {s for s in sim.secrets() if s and len(s) >= 8}
    found = set()
    for path in paths:
        found |= set(re.findall(r"[A-Za-z0-9._~+/=:-]{8,}", Path(path).read_text(errors="replace"))) & secrets
    return found


def test_sliced_workflow_equals_one_run_and_touches_each_org_once(fleet, tmp_path):
    sim = fleet
    sim.reset()
    volume = tmp_path / "volume"
    inventory = _inventory(sim, volume)
    extra = _template_vars(volume)
    started = time.monotonic()

    # 1. the canary job: the first org by name, alone
    canary = WorkflowJob(tmp_path, CANARY_JOB, "rotate_canary.yml", AWX_PROJECT, inventory, extra_vars=extra,
                         workflow_job_id=WORKFLOW)
    assert canary.run().status == "successful", canary.stdout[-4000:]
    artifacts = canary.stats()
    assert artifacts["sfdc_eca_run_id"] == str(WORKFLOW) and artifacts["sfdc_eca_canary_run"] == str(WORKFLOW), artifacts
    assert artifacts["sfdc_eca_canary_outcome"] == "passed"
    record = json.loads((volume / "state" / "canary" / ("run-%d.json" % WORKFLOW)).read_text())
    assert record["orgs"] == ["org0001"] and record["outcome"] == "passed"
    assert {e["org"] for e in sim.requests()} == {"org0001"}
    after_canary = len(sim.requests())
    canary_done = time.monotonic()

    # 2. (approval) 3. the sliced rotate job: the canary's artifacts are extra vars of every slice, under the workflow's
    # own extra vars and survey answers (WorkflowJobNode.get_job_kwargs)
    slice_ids = [SLICE_JOB0 + k + 1 for k in range(SLICES)]
    jobs = _slices(tmp_path, sim, inventory, dict(artifacts, **extra), slice_ids)
    for job in jobs:
        assert job.runner.status == "successful", (job.job_id, job.stdout[-4000:])
    slices_done = time.monotonic()
    # each slice ran its round-robin share, minus the canary's org
    for k, job in enumerate(jobs):
        manifest = json.loads((volume / "reports" / "slices" / str(WORKFLOW) / str(job.job_id) / "job.json").read_text())
        share = sorted(sim.orgs)[k::SLICES]
        assert manifest["orgs"] == share and manifest["role"] == "slice", job.job_id
        assert manifest["reported_orgs"] == [o for o in share if o != "org0001"], job.job_id
    sliced_requests = sim.requests()

    # 4. the merge: the workflow's next node, with the ancestors' artifacts
    merge = WorkflowJob(tmp_path, MERGE_JOB, "report_merge.yml", AWX_PROJECT, inventory,
                        extra_vars=dict(artifacts, **dict(extra, sfdc_eca_slice_count=SLICES)), workflow_job_id=WORKFLOW)
    assert merge.run().status == "successful", merge.stdout[-4000:]
    merged = json.loads((volume / "reports" / "report.json").read_text())
    info = merged["merged"]
    assert info["complete"] and info["canary"] == str(CANARY_JOB) and info["slices_found"] == SLICES, info
    assert sorted(j["job"] for j in info["jobs"] if j["role"] == "slice") == [str(i) for i in slice_ids]
    assert not info["replaced"] and not info["missing_orgs"]
    assert "no slice and no org missing" in merge.stdout
    merged_done = time.monotonic()

    # every org once: the canary's org only by the canary, every PATCH once, and only where the report says rotated
    assert not [e for e in sliced_requests[after_canary:] if e["org"] == "org0001"]
    patches = _patches(sliced_requests)
    assert set(patches.values()) == {1}, {k: v for k, v in patches.items() if v != 1}
    rotated = {r["org"] for r in merged["rows"] if r["outcome"] == "rotated"}
    assert {org for org, _path in patches} == rotated
    assert merged["totals"]["orgs"] == ORGS and merged["totals"]["failed"] == 0, merged["totals"]
    assert merged["totals"]["blocked"] == len([i for i in range(1, ORGS + 1) if i % 10 == 3])
    history = json.loads((volume / "state" / "history.json").read_text())["consumers"]
    assert {k.split("/")[0] for k, v in history.items() if v.get("last_outcome") == "rotated"} == rotated
    assert not _leaks([volume / "reports" / "report.json", volume / "reports" / "report.md", volume / "state" / "history.json",
                       canary.artifact_dir / "stdout", merge.artifact_dir / "stdout"]
                      + [job.artifact_dir / "stdout" for job in jobs], sim)

    # the same fleet in one run (no workflow: the report goes to the report dir itself)
    sim.reset()
    single_volume = tmp_path / "single"
    single_inventory = _inventory(sim, single_volume)
    one = WorkflowJob(tmp_path, SINGLE_JOB, "rotate.yml", AWX_PROJECT, single_inventory, extra_vars=_template_vars(single_volume))
    assert one.run().status == "successful", one.stdout[-4000:]
    single = json.loads((single_volume / "reports" / "report.json").read_text())
    single_done = time.monotonic()

    assert len(merged["rows"]) == len(single["rows"]) == ORGS
    assert _normalized(merged["rows"], volume) == _normalized(single["rows"], single_volume)
    assert merged["totals"] == single["totals"]
    assert _patches(sim.requests()) == patches
    print("\n%d orgs, %d slices: canary %.1f s, slices %.1f s, merge %.1f s; the same fleet in one job %.1f s"
          % (ORGS, SLICES, canary_done - started, slices_done - canary_done, merged_done - slices_done,
             single_done - merged_done))


def test_a_failed_canary_stops_every_slice(fleet, tmp_path):
    """The workflow takes the canary's failure path; a slice started anyway - by the same workflow run, or as a sliced
    job launched alone - runs no org: not one request reaches any org but the canary's."""
    sim = fleet
    sim.reset()
    volume = tmp_path / "volume"
    inventory = _inventory(sim, volume)
    extra = _template_vars(volume)
    sim.add_fault("org0001", "server_error", method="POST", endpoint="staged", times=None)
    canary = WorkflowJob(tmp_path, CANARY_JOB, "rotate_canary.yml", AWX_PROJECT, inventory, extra_vars=extra,
                         workflow_job_id=WORKFLOW)
    assert canary.run().status == "failed", canary.stdout[-4000:]
    artifacts = canary.stats()
    assert artifacts["sfdc_eca_canary_outcome"] == "failed", artifacts
    assert {e["org"] for e in sim.requests()} == {"org0001"}

    # half of the slices with the canary's run (its artifacts), half as a sliced job launched alone (no artifacts)
    jobs = [WorkflowJob(tmp_path, SLICE_JOB0 + k + 1, "rotate.yml", AWX_PROJECT, inventory,
                        extra_vars=dict(artifacts, **extra) if k % 2 == 0 else dict(extra),
                        job_slice=(k + 1, SLICES), workflow_job_id=SLICED_WORKFLOW) for k in range(SLICES)]
    threads = [job.start() for job in jobs]
    for thread in threads:
        thread.join(900)
    assert {e["org"] for e in sim.requests()} == {"org0001"}
    for k, job in enumerate(jobs):
        run = WORKFLOW if k % 2 == 0 else SLICED_WORKFLOW
        report = json.loads((volume / "reports" / "slices" / str(run) / str(job.job_id) / "report.json").read_text())
        assert report["rows"] and {r["outcome"] for r in report["rows"]} == {"not_run"}, job.job_id
        reason = report["rows"][-1]["error"]
        if k % 2 == 0:
            assert "the fleet canary of run %d failed (org0001)" % WORKFLOW in reason, reason
        else:
            assert "the latest fleet canary (run %d" % WORKFLOW in reason, reason
    assert sim.org("org0001").app("Billing_Sync").consumer("Billing").staged is None
    delivered = volume / "delivered"
    assert not delivered.exists() or not list(delivered.iterdir())


def test_without_awx_the_documented_commands(sim_factory, tmp_path, ansible, e2e):
    """docs/awx.md "Without AWX": the canary names its run, two parts follow it with -l, the merge joins them."""
    sim = sim_factory({"orgs": [_org(i) for i in (1, 2, 4, 5)]})
    state, reports = tmp_path / "state", tmp_path / "report"
    rotations = [{"app_name": "Billing_Sync", "deliver": {"file": {"path": str(tmp_path / "out" / "{org}.json"), "format": "json"}}}]
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {o: e2e.org_host(sim, o, rotations) for o in sorted(sim.orgs)})
    common = {"sfdc_eca_state_dir": str(state), "sfdc_eca_report_dir": str(reports)}

    canary = ansible.playbook("rotate_canary.yml", inventory, extra_vars=dict(common, sfdc_eca_canary_size=1))
    assert canary.returncode == 0, e2e.tail(canary)
    record = json.loads((state / "canary" / "latest.json").read_text())
    run = record["run"]
    assert record["outcome"] == "passed" and record["orgs"] == ["org0001"] and run.startswith("canary-"), record
    assert "fleet canary of run %s: PASSED" % run in canary.stdout
    assert {e["org"] for e in sim.requests()} == {"org0001"}

    for job, limit in (("a", "org0002:org0004"), ("b", "org0001:org0005")):
        part = ansible.playbook("rotate.yml", inventory, "-l", limit, extra_vars=dict(
            common, sfdc_eca_run_id=run, sfdc_eca_canary_run=run, sfdc_eca_job_id=job))
        assert part.returncode == 0, e2e.tail(part)
    # org0001 was in part b's limit: the canary had rotated it, so part b left it out
    assert json.loads((reports / "slices" / run / "b" / "job.json").read_text())["reported_orgs"] == ["org0005"]
    assert len([e for e in sim.requests() if e["method"] == "PATCH" and e["org"] == "org0001"]) == 1

    merge = ansible.playbook("report_merge.yml", inventory, extra_vars=dict(common, sfdc_eca_run_id=run, sfdc_eca_slice_count=2))
    assert merge.returncode == 0, e2e.tail(merge)
    merged = json.loads((reports / "report.json").read_text())
    assert [(r["org"], r["outcome"]) for r in merged["rows"]] == [(o, "rotated") for o in sorted(sim.orgs)]
    assert merged["merged"]["complete"] and merged["merged"]["canary"] is not None

    # a merge that misses a part says so and fails, after writing the report
    merge = ansible.playbook("report_merge.yml", inventory, extra_vars=dict(common, sfdc_eca_run_id=run, sfdc_eca_slice_count=3))
    assert merge.returncode != 0 and "MISSING: 1 slice job(s) wrote no report" in merge.stdout, e2e.tail(merge)
    # a run nobody wrote: a clear error
    merge = ansible.playbook("report_merge.yml", inventory, extra_vars=dict(common, sfdc_eca_run_id="nope"))
    assert merge.returncode != 0 and "no job of run nope wrote a report" in merge.stdout, e2e.tail(merge)
