"""Canonical's jubilant drives juju-sim as it drives `juju`: the etcd charm
deploys three units, becomes active, runs actions on `etcd/leader` (one of
which fails), answers `exec`, takes a config change and loses a unit."""

import json

import jubilant
import pytest

from conftest import make_juju


@pytest.mark.parametrize('version', ['3.6.12'])
def test_etcd_through_jubilant(sim_home, etcd_charm, monkeypatch, version):
    juju = make_juju(version, monkeypatch)
    assert juju.version().major == 3
    juju.deploy(etcd_charm, 'etcd', num_units=3)
    status = juju.wait(jubilant.all_active, error=jubilant.any_error, timeout=900)
    assert sorted(status.apps['etcd'].units) == ['etcd/0', 'etcd/1', 'etcd/2']
    assert status.model.version == version
    for unit in status.apps['etcd'].units.values():
        assert unit.workload_status.message.startswith('Healthy'), unit.workload_status

    task = juju.run('etcd/leader', 'health', wait=300)
    assert task.success, task
    assert task.status == 'completed'

    # A scaled application refuses a restore: jubilant raises TaskError.
    with pytest.raises(jubilant.TaskError) as failed:
        juju.run('etcd/leader', 'restore', wait=300)
    assert failed.value.task.status == 'failed'
    assert failed.value.task.message, failed.value.task

    # exec runs in the unit's hook context.
    task = juju.exec('is-leader', '--format=json', unit='etcd/0')
    assert task.return_code == 0
    assert json.loads(task.stdout) in (True, False)

    # Config round trip, and the cluster stays active.
    juju.config('etcd', {'heartbeat_interval': 150, 'election_timeout': 1500})
    assert juju.config('etcd')['heartbeat_interval'] == 150
    juju.wait(jubilant.all_active, error=jubilant.any_error, timeout=900)

    # A unit leaves; the other two stay active.
    juju.remove_unit('etcd/2')
    status = juju.wait(
        lambda s: sorted(s.apps['etcd'].units) == ['etcd/0', 'etcd/1']
        and jubilant.all_active(s),
        error=jubilant.any_error,
        timeout=900,
    )
    assert 'etcd/2' not in status.apps['etcd'].units
