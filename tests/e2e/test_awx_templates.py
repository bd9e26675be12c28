"""The AWX objects shipped in awx/: the survey passes AWX's survey validation and asks for variables
the playbooks read; the workflow example wires canary -> approval -> sliced rotate -> merge to job
templates that exist, with playbooks the example project has.

``validate_survey_spec`` mirrors awx/api/views ``JobTemplateSurveySpec._validate_spec_data``.
"""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SURVEY = ROOT / "awx" / "survey_rotate.json"
WORKFLOW = ROOT / "awx" / "workflow_rotate.yml"
PROJECT = ROOT / "awx" / "project"
ALLOWED_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str, "integer": int, "float": float}


def validate_survey_spec(spec):
    for field, expect in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            raise ValueError("Field '%s' is missing from survey spec." % field)
        if not isinstance(spec[field], expect):
            raise ValueError("Expected %s for field '%s'" % (expect.__name__, field))
    if not spec["spec"]:
        raise ValueError("'spec' doesn't contain any items.")
    seen = set()
    for idx, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            raise ValueError("Survey question %d is not a json object." % idx)
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                raise ValueError("'%s' missing from survey question %d" % (field, idx))
            if not isinstance(item[field], bool if field == "required" else str):
                raise ValueError("'%s' in survey question %d has the wrong type" % (field, idx))
        if item["variable"] in seen:
            raise ValueError("'variable' '%s' duplicated in survey question %d." % (item["variable"], idx))
        seen.add(item["variable"])
        qtype = item["type"]
        if qtype not in ALLOWED_TYPES:
            raise ValueError("'%s' in survey question %d is not an allowed question type." % (qtype, idx))
        if item.get("default", "") != "" and not isinstance(item["default"], ALLOWED_TYPES[qtype]):
            raise ValueError("Default value %r in survey question %d expected to be %s." % (item["default"], idx, qtype))
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                raise ValueError("The %s limit in survey question %d expected to be integer." % (key, idx))
        if qtype in ("multiselect", "multiplechoice"):
            if "choices" not in item:
                raise ValueError("Survey question %d of type %s must specify choices." % (idx, qtype))
            choices = item["choices"].splitlines() if isinstance(item["choices"], str) else item["choices"]
            defaults = item.get("default", "")
            defaults = defaults.splitlines() if isinstance(defaults, str) else defaults
            if qtype == "multiplechoice" and len(defaults) > 1:
                raise ValueError("Multiple Choice (Single Select) can only have one default value.")
            if any(d not in choices for d in defaults):
                raise ValueError("Default choice must be answered from the choices listed.")


@pytest.fixture(scope="module")
def survey():
    return json.loads(SURVEY.read_text())


@pytest.fixture(scope="module")
def workflow_tasks():
    plays = yaml.safe_load(WORKFLOW.read_text())
    assert len(plays) == 1
    return plays[0]["tasks"]


def test_survey_passes_awx_validation(survey):
    validate_survey_spec(survey)


def test_survey_validator_says_no(survey):
    bad = json.loads(json.dumps(survey))
    bad["spec"][2]["default"] = "maybe"
    with pytest.raises(ValueError, match="Default choice"):
        validate_survey_spec(bad)
    bad = json.loads(json.dumps(survey))
    bad["spec"][1]["variable"] = bad["spec"][0]["variable"]
    with pytest.raises(ValueError, match="duplicated"):
        validate_survey_spec(bad)
    bad = json.loads(json.dumps(survey))
    bad["spec"][4]["default"] = "1"
    with pytest.raises(ValueError, match="expected to be integer"):
        validate_survey_spec(bad)


def test_survey_variables_are_read_by_the_playbooks(survey):
    variables = {q["variable"] for q in survey["spec"]}
    assert variables == {"sfdc_eca_hosts", "sfdc_eca_apps", "sfdc_eca_revoke_previous", "sfdc_eca_replace_rotated",
                         "sfdc_eca_canary_size", "sfdc_eca_task_per_org"}
    for playbook in ("rotate.yml", "audit.yml"):
        plays = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())
        assert all("sfdc_eca_hosts" in play["hosts"] for play in plays), playbook
    assert "sfdc_eca_canary_size" in (ROOT / "playbooks" / "rotate.yml").read_text()
    # the survey's "false"/"true" strings pick the role's entry point through `| bool`
    assert "sfdc_eca_task_per_org | default(false) | bool" in (ROOT / "playbooks" / "rotate.yml").read_text()
    assert "sfdc_eca_apps" in (PROJECT / "rotate.yml").read_text()
    role_options = yaml.safe_load((ROOT / "roles/rotation/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    for name in ("sfdc_eca_revoke_previous", "sfdc_eca_replace_rotated", "sfdc_eca_task_per_org"):
        assert role_options[name]["type"] == "bool", name
    # multiple-choice answers are the strings of the choices; the role has to read them as booleans
    for q in survey["spec"]:
        if q["type"] == "multiplechoice":
            assert q["choices"].split("\n") == ["false", "true"] and q["default"] == "false", q["variable"]


def test_project_playbooks_import_existing_collection_playbooks():
    for path in PROJECT.glob("*.yml"):
        for play in yaml.safe_load(path.read_text()):
            target = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
            if target:
                namespace, name, playbook = target.split(".")
                assert (namespace, name) == ("sfdc", "eca"), target
                assert (ROOT / "playbooks" / (playbook + ".yml")).is_file(), target


def test_workflow_is_canary_then_approval_then_sliced_rotate_then_merge(workflow_tasks):
    templates = {t["awx.awx.job_template"]["name"]: t["awx.awx.job_template"] for t in workflow_tasks if "awx.awx.job_template" in t}
    for name, jt in templates.items():
        assert (PROJECT / jt["playbook"]).is_file(), (name, jt["playbook"])
    [wf] = [t["awx.awx.workflow_job_template"] for t in workflow_tasks if "awx.awx.workflow_job_template" in t]
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    order, current = [], "canary"
    while current:
        node = nodes[current]
        related = node.get("related", {})
        edges = [(kind, n["identifier"]) for kind in ("success_nodes", "always_nodes", "failure_nodes") for n in related.get(kind, [])]
        order.append((current, node["unified_job_template"]["type"], edges[0][0] if edges else None))
        assert len(edges) <= 1, current
        current = edges[0][1] if edges else None
    assert order == [("canary", "job_template", "success_nodes"), ("approve", "workflow_approval", "success_nodes"),
                     ("rotate", "job_template", "always_nodes"), ("merge", "job_template", None)]
    assert set(nodes) == {"canary", "approve", "rotate", "merge"}
    jt = {key: templates[nodes[key]["unified_job_template"]["name"]] for key in ("canary", "rotate", "merge")}
    assert jt["canary"]["playbook"] == "rotate_canary.yml" and jt["canary"]["job_slice_count"] == 1
    assert jt["rotate"]["playbook"] == "rotate.yml" and jt["rotate"]["survey_enabled"] is True
    assert jt["rotate"]["job_slice_count"] == "{{ sfdc_eca_awx_slices }}"
    assert jt["merge"]["playbook"] == "report_merge.yml" and jt["merge"]["job_slice_count"] == 1
    # the merge is told how many slices to expect; every template shares the reports' and the history's volume
    assert "sfdc_eca_slice_count" in jt["merge"]["extra_vars"] and "sfdc_eca_awx_slices" in jt["merge"]["extra_vars"]
    for name, template in templates.items():
        if name != "sfdc.eca check connection":
            assert "sfdc_eca_awx_extra_vars" in template["extra_vars"], name
    plays = yaml.safe_load(WORKFLOW.read_text())
    assert set(plays[0]["vars"]["sfdc_eca_awx_extra_vars"]) == {"sfdc_eca_report_dir", "sfdc_eca_state_dir"}
    # the workflow passes the canary's artifacts on; the canary and the slices take them as extra vars
    assert jt["canary"]["ask_variables_on_launch"] and jt["rotate"]["ask_variables_on_launch"]
    assert re.search(r"survey_rotate\.json", WORKFLOW.read_text())
    assert wf["survey_enabled"] is True and wf["survey_spec"] == jt["rotate"]["survey_spec"] == jt["canary"]["survey_spec"]
    # only a passed canary and an approval reach the rotation: no failure or always path leads to approve or rotate
    for node in nodes.values():
        for kind in ("failure_nodes", "always_nodes"):
            assert all(n["identifier"] not in ("approve", "rotate") for n in node.get("related", {}).get(kind, [])), node["identifier"]
