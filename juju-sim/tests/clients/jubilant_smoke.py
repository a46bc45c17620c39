"""Drives juju-sim through Canonical's `jubilant` (PyPI) as a real client
would: `juju` on PATH is juju-sim. Deploys the charm directory given as
argv[1] with 3 units, waits for all_active, runs a leader action (and one
that fails), exec, config, show_unit, version and remove_unit, and parses
every status on the way. Run by juju-sim/tests/clients.rs when
JUBILANT_PYTHON names a Python with jubilant installed."""

import sys

import jubilant

charm = sys.argv[1]
juju = jubilant.Juju(model="sim")
juju.deploy(charm, "fix", num_units=3)
status = juju.wait(jubilant.all_active, timeout=120)
assert status.apps["fix"].charm.startswith("local:fix-"), status.apps["fix"].charm
assert len(status.apps["fix"].units) == 3
assert status.apps["fix"].relations["cluster"][0].related_app == "fix"
assert status.model.version, status.model

task = juju.run("fix/leader", "sleep", {"seconds": 0})
assert task.status == "completed", task
assert task.stdout == "slept\n", task
try:
    juju.run("fix/0", "peek", {"fail": True})
except jubilant.TaskError as e:
    assert e.task.status == "failed", e.task
else:
    raise AssertionError("a failing action did not raise TaskError")

out = juju.exec("echo hello", unit="fix/leader")
assert out.stdout == "hello\n", out

juju.config("fix", {"name": "x"})
assert juju.config("fix")["name"] == "x"

unit = juju.show_unit("fix/0")
assert unit.leader, unit

version = juju.version()
assert version.major in (2, 3), version

juju.remove_unit("fix/2")
juju.wait(lambda s: "fix/2" not in s.apps["fix"].units, timeout=120)
print("jubilant OK")
