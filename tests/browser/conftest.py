"""Fixtures of the browser tests: headless Chromium (Debian's package) and reports built as the role builds them.

SFDC_CHROMIUM: the Chromium binary (default /usr/bin/chromium). SFDC_TEST_LOG_DIR: where screenshots and
browser-metrics.json go (scripts/test.sh passes its run's log folder; default .tmp/test-logs/latest).
"""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import cdp  # noqa: E402
import synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="session")
def browser():
    try:
        b = cdp.Browser()
    except cdp.CdpError as exc:
        pytest.fail("cannot start headless Chromium: %s" % exc, pytrace=False)
    yield b
    b.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    path = os.environ.get("SFDC_TEST_LOG_DIR") or os.path.join(ROOT, ".tmp", "test-logs", "latest")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        path = str(tmp_path_factory.mktemp("browser-logs"))
    return path


@pytest.fixture(scope="session")
def metrics(log_dir):
    """Figures the tests measure, written to browser-metrics.json at the end of the session."""
    data = {}
    yield data
    with open(os.path.join(log_dir, "browser-metrics.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def build_report(kind, rows):
    """report.html the way the role writes it: the fleet report document, then its HTML."""
    from ansible_collections.sfdc.eca.plugins.plugin_utils import _report as rep
    report = rep.build(rows, kind)
    report["generated"] = synthetic._iso(synthetic.GENERATED)
    return report, rep.render_html(report)


@pytest.fixture(scope="session")
def reports(tmp_path_factory):
    """{name: (path, report dict)} for rotation-10000, audit-2000 and rotation-12 (small, with a hostile row)."""
    out = {}
    base = tmp_path_factory.mktemp("reports")
    for name, kind, rows in (("rotation-10000", "rotation", synthetic.rotation_rows(10000)),
                             ("audit-2000", "audit", synthetic.audit_rows(2000)),
                             ("rotation-12", "rotation", synthetic.rotation_rows(12))):
        report, text = build_report(kind, rows)
        path = base / ("%s.html" % name)
        path.write_text(text, encoding="utf-8")
        out[name] = (str(path), report)
    return out
