"""The names the batch task gives the user's tasks-file steps: the role's rescue finds a failed step by its name."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.sfdc.eca.plugins.action.eca_rotation import mark_steps


def _steps(consumer):
    return [{'id': consumer + '#deliver', 'kind': 'deliver', 'after': None},
            {'id': consumer + '#hook', 'kind': 'hook', 'after': consumer + '#deliver'}]


def test_a_step_number_has_one_name_on_every_org_of_the_batch_and_hooks_follow_their_delivery():
    handoff = {'org01': {'steps': _steps('A') + _steps('B')}, 'org02': {'steps': _steps('C')}}
    mark_steps(handoff, 'batch-1')
    assert [s['id'] for s in handoff['org01']['steps']] == ['batch-1.0', 'batch-1.1', 'batch-1.2', 'batch-1.3']
    assert [s['after'] for s in handoff['org01']['steps']] == [None, 'batch-1.0', None, 'batch-1.2']
    assert [s['id'] for s in handoff['org02']['steps']] == ['batch-1.0', 'batch-1.1']


def test_another_batch_names_the_same_steps_otherwise():
    first, second = {'org01': {'steps': _steps('A')}}, {'org01': {'steps': _steps('A')}}
    mark_steps(first, 'one')
    mark_steps(second, 'two')
    assert not {s['id'] for s in first['org01']['steps']} & {s['id'] for s in second['org01']['steps']}
