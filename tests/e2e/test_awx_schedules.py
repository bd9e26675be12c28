"""awx/schedules.yml: each schedule passes AWX's rrule validation, launches a template or workflow that
awx/workflow_rotate.yml creates, answers its survey as AWX would accept, and fires when docs/awx.md says; the
registration playbook (playbooks/awx_register_schedules.yml) against the stand-in AWX API of test_awx_register.py.

``validate_rrule`` mirrors AWX's ``SchedulePreviewSerializer.validate_rrule`` (awx/api/serializers.py); AWX then
parses the rule with dateutil's ``rrulestr`` (``Schedule.rrulestr``), as ``occurrences`` does here.
"""
import datetime
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_awx_register import AWX_COLLECTIONS, FakeAwx, needs_awx  # noqa: E402
from test_awx_templates import validate_survey_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES = ROOT / "awx" / "schedules.yml"
WORKFLOW = ROOT / "awx" / "workflow_rotate.yml"
SURVEY = ROOT / "awx" / "survey_rotate.json"
PLAYBOOK = ROOT / "playbooks" / "awx_register_schedules.yml"
DEFAULTS = yaml.safe_load((ROOT / "roles" / "rotation" / "defaults" / "main.yml").read_text())


def validate_rrule(value):
    by_day_with_numeric_prefix = r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}"
    match_multiple_dtstart = re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", value)
    match_native_dtstart = re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", value)
    match_multiple_rrule = re.findall(r".*?(RULE\:[^\s]*)", value)
    errors = []
    if not match_multiple_dtstart:
        errors.append("Valid DTSTART required in rrule. Value should start with: DTSTART:YYYYMMDDTHHMMSSZ")
    if match_native_dtstart:
        errors.append("DTSTART cannot be a naive datetime.  Specify ;TZINFO= or YYYYMMDDTHHMMSSZZ.")
    if len(match_multiple_dtstart) > 1:
        errors.append("Multiple DTSTART is not supported.")
    if "rrule:" not in value.lower():
        errors.append("One or more rule required in rrule.")
    if "exdate:" in value.lower() or "rdate:" in value.lower():
        errors.append("EXDATE and RDATE not allowed in rrule.")
    for rule in match_multiple_rrule:
        if "interval" not in rule.lower():
            errors.append("INTERVAL required in rrule: %s" % rule)
        elif "secondly" in rule.lower():
            errors.append("SECONDLY is not supported: %s" % rule)
        if re.match(by_day_with_numeric_prefix, rule):
            errors.append("BYDAY with numeric prefix not supported: %s" % rule)
        if "COUNT" in rule and "UNTIL" in rule:
            errors.append("RRULE may not contain both COUNT and UNTIL: %s" % rule)
        count = re.match(r".*?(COUNT\=[0-9]+)", rule)
        if count and int(count.groups()[0].split("=")[1]) > 999:
            errors.append("COUNT > 999 is unsupported: %s" % rule)
    try:
        occurrences(value, 1)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        errors.append("rrule parsing failed validation: %s" % exc)
    if errors:
        raise ValueError(errors)


def occurrences(value, count):
    """The first ``count`` runs, as AWX's scheduler computes them (dateutil), in UTC."""
    rrule = pytest.importorskip("dateutil.rrule")
    rule = rrule.rrulestr(value.replace(" RRULE:", "\nRRULE:"), forceset=True)
    out = []
    for moment in rule:
        out.append(moment.astimezone(datetime.timezone.utc))
        if len(out) == count:
            break
    return out


def validate_survey_answers(spec, answers):
    """What AWX checks of a schedule's extra_data for a template with a survey (survey_variable_validation)."""
    errors = []
    questions = {q["variable"]: q for q in spec["spec"]}
    for name, value in answers.items():
        q = questions.get(name)
        if q is None:
            continue
        if q["type"] == "integer":
            if isinstance(value, bool) or not isinstance(value, int):  # AWX compares the type itself: no bool
                errors.append("%s: %r expected to be an integer" % (name, value))
            elif value < q.get("min", value) or value > q.get("max", value):
                errors.append("%s: %r out of range" % (name, value))
        elif q["type"] == "multiplechoice" and value not in q["choices"].split("\n"):
            errors.append("%s: %r expected to be one of %s" % (name, value, q["choices"]))
        elif q["type"] in ("text", "textarea"):
            if not isinstance(value, str) or not q.get("min", 0) <= len(value) <= q.get("max", len(value)):
                errors.append("%s: %r is not a text of the allowed length" % (name, value))
    for q in spec["spec"]:
        if q["required"] and q["variable"] not in answers and q.get("default") in (None, ""):
            errors.append("%s is required" % q["variable"])
    return errors


@pytest.fixture(scope="module")
def schedules():
    return {s["name"]: s for s in yaml.safe_load(SCHEDULES.read_text())["schedules"]}


@pytest.fixture(scope="module")
def launchables():
    """{name: module args} of the job templates and the workflow awx/workflow_rotate.yml creates."""
    tasks = yaml.safe_load(WORKFLOW.read_text())[0]["tasks"]
    out = {}
    for task in tasks:
        for module in ("awx.awx.job_template", "awx.awx.workflow_job_template"):
            if module in task:
                out[task[module]["name"]] = dict(task[module], _module=module)
    return out


def test_the_schedules_pass_awx_rrule_validation(schedules):
    assert set(schedules) == {"sfdc.eca weekly audit", "sfdc.eca monthly rotation"}
    for schedule in schedules.values():
        validate_rrule(schedule["rrule"])
        assert schedule["enabled"] is True and schedule["description"]


@pytest.mark.parametrize("bad, message", [
    ("RRULE:FREQ=WEEKLY;INTERVAL=1", "Valid DTSTART required"),
    ("DTSTART:20250106T050000 RRULE:FREQ=WEEKLY;INTERVAL=1", "naive datetime"),
    ("DTSTART:20250106T050000Z RRULE:FREQ=WEEKLY;BYDAY=MO", "INTERVAL required"),
    ("DTSTART:20250106T050000Z RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=1MO", "numeric prefix"),
    ("DTSTART:20250106T050000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=1000", "COUNT > 999"),
    ("DTSTART:20250106T050000Z", "One or more rule"),
])
def test_the_rrule_validator_says_no(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_rrule(bad)


def test_each_schedule_launches_a_shipped_template_with_answers_awx_accepts(schedules, launchables):
    survey = json.loads(SURVEY.read_text())
    validate_survey_spec(survey)
    for schedule in schedules.values():
        target = launchables.get(schedule["unified_job_template"])
        assert target is not None, "%s launches %r, which awx/workflow_rotate.yml does not create" % (
            schedule["name"], schedule["unified_job_template"])
        if target.get("survey_enabled"):
            assert target["survey_spec"] == "{{ sfdc_eca_awx_survey }}"
            assert not validate_survey_answers(survey, schedule["extra_data"]), schedule["name"]
            assert set(schedule["extra_data"]) <= {q["variable"] for q in survey["spec"]}
        else:
            # a template without a survey takes extra_data only when it prompts for variables
            assert not schedule["extra_data"] or target.get("ask_variables_on_launch"), schedule["name"]
    rotation = schedules["sfdc.eca monthly rotation"]
    assert launchables[rotation["unified_job_template"]]["_module"] == "awx.awx.workflow_job_template"
    # the schedule keeps the previous pair for its grace, as the survey's default does
    assert rotation["extra_data"]["sfdc_eca_revoke_previous"] == "false"
    assert rotation["extra_data"]["sfdc_eca_replace_rotated"] == "false"


def test_the_survey_validator_says_no():
    survey = json.loads(SURVEY.read_text())
    assert validate_survey_answers(survey, {"sfdc_eca_canary_size": "1"})
    assert validate_survey_answers(survey, {"sfdc_eca_revoke_previous": True})
    assert validate_survey_answers(survey, {"sfdc_eca_hosts": ""})


def test_the_weekly_audit_runs_every_monday(schedules):
    runs = occurrences(schedules["sfdc.eca weekly audit"]["rrule"], 10)
    assert all(run.weekday() == 0 and run.hour == 5 for run in runs)
    assert {b - a for a, b in zip(runs, runs[1:])} == {datetime.timedelta(days=7)}


def test_the_monthly_rotation_and_the_history_window(schedules):
    """Monthly: 28 to 31 days apart, never inside sfdc_eca_min_age_days (7), so a due pair is never skipped; a rerun
    of the same month (a failed or relaunched job) is inside it, so a pair already rotated is skipped. After the
    28-day (29 in a leap year) February gap the previous pair is still in its 30-day grace: docs/awx.md says so."""
    runs = occurrences(schedules["sfdc.eca monthly rotation"]["rrule"], 25)
    assert all(run.day == 1 and run.hour == 6 for run in runs)
    gaps = {(b - a).days for a, b in zip(runs, runs[1:])}
    assert gaps <= {28, 29, 30, 31} and 28 in gaps
    assert min(gaps) > DEFAULTS["sfdc_eca_min_age_days"]
    grace = 30
    short = sorted({run.strftime("%B") for a, run in zip(runs, runs[1:]) if (run - a).days < grace})
    assert short == ["March"]
    docs = (ROOT / "docs" / "awx.md").read_text()
    assert "sfdc_eca_min_age_days" in docs and "February" in docs and "awx/schedules.yml" in docs


# -- the registration playbook against a stand-in AWX API ----------------------------------------


class FakeAwxSchedules(FakeAwx):
    RESOURCES = FakeAwx.RESOURCES + ("schedules", "unified_job_templates")

    def __init__(self, templates):
        super().__init__()
        for i, name in enumerate(templates, start=10):
            self.store["unified_job_templates"][i] = {"id": i, "name": name, "type": "job_template", "related": {},
                                                      "summary_fields": {}}


def _playbook(*args, env_extra=None):
    import os
    import subprocess
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(
        p for p in (AWX_COLLECTIONS, os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if p))
    for name in list(env):
        if name.startswith(("CONTROLLER_", "TOWER_", "AAP_")):
            del env[name]
    env.update(env_extra or {})
    exe = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run([str(exe), str(PLAYBOOK), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


@needs_awx
def test_registration_syntax_check():
    proc = _playbook("--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_awx
def test_registers_the_schedules_idempotently(schedules):
    with FakeAwxSchedules({s["unified_job_template"] for s in schedules.values()}) as awx:
        env = {"CONTROLLER_HOST": awx.url, "CONTROLLER_OAUTH_TOKEN": "not-a-real-token", "CONTROLLER_VERIFY_SSL": "false"}
        first = _playbook(env_extra=env)
        assert first.returncode == 0, first.stdout + first.stderr
        sent = {body["name"]: body for method, resource, body in awx.writes if (method, resource) == ("POST", "schedules")}
        assert set(sent) == set(schedules)
        for name, schedule in schedules.items():
            assert sent[name]["rrule"] == schedule["rrule"] and sent[name]["extra_data"] == schedule["extra_data"]
        second = _playbook(env_extra=env)
        assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout + second.stderr


@needs_awx
def test_a_bad_schedules_file_fails_clearly(tmp_path):
    bad = tmp_path / "schedules.yml"
    bad.write_text("schedules:\n  - name: x\n")
    proc = _playbook("-e", "sfdc_eca_schedules_file=%s" % bad,
                     env_extra={"CONTROLLER_HOST": "http://127.0.0.1:9", "CONTROLLER_OAUTH_TOKEN": "x"})
    assert proc.returncode != 0 and "must hold" in proc.stdout
