"""Fixtures for the real-client tests: juju-sim driven as `juju` by
Canonical's jubilant, and a charm directory holding this build's dispatcher.
(The Python ops charm's test lives with the simulator's own tests, in
juju-sim/tests/clients.rs.)

Paths come from the environment `scripts/test` sets: JUJU_SIM (the
simulator binary) and ETCD_CHARM_BIN (the dispatcher)."""

import os
import pathlib
import shutil
import subprocess

import jubilant
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _required(name: str) -> pathlib.Path:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f'{name} is not set: run these tests through scripts/test')
    return pathlib.Path(value)


@pytest.fixture
def sim_home(tmp_path, monkeypatch):
    home = tmp_path / 'model'
    monkeypatch.setenv('JUJU_SIM_HOME', str(home))
    yield home
    subprocess.run(
        [str(_required('JUJU_SIM')), 'destroy-model', '--no-prompt', '--force'],
        check=False,
        capture_output=True,
    )


def make_juju(version: str, monkeypatch) -> jubilant.Juju:
    monkeypatch.setenv('JUJU_SIM_AGENT_VERSION', version)
    monkeypatch.setenv('JUJU_SIM_UPDATE_STATUS_INTERVAL', '10s')
    return jubilant.Juju(cli_binary=str(_required('JUJU_SIM')), wait_timeout=600)


@pytest.fixture
def etcd_charm(tmp_path) -> pathlib.Path:
    d = tmp_path / 'etcd-charm'
    d.mkdir()
    shutil.copy(_required('ETCD_CHARM_BIN'), d / 'dispatch')
    (d / 'dispatch').chmod(0o755)
    for f in ('metadata.yaml', 'actions.yaml', 'config.yaml'):
        shutil.copy(REPO / f, d / f)
    return d
