"""The ansible-core and Python ranges the collection states are the ones CI proves.

scripts/lib/matrix.txt lists the releases the `matrix` stage of scripts/test.sh runs (each on its
Python). meta/runtime.yml's requires_ansible, the execution environments' ansible-core pin, the
roles' min_ansible_version and README's requirements line must admit those releases and no other.
"""

import os
import re

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as handle:
        return handle.read()


def matrix():
    """[(Version of ansible-core, 'X.Y' Python)] from scripts/lib/matrix.txt."""
    rows = []
    for line in read('scripts/lib/matrix.txt').splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            core, python = line.split()[:2]
            rows.append((Version(core), python))
    return rows


def minor(version):
    return '%d.%d' % (version.major, version.minor)


MATRIX = matrix()
MINORS = sorted({minor(row[0]) for row in MATRIX}, key=Version)
PYTHONS = sorted({row[1] for row in MATRIX}, key=Version)


def admitted_minors(spec):
    """Every ansible-core minor release (2.0 .. 3.9) of which the specifier admits some version."""
    out = set()
    for major in (2, 3):
        for num in range(100 if major == 2 else 10):
            if any(spec.contains('%d.%d.%d' % (major, num, patch)) for patch in (0, 1, 99)):
                out.add('%d.%d' % (major, num))
    return out


def check_specifier(text, where):
    spec = SpecifierSet(text)
    for core in (row[0] for row in MATRIX):
        assert spec.contains(core), '%s (%s) excludes ansible-core %s, which CI runs' % (where, text, core)
    extra = sorted(admitted_minors(spec) - set(MINORS), key=Version)
    shown = ', '.join(extra[:3]) + (', ...' if len(extra) > 3 else '')
    assert not extra, ('%s (%s) claims ansible-core %s, which scripts/lib/matrix.txt does not run; CI proves %s'
                       % (where, text, shown, ', '.join(MINORS)))


def test_the_matrix_lists_one_release_per_minor_on_a_python_each():
    assert len(MINORS) == len(MATRIX) >= 2, 'one release per ansible-core minor, at least two'
    for core, python in MATRIX:
        assert re.match(r'^3\.\d+$', python), 'Python of %s: %r (want X.Y)' % (core, python)
    # no gap: each minor between the oldest and the newest
    first, last = Version(MINORS[0]), Version(MINORS[-1])
    assert MINORS == ['%d.%d' % (first.major, n) for n in range(first.minor, last.minor + 1)]


def test_requires_ansible_is_the_range_ci_proves():
    runtime = yaml.safe_load(read('meta/runtime.yml'))
    check_specifier(runtime['requires_ansible'], 'meta/runtime.yml requires_ansible')


@pytest.mark.parametrize('path', ['execution-environment.yml', 'awx/execution-environment-galaxy.yml'])
def test_execution_environments_pin_the_range_ci_proves(path):
    ee = yaml.safe_load(read(path))
    pin = ee['dependencies']['ansible_core']['package_pip']
    match = re.match(r'^ansible-core\s*(.+)$', pin)
    assert match, '%s: ansible_core.package_pip %r is not "ansible-core<specifier>"' % (path, pin)
    check_specifier(match.group(1), path + ' ansible_core')


@pytest.mark.parametrize('path', ['roles/rotation/meta/main.yml', 'tests/integration/targets/setup_sim/meta/main.yml'])
def test_roles_need_the_oldest_release_ci_proves(path):
    meta = yaml.safe_load(read(path))
    assert str(meta['galaxy_info']['min_ansible_version']) == MINORS[0]


def test_readme_states_the_ansible_core_and_controller_python_ranges():
    text = ' '.join(read('README.md').split())
    match = re.search(r'Requirements: ansible-core (\d+\.\d+) to (\d+\.\d+) on a controller Python (\d+\.\d+) to '
                      r'(\d+\.\d+)', text)
    assert match, 'README.md: no "Requirements: ansible-core A to B on a controller Python C to D" line'
    assert list(match.groups()) == [MINORS[0], MINORS[-1], PYTHONS[0], PYTHONS[-1]], (
        'README.md states ansible-core %s to %s, Python %s to %s; CI proves ansible-core %s to %s on Python %s to %s'
        % (tuple(match.groups()) + (MINORS[0], MINORS[-1], PYTHONS[0], PYTHONS[-1])))


def _neighbour(version_text, step):
    version = Version(version_text)
    return '%d.%d' % (version.major, version.minor + step)


@pytest.mark.parametrize('claim,extra', [
    ('>=%s.0' % MINORS[0], _neighbour(MINORS[-1], 1)),
    ('>=%s,<%s' % (_neighbour(MINORS[0], -1), _neighbour(MINORS[-1], 1)), _neighbour(MINORS[0], -1)),
    ('>=%s.0,<%s' % (MINORS[0], _neighbour(MINORS[-1], 2)), _neighbour(MINORS[-1], 1)),
])
def test_a_claim_beyond_the_matrix_is_caught(claim, extra):
    with pytest.raises(AssertionError, match='claims ansible-core .*%s' % re.escape(extra)):
        check_specifier(claim, 'requires_ansible')


def test_a_claim_short_of_the_matrix_is_caught():
    with pytest.raises(AssertionError, match='excludes ansible-core %s' % re.escape(str(MATRIX[-1][0]))):
        check_specifier('>=%s,<%s' % (MINORS[0], MINORS[-1]), 'requires_ansible')
