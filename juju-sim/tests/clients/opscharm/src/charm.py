#!/usr/bin/env python3
"""A small ops charm for juju-sim's client tests: every hook tool an ops
charm commonly reaches, on Juju 3 (with secrets) and 2.9 (without)."""

import os
import pathlib

import ops

ROOT = pathlib.Path(os.environ.get("ETCD_CHARM_ROOT", "/"))


def note(name: str, text: str) -> None:
    (ROOT / name).write_text(text)


class OpsFix(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on.leader_elected, self._on_leader)
        framework.observe(self.on.config_changed, self._on_config)
        framework.observe(self.on.start, self._on_config)
        framework.observe(self.on.cluster_relation_changed, self._on_config)
        framework.observe(self.on.greet_action, self._on_greet)
        framework.observe(self.on.fail_me_action, self._on_fail)
        framework.observe(self.on.secret_info_action, self._on_secret_info)

    def _on_install(self, _event):
        self.unit.status = ops.MaintenanceStatus("installing")
        note("juju-version", str(ops.JujuVersion.from_environ()))
        try:
            path = self.model.resources.fetch("blob")
            note("resource", pathlib.Path(path).name)
        except (ops.ModelError, NameError) as e:
            note("resource", f"absent: {type(e).__name__}")

    def _on_leader(self, _event):
        if not self.unit.is_leader():
            return
        rel = self.model.get_relation("cluster")
        if rel is not None:
            rel.data[self.app]["leader-says"] = "hi"
        if ops.JujuVersion.from_environ().has_secrets:
            secret = self.app.add_secret({"token": "abc123"}, label="tok")
            note("secret", secret.id or "")
        else:
            note("secret", "unavailable")

    def _on_config(self, _event):
        addr = self.model.get_binding("cluster").network.bind_address
        self.unit.set_ports(8080)
        rel = self.model.get_relation("cluster")
        if rel is not None:
            rel.data[self.unit]["addr"] = str(addr)
        self.unit.status = ops.ActiveStatus(f"ready {addr} for {self.config['name']}")
        if self.unit.is_leader():
            self.app.status = ops.ActiveStatus("app ok")

    def _on_greet(self, event: ops.ActionEvent):
        event.log("greeting")
        event.set_results({"greeting": f"hello {event.params.get('who', self.config['name'])}"})

    def _on_fail(self, event: ops.ActionEvent):
        event.fail("asked to fail")

    def _on_secret_info(self, event: ops.ActionEvent):
        secret = self.model.get_secret(label="tok")
        info = secret.get_info()
        content = secret.get_content()
        event.set_results({"label": info.label or "", "revision": str(info.revision),
                           "token": content["token"]})


if __name__ == "__main__":
    ops.main(OpsFix)
