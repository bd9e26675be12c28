"""The role's filters on their own: plan decisions, canary gate, history, report rendering (no ansible run)."""

import datetime
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def f(collections_path):
    if collections_path not in sys.path:
        sys.path.insert(0, collections_path)
    from ansible_collections.sfdc.eca.plugins.filter import report, rotation
    return type("F", (), {"rot": rotation, "rep": report})


NOW = "2026-06-01T12:00:00Z"


def _creds(consumers, app_name="Billing_Sync", app_id="0xI5g00000000AAAAA"):
    return {"results": [{"item": {"app_name": app_name, "app_id": app_id}, "app_id": app_id, "consumers": consumers}]}


def _consumer(name="Billing", key="3MVGmainKey000001", staged=None):
    return {"id": "8885g00000000%s" % name[:2].upper(), "name": name, "key": key, "staged_credential": staged}


def test_plan_decisions(f, tmp_path):
    deliver = tmp_path / "d.yml"
    deliver.write_text("[]")
    entry = {"app_name": "Billing_Sync", "deliver": {"tasks_file": str(deliver)}}
    cases = {
        None: "rotate",
        "Active": "resume",
        "Expired": "rotate",
        "Rotated": "blocked",
    }
    for state, plan in cases.items():
        staged = {"id": "0sC1", "key": "3MVGstaged0000ZZZZ", "state": state, "expiration_date": "2026-06-20T00:00:00.000+0000"} if state else None
        items = f.rot.rotation_plan([entry], "org01", usage={"apps": [{"developer_name": "Billing_Sync"}]},
                                    app_results=_creds([_consumer(staged=staged)]), options={"min_age_days": 7}, now=NOW)
        assert [i["plan"] for i in items] == [plan], (state, items)
        assert items[0]["status"] == ("pending" if plan in ("rotate", "resume") else "done")
    # replace_rotated turns blocked into rotate
    staged = {"id": "0sC1", "key": "3MVGstaged0000ZZZZ", "state": "Rotated"}
    items = f.rot.rotation_plan([dict(entry, replace_rotated=True)], "org01", usage={"apps": [{"developer_name": "Billing_Sync"}]},
                                app_results=_creds([_consumer(staged=staged)]), options={}, now=NOW)
    assert items[0]["plan"] == "rotate" and items[0]["replace_rotated"] is True
    # history: rotated by this tool 2 days ago, main key unchanged -> skip; main key changed since -> not skip
    history = {"consumers": {"org01/Billing_Sync/Billing": {
        "last_rotated": "2026-05-30T12:00:00Z", "key_fp": f.rot._fingerprint("3MVGmainKey000001")}}}
    items = f.rot.rotation_plan([entry], "org01", usage={"apps": [{"developer_name": "Billing_Sync"}]},
                                app_results=_creds([_consumer(staged=staged)]), history=json.dumps(history),
                                options={"min_age_days": 7}, now=NOW)
    assert items[0]["plan"] == "skip", items
    items = f.rot.rotation_plan([entry], "org01", usage={"apps": [{"developer_name": "Billing_Sync"}]},
                                app_results=_creds([_consumer(key="3MVGsomeoneElse01", staged=None)]),
                                history=history, options={"min_age_days": 7}, now=NOW)
    assert items[0]["plan"] == "rotate"


def test_plan_bad_input_is_named(f, tmp_path):
    usage = {"apps": [{"developer_name": "Billing_Sync"}]}
    creds = _creds([_consumer("Primary"), _consumer("Secondary", key="3MVGsecond0000002")])
    items = f.rot.rotation_plan([{"app_name": "Billing_Sync", "deliver": {"vault_file": "/x/{org}.yml",
                                                                          "vault_password_file": "/nonexistent"}}],
                                "org01", usage=usage, app_results=creds, now=NOW)
    assert {i["status"] for i in items} == {"failed"} and "{consumer_name}" in items[0]["error"]
    items = f.rot.rotation_plan([{"app_name": "Billing_Sync", "consumer_name": "Nope", "deliver": {"tasks_file": "/x"}}],
                                "org01", usage=usage, app_results=creds, now=NOW)
    assert "no consumer named 'Nope'" in items[0]["error"] and "Primary, Secondary" in items[0]["error"]
    items = f.rot.rotation_plan([{"app_name": "Billing_Sync", "deliver": {"tasks_file": "/no/such/file.yml"}}],
                                "org01", usage=usage, app_results=creds, now=NOW)
    assert all("'/no/such/file.yml' does not exist" in i["error"] for i in items)
    items = f.rot.rotation_plan([{"app_name": "Other", "deliver": {"tasks_file": "/x"}}], "org01", usage=usage,
                                app_results={"results": []}, now=NOW)
    assert "no External Client App with developer name 'Other'" in items[0]["error"]


def test_canary_gate(f):
    hosts = ["a", "b", "c", "d", "e"]
    hv = {}
    assert f.rot.canary_gate(hosts, hv, ["a"])["canary"] is True
    hv = {"a": {"sfdc_eca_rotation": {"canary": True, "org_failed": True}}}
    gate = f.rot.canary_gate(hosts, hv, ["b", "c"])
    assert gate["run"] is False and "canary" in gate["reason"]
    hv = {"a": {"sfdc_eca_rotation": {"canary": True, "org_failed": False}},
          "b": {"sfdc_eca_rotation": {"org_failed": True}}, "c": {"sfdc_eca_rotation": {"org_failed": False}}}
    assert f.rot.canary_gate(hosts, hv, ["d", "e"])["run"] is True
    gate = f.rot.canary_gate(hosts, hv, ["d", "e"], max_fail_percentage=30)
    assert gate["run"] is False and "1 of 3" in gate["reason"]
    # a canary org that never recorded anything (it crashed) counts as failed
    assert f.rot.canary_gate(hosts, {}, ["b"])["run"] is False


def _rows(n):
    rows = []
    for i in range(n):
        outcome = "failed" if i % 10 == 0 else ("blocked" if i % 7 == 0 else "rotated")
        rows.append({"org": "org%03d" % i, "app_name": "Billing_Sync", "consumer_name": "Billing", "plan": "rotate",
                     "outcome": outcome, "phase": "verify" if outcome == "failed" else "promote",
                     "old_key": "...AAAA", "new_key": "...BBBB", "state": "Rotated", "duration": 1.5,
                     "error": "the new pair ...BBBB was refused: invalid_grant" if outcome == "failed" else None,
                     "secret": "MUST-NOT-SHOW", "_new_key_fp": "fp"})
    return rows


def test_report_for_500_orgs_fits_one_screen(f):
    report = f.rep.eca_report(_rows(500), "rotation")
    assert report["totals"]["orgs"] == 500 and report["totals"]["failed"] == 50
    assert report["totals"]["failed"] + report["totals"]["rotated"] + report["totals"]["blocked"] == 500
    lines = f.rep.eca_report_console(report, 20, ["/r/report.html"])
    assert len(lines) <= 25 and max(len(line) for line in lines) <= 260
    assert lines[0].startswith("sfdc.eca rotation: 500 orgs, 500 consumers")
    assert any(line.startswith("... and ") for line in lines)
    text = json.dumps(report) + f.rep.eca_report_markdown(report) + f.rep.eca_report_html(report) + "\n".join(lines)
    assert "MUST-NOT-SHOW" not in text and "_new_key_fp" not in text
    assert f.rep.eca_stats(report)["failed"] == 50


def test_html_escapes_everything(f):
    rows = [{"org": "<script>alert(1)</script>", "app_name": "A&B", "consumer_name": "\"q\"", "outcome": "failed",
             "error": "<img src=x onerror=alert(1)>"}]
    html = f.rep.eca_report_html(f.rep.eca_report(rows, "rotation"))
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "A&amp;B" in html


def test_history_update(f):
    rows = [{"org": "o", "app_name": "A", "consumer_name": "C", "outcome": "rotated", "new_key": "...ZZZZ",
             "_new_key_fp": "abc", "finished": "2026-06-01T12:00:00Z"},
            {"org": "o", "app_name": "A", "consumer_name": "D", "outcome": "planned"}]
    history = f.rot.history_update("", rows, NOW)
    assert list(history["consumers"]) == ["o/A/C"]
    entry = history["consumers"]["o/A/C"]
    assert entry["rotations"] == 1 and entry["key_fp"] == "abc" and entry["last_rotated"] == "2026-06-01T12:00:00Z"
    rows[0]["outcome"] = "skipped"
    again = f.rot.history_update(json.dumps(history), rows, "2026-06-02T12:00:00Z")
    assert again["consumers"]["o/A/C"]["rotations"] == 1 and again["consumers"]["o/A/C"]["last_outcome"] == "skipped"
    with pytest.raises(Exception, match="not valid JSON"):
        f.rot.history_update("{broken", rows, NOW)


def test_redaction_of_secrets_in_errors(f):
    items = [{"id": "A/C", "status": "pending", "plan": "rotate", "deliver": {"backend": "tasks_file"}}]
    secrets = {"A/C": {"key": "3MVGnewKey", "secret": "TheNewSecretValue123"}}
    out = f.rot.rotation_update(items, {"A/C": "boom TheNewSecretValue123 boom"}, "deliver_tasks", secrets)
    assert out[0]["status"] == "failed" and "TheNewSecretValue123" not in out[0]["error"] and "********" in out[0]["error"]


def test_audit_rows_findings(f):
    now = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.timezone.utc)
    soon = (now + datetime.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    later = (now + datetime.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    results = {"results": [{"item": {"developer_name": "A", "identifier": "0xI1"}, "app_id": "0xI1", "consumers": [
        _consumer("C1", staged={"key": "3MVGs1", "state": "Active", "expiration_date": soon}),
        _consumer("C2", staged={"key": "3MVGs2", "state": "Rotated", "expiration_date": later}),
        _consumer("C3", staged={"key": "3MVGs3", "state": "Expired"}),
    ]}]}
    rows = {r["consumer_name"]: r for r in f.rep.audit_rows(results, "o", options={"expiry_warning_days": 7}, now=now)}
    assert "staged_expiring" in rows["C1"]["findings"] and rows["C1"]["outcome"] == "attention"
    assert "previous_in_grace" in rows["C2"]["findings"] and rows["C2"]["expiry"] == later
    assert "staged_expired" in rows["C3"]["findings"]
    assert all("never_rotated_by_tool" in r["findings"] for r in rows.values())


def test_history_counts_one_rotation_once(f):
    """The org's own history file (written at promote) and the report's rows describe the same rotation."""
    row = {"org": "o", "app_name": "A", "consumer_name": "C", "outcome": "rotated", "new_key": "...ZZZZ",
           "_new_key_fp": "abc", "finished": "2026-06-01T12:00:00Z"}
    org_file = f.rot.history_update("", [row], NOW)
    merged = f.rot.history_update(["", json.dumps(org_file)], [row], NOW)
    assert merged["consumers"]["o/A/C"]["rotations"] == 1
    newer = dict(row, _new_key_fp="def", finished="2026-07-01T12:00:00Z")
    assert f.rot.history_update(merged, [newer], NOW)["consumers"]["o/A/C"]["rotations"] == 2


def test_plan_reads_yes_no_as_surveys_and_extra_vars_give_them(f, tmp_path):
    """AWX surveys and `-e x=false` pass strings: 'false' must not revoke or replace anything."""
    deliver = tmp_path / "d.yml"
    deliver.write_text("[]")
    entry = {"app_name": "Billing_Sync", "deliver": {"tasks_file": str(deliver)}}
    rotated = {"id": "0sC1", "key": "3MVGstaged0000ZZZZ", "state": "Rotated"}
    usage = {"apps": [{"developer_name": "Billing_Sync"}]}
    for text, expected in (("false", False), ("False", False), ("no", False), ("true", True), ("yes", True)):
        items = f.rot.rotation_plan([entry], "org01", usage=usage, app_results=_creds([_consumer(staged=rotated)]),
                                    options={"revoke_previous": text, "replace_rotated": text}, now=NOW)
        assert items[0]["revoke_previous"] is expected, (text, items[0])
        assert items[0]["replace_rotated"] is expected, (text, items[0])
        assert items[0]["plan"] == ("rotate" if expected else "blocked"), (text, items[0])
    with pytest.raises(Exception, match="revoke_previous must be true or false, got 'sometimes'"):
        f.rot.rotation_plan([entry], "org01", usage=usage, app_results=_creds([_consumer()]),
                            options={"revoke_previous": "sometimes"}, now=NOW)
