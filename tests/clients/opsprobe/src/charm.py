#!/usr/bin/env python3
"""A probe charm on the Python ops library: every hook reconciles, and the
unit's status reports what ops saw, so a test can read it from `status`."""

import ops


class Probe(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on.install,
            self.on.leader_elected,
            self.on.config_changed,
            self.on.start,
            self.on.update_status,
            self.on.upgrade_charm,
            self.on.replicas_relation_joined,
            self.on.replicas_relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.echo_action, self._echo)
        framework.observe(self.on.fail_action, self._fail)
        framework.observe(self.on.secret_action, self._secret)

    def _has_secrets(self) -> bool:
        return ops.JujuVersion.from_environ().has_secrets

    def _reconcile(self, _event: ops.EventBase) -> None:
        greeting = str(self.config['greeting'])
        self.unit.open_port('tcp', int(self.config['port']))
        relation = self.model.get_relation('replicas')
        peers = 0
        if relation is not None:
            relation.data[self.unit]['greeting'] = greeting
            if self.unit.is_leader():
                relation.data[self.app]['leader-greeting'] = greeting
            peers = len(relation.units)
        binding = self.model.get_binding('replicas')
        address = binding.network.bind_address if binding else None
        if self._has_secrets():
            secrets = 'secrets:yes'
            if self.unit.is_leader():
                try:
                    secret = self.model.get_secret(label='probe')
                except ops.SecretNotFoundError:
                    secret = self.app.add_secret({'token': 'first'}, label='probe')
                secrets += ':' + secret.get_content(refresh=True)['token']
        else:
            secrets = 'secrets:no'
        try:
            blob = self.model.resources.fetch('blob').read_text().strip() or 'empty'
        except ops.ModelError:
            blob = 'none'
        self.unit.status = ops.ActiveStatus(
            f'{greeting} at {address} peers={peers} {secrets} blob={blob}'
        )
        if self.unit.is_leader():
            self.app.status = ops.ActiveStatus(f'leader says {greeting}')

    def _echo(self, event: ops.ActionEvent) -> None:
        times = int(event.params['times'])
        for i in range(times):
            event.log(f'echo {i + 1} of {times}')
        event.set_results({'echo': {'text': event.params['text'], 'times': str(times)}})

    def _fail(self, event: ops.ActionEvent) -> None:
        event.fail('this action always fails')

    def _secret(self, event: ops.ActionEvent) -> None:
        if not self._has_secrets():
            event.fail('this Juju has no secrets')
            return
        secret = self.model.get_secret(label='probe')
        secret.set_content({'token': event.params['value']})
        # After secret-set, a plain read still gives the committed revision.
        committed = secret.get_content()['token']
        peeked = secret.peek_content()['token']
        event.set_results({'committed': committed, 'peeked': peeked})


if __name__ == '__main__':
    ops.main(Probe)
