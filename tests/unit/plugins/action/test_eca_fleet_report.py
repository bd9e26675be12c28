"""sfdc.eca.eca_fleet_report as the role runs it, with the hosts' registered results given as hostvars."""

from unittest import mock

from ansible.playbook.play_context import PlayContext

from ansible_collections.sfdc.eca.plugins.action import eca_fleet_report


class CountingHostVars(dict):
    """hostvars: each get() is a template of the host's variable in Ansible; count them."""

    def __init__(self, per_host):
        super().__init__()
        self.reads = []
        for host, value in per_host.items():
            self[host] = _Vars(self, host, value)


class _Vars:
    def __init__(self, owner, host, value):
        self.owner, self.host, self.value = owner, host, value

    def get(self, name):
        self.owner.reads.append(self.host)
        return self.value if name == 'sfdc_eca_rotation' else None


def _run(tmp_path, hosts, hostvars):
    task = mock.MagicMock()
    task.args = {'report_dir': str(tmp_path / 'report'), 'hosts': hosts}
    task.check_mode = False
    task.async_val = 0
    templar = mock.MagicMock()
    templar.template = lambda value, **kw: value
    act = eca_fleet_report.ActionModule(task, mock.MagicMock(), PlayContext(), loader=mock.MagicMock(), templar=templar,
                                        shared_loader_obj=mock.MagicMock())
    return act.run(task_vars={'hostvars': hostvars})


def _result(org, outcome='rotated'):
    return {'records': [{'org': org, 'app_name': 'A', 'consumer_name': 'C', 'outcome': outcome}], 'org_failed': False}


def test_a_batch_result_is_read_once_not_once_per_org(tmp_path):
    """The batch task registers one result with every org of the batch on each org: reading it per org made the
    report quadratic in the batch size (minutes for a batch of 500). An org that waited for its tasks files has its
    final result in its own variable, not in the batch result."""
    orgs = ['org%03d' % i for i in range(200)]
    first = {'orgs': dict((o, _result(o)) for o in orgs), 'tasks_file_orgs': ['org007']}
    first['orgs']['org007'] = {'records': None, 'org_failed': False}  # not finished in the first call
    finished = {'orgs': dict(first['orgs'], org007=_result('org007', 'failed')), 'tasks_file_orgs': []}
    hostvars = CountingHostVars(dict((o, finished if o == 'org007' else first) for o in orgs))
    result = _run(tmp_path, orgs, hostvars)
    assert [(r['org'], r['outcome']) for r in result['report']['rows']] == [
        (o, 'failed' if o == 'org007' else 'rotated') for o in orgs]
    assert hostvars.reads == ['org000', 'org007'], len(hostvars.reads)
