"""A Python ops charm on juju-sim, under Juju 3.x and 2.9: config, leader and
relation data, status, action parameters, results, failure and logs,
secrets (none on 2.9), resources, network and ports."""

import pathlib

import jubilant
import pytest

from conftest import make_juju


@pytest.mark.parametrize('version', ['3.6.12', '2.9.49'])
def test_ops_charm(sim_home, ops_charm, tmp_path, monkeypatch, version):
    juju = make_juju(version, monkeypatch)
    blob = tmp_path / 'blob.txt'
    blob.write_text('payload-42\n')
    juju.deploy(ops_charm, 'probe', num_units=2, resources={'blob': str(blob)})
    status = juju.wait(jubilant.all_active, timeout=300)
    secrets = 'secrets:yes' if version.startswith('3.') else 'secrets:no'
    for name, unit in status.apps['probe'].units.items():
        message = unit.workload_status.message
        assert message.startswith('hello at 127.'), (name, message)
        assert 'peers=1' in message, (name, message)
        assert secrets in message, (name, message)
        assert 'blob=payload-42' in message, (name, message)
    assert status.apps['probe'].app_status.message == 'leader says hello'
    leader = next(n for n, u in status.apps['probe'].units.items() if u.leader)
    if version.startswith('3.'):
        assert ':first' in status.apps['probe'].units[leader].workload_status.message

    # Config reaches every unit.
    juju.config('probe', {'greeting': 'bonjour'})
    status = juju.wait(
        lambda s: all(
            u.workload_status.message.startswith('bonjour')
            for u in s.apps['probe'].units.values()
        ),
        timeout=300,
    )
    assert status.apps['probe'].app_status.message == 'leader says bonjour'

    if version.startswith('3.'):
        task = juju.run(f'{leader}', 'echo', {'text': 'hi', 'times': 3})
        assert task.results['echo'] == {'text': 'hi', 'times': '3'}
        expected = ['echo 1 of 3', 'echo 2 of 3', 'echo 3 of 3']
        assert [line for line in task.log if 'echo' in line] != [], task.log
        assert all(got.endswith(want) for got, want in zip(task.log, expected)), task.log
        assert len(task.log) == 3, task.log
        with pytest.raises(jubilant.TaskError) as failed:
            juju.run(leader, 'fail')
        assert failed.value.task.message == 'this action always fails'
        task = juju.run(leader, 'secret', {'value': 'second'})
        assert task.results == {'committed': 'first', 'peeked': 'second'}
    else:
        # 2.9: actions are queued with run-action; juju run is refused.
        out = juju.cli('run-action', leader, 'echo', 'text=hi', '--wait', '--format', 'json')
        assert 'hi' in out
        with pytest.raises(jubilant.CLIError):
            juju.run(leader, 'echo', {'text': 'hi'})
