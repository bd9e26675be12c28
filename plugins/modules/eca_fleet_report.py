#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_fleet_report
short_description: Write the fleet report and the rotation history on the controller
version_added: 0.2.0
description:
  - Writes the report of a rotation or an audit run as C(report.json), C(report.md) and C(report.html)
    (C(audit.*) for an audit) in O(report_dir), mode 0644; rows hold key suffixes, never secrets.
  - After a rotation that was not a plan only, merges the rows and every org's history file
    (C(history.d/*.json), written by M(sfdc.eca.eca_rotation)) into C(history.json) in O(state_dir), mode 0600.
  - Used by the C(sfdc.eca.rotation) role's report; it always runs on the controller.
  - This module has no standalone implementation; it is an action plugin.
author:
  - sfdc.eca maintainers (@sfdc-eca)
attributes:
  check_mode:
    support: full
    description: Writes nothing in check mode, unless the task sets C(check_mode=false) (the role does, so that C(--check) writes its plan's report).
  diff_mode:
    support: none
    description: The report is new each run.
options:
  rows:
    description:
      - The report rows. Without it, each host of O(hosts) gives its rows from its registered O(results_var) (the result
        of M(sfdc.eca.eca_rotation) or M(sfdc.eca.eca_audit)); a host without one gets a failed row.
    type: list
    elements: dict
  hosts:
    description: The hosts whose rows are collected. Default the play's hosts (C(ansible_play_hosts_all)).
    type: list
    elements: str
  results_var:
    description: The host variable holding each org's registered result. Default C(sfdc_eca_rotation) or C(sfdc_eca_audit).
    type: str
  kind:
    description: Which report.
    type: str
    choices: [rotation, audit]
    default: rotation
  report_dir:
    description: Directory of the report files; created if missing.
    type: path
    required: true
  state_dir:
    description: Directory of the rotation history. Defaults to O(report_dir).
    type: path
  planned:
    description: The rows are a plan (C(--check)); the report says so and the history is not updated.
    type: bool
    default: false
  max_rows:
    description: Rows needing attention (failed, blocked, not run) in RV(summary).
    type: int
    default: 20
  run_id:
    description:
      - A fleet run split over several jobs (AWX job slicing; see the collection's docs/awx.md). The report goes to
        C(report_dir/slices/RUN/JOB/), then the job's manifest C(job.json) there; the history is merged as usual.
      - With O(merge), the run to merge.
    type: str
  job_id:
    description: This job's folder in the run (the AWX job id). Default a new id C(job-TIME-RANDOM).
    type: str
  canary:
    description:
      - This job is the fleet canary of O(run_id). After its report it writes C(state_dir/canary/run-RUN.json) and
        C(state_dir/canary/latest.json) - C(passed) when no row failed or was not run - which the later jobs of the run
        read (option O(sfdc.eca.eca_rotation#module:canary_run)). Not in a plan (O(planned)).
    type: bool
    default: false
  merge:
    description:
      - Build the fleet report of O(run_id) from the reports of its jobs in C(report_dir/slices/RUN/) - per org the rows
        of the job that finished last - and write it in O(report_dir) like a single run's report, with C(merged) (the
        jobs merged, the missing slices and orgs). Each org of O(hosts) that no job reported gets a failed row.
        The org files of the history are merged into C(history.json).
    type: bool
    default: false
  slices:
    description: With O(merge), how many slice jobs the run has (AWX C(job_slice_count)), to say when some are missing.
    type: int
'''

EXAMPLES = r'''
- name: Write the report of the orgs of this play
  sfdc.eca.eca_fleet_report:
    report_dir: /var/lib/sfdc_eca/report
  run_once: true
  register: fleet_report
'''

RETURN = r'''
report:
  description: The report document (also written as JSON).
  returned: success
  type: dict
  sample:
    kind: rotation
    check_mode: false
    totals: {rotated: 10, failed: 0, orgs: 6, consumers: 11}
    rows: []
failed_orgs:
  description: The orgs with a failed row, in the order of the rows, each with its failed C(app/consumer) names.
  returned: success
  type: list
  elements: dict
  sample: [{org: prod-us, consumers: [Billing_Sync/Billing]}]
stats:
  description: The totals as numbers, for C(ansible.builtin.set_stats).
  returned: success
  type: dict
  sample: {rotated: 10, failed: 0, orgs: 6, consumers: 11}
summary:
  description: A few lines for the console - totals, then the rows needing attention (at most O(max_rows)).
  returned: success
  type: list
  elements: str
report_html:
  description: The path of the HTML report.
  returned: success
  type: str
merged:
  description: With O(merge), what was merged.
  returned: when O(merge)
  type: dict
  sample:
    run: '412'
    canary: '413'
    jobs: [{job: '413', role: canary, orgs: 1}, {job: '415', role: slice, orgs: 500}]
    slices_found: 4
    slices_expected: 4
    missing_slices: 0
    missing_orgs: []
    incomplete_jobs: []
    replaced: []
    complete: true
complete:
  description: With O(merge), whether every expected slice and org was reported.
  returned: when O(merge)
  type: bool
canary:
  description: With O(canary), the record the later jobs read.
  returned: when O(canary) and not O(planned)
  type: dict
  sample: {run: '412', outcome: passed, failed_orgs: []}
job_report_dir:
  description: With O(run_id) (not O(merge)), the folder this job's report went to.
  returned: when O(run_id)
  type: str
files:
  description: The files written.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/sfdc_eca/report/report.json, /var/lib/sfdc_eca/report/history.json]
'''
