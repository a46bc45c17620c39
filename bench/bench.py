#!/usr/bin/env python3
"""The benchmark driver (bench/run calls it after building; stdlib only).

For each case (data kind x size) it deploys the charm on etcd 3.5 in a fresh
juju-sim model, fills etcd with `etcd-bench fill`, then, BENCH_RUNS times in
rotating order:

  snapshot side (same etcd, same TLS credentials, same filesystem):
    etcdctl   `etcdctl snapshot save` alone
    action    `juju-sim run etcd/0 snapshot --wait=30m` (wall time); the
              unit's dispatch runs under `etcd-bench rss-exec` for its own
              peak RSS
    legacy    the old Python charm's pipeline: `etcdctl snapshot save` +
              `tar czf` (gzip's default level) + `sha256sum` of the tarball
  restore side:
    ours      a fresh application deployed with --resource snapshot=<our
              archive>, then `run new/0 restore skip-backup=true`
    ref       `etcdutl snapshot restore` of the plain db + start etcd (same
              TLS setup as the charm's) + poll until `endpoint health` passes
    verify    `run-action etcd/0 verify-backup path=<our archive>` on the
              source unit (a scratch etcd beside the serving one)
    vref      ref + `etcdctl endpoint hashkv` on the restored etcd

It prints medians and ratios and writes bench/RESULTS.md and
bench/results.json.
"""

import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

TARGETS = {
    "a": ("snapshot action / etcdctl snapshot save (1G k8s)", "<=", 1.25),
    "b": ("legacy pipeline / snapshot action", ">=", 3.0),
    "c": ("peak RSS of the action's dispatch (MiB)", "<=", 64.0),
    "d": ("restore action / etcdutl restore + start + healthy", "<=", 1.3),
    # Reported, with no target set (issue 12).
    "e": ("verify-backup / (etcdutl restore + start + endpoint hashkv)", "<=", float("inf")),
}

MiB = 1 << 20


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs cmd, fails with its output when it fails; returns stdout."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(map(shlex.quote, map(str, cmd)))} failed ({p.returncode})\n"
            f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
        )
    return p.stdout


def timed(cmd, **kw):
    t0 = time.monotonic()
    out = run(cmd, **kw)
    return time.monotonic() - t0, out


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1].upper(), 1)
    return int(s[:-1] if mult > 1 else s) * mult


def med(xs):
    return statistics.median(xs) if xs else None


class Env:
    """Paths of the tools and the scratch space, from bench/run."""

    def __init__(self):
        e = os.environ
        self.sim = e["BENCH_SIM"]
        self.gen = e["BENCH_GEN"]
        self.dispatch_build = e.get("BENCH_DISPATCH_BUILD", "")
        self.etcd_dir = e["BENCH_ETCD_DIR"]
        self.work = e["BENCH_WORK"]
        self.runs = int(e.get("BENCH_RUNS", "3"))
        self.sizes = e.get("BENCH_SIZES", "100M 1G").split()
        self.random_sizes = e.get("BENCH_RANDOM_SIZES", "100M 1G").split()
        self.profile = e.get("BENCH_PROFILE", "auto")
        self.command = e.get("BENCH_COMMAND", "bench/run")
        self.results_md = e.get("BENCH_RESULTS", os.path.join(HERE, "RESULTS.md"))
        self.etcdctl = os.path.join(self.etcd_dir, "etcdctl")
        self.etcdutl = os.path.join(self.etcd_dir, "etcdutl")
        self.etcd = os.path.join(self.etcd_dir, "etcd")


class Model:
    """One juju-sim model in its own JUJU_SIM_HOME."""

    def __init__(self, env, name):
        self.env = env
        self.home = os.path.join(env.work, name)
        os.makedirs(self.home)
        self.charm = os.path.join(env.work, "charm")
        self.resource = os.path.join(env.work, "etcd-v3.5.1-linux-amd64.tar.gz")

    def sim(self, *args, timed_run=False):
        cmd = [self.env.sim, *args]
        envv = dict(os.environ, JUJU_SIM_HOME=self.home)
        if timed_run:
            return timed(cmd, env=envv)
        return run(cmd, env=envv)

    def destroy(self):
        subprocess.run(
            [self.env.sim, "destroy-model", "--no-prompt"],
            env=dict(os.environ, JUJU_SIM_HOME=self.home),
            capture_output=True,
        )
        shutil.rmtree(self.home, ignore_errors=True)

    def unit_dir(self, unit):
        return os.path.join(self.home, "units", unit.replace("/", "-"))

    def root(self, unit):
        return os.path.join(self.unit_dir(unit), "root")

    def status(self):
        return json.loads(self.sim("status", "--format=json"))

    def unit_status(self, unit):
        app = unit.split("/")[0]
        return self.status()["applications"][app]["units"][unit]

    def deploy(self, app, *extra):
        self.sim("deploy", self.charm, app, "--resource", f"etcd={self.resource}", *extra)
        # juju-sim's verbs return once queued, as Juju's do; wait for the hooks.
        self.sim("wait-idle", "--timeout", "30m")
        u = self.unit_status(f"{app}/0")
        if u["workload-status"]["current"] != "active":
            raise SystemExit(f"bench: {app}/0 is not active: {u['workload-status']}")
        return u["public-address"]

    def credentials(self, unit, into):
        out = json.loads(self.sim("run", unit, "package-client-credentials", "--format=json"))
        path = next(iter(out.values()))["results"]["credentials"]["path"]
        os.makedirs(into, exist_ok=True)
        self.sim("scp", f"{unit}:{path}", into + "/")
        with tarfile.open(os.path.join(into, os.path.basename(path))) as t:
            t.extractall(into, filter="data")
        return {k: os.path.join(into, f) for k, f in
                [("cacert", "ca.crt"), ("cert", "client.crt"), ("key", "client.key")]}

    def wrap_dispatch(self, unit, rss_dir, perf=False):
        """Replaces the unit's dispatch with a script that runs the real one
        under `etcd-bench rss-exec` (and `perf record` when asked)."""
        charm = os.path.join(self.unit_dir(unit), "charm")
        real_dir = os.path.join(charm, "bench-real")
        os.makedirs(real_dir, exist_ok=True)
        real = os.path.join(real_dir, "dispatch")
        if not os.path.exists(real):
            os.rename(os.path.join(charm, "dispatch"), real)
        os.makedirs(rss_dir, exist_ok=True)
        # Files per run of dispatch: DIR/<action>-<id>.{json,log,perf.data}
        # (hooks: hook-<pid>.*).
        base = f'{shlex.quote(rss_dir)}/"${{JUJU_ACTION_NAME:-hook}}-${{JUJU_ACTION_UUID:-$$}}'
        inner = shlex.quote(real)
        if perf:
            inner = f'perf record -q -F 999 -o {base}.perf.data" -- {inner}'
        script = (
            "#!/bin/sh\n"
            f'export BENCH_STAMPS={base}.log"\n'
            f"PATH={shlex.quote(self.stamp_shims())}:$PATH\n"
            f'exec {shlex.quote(self.env.gen)} rss-exec --out {base}.json" -- {inner} "$@"\n'
        )
        tmp = os.path.join(charm, "dispatch.tmp")
        with open(tmp, "w") as f:
            f.write(script)
        os.chmod(tmp, 0o755)
        os.rename(tmp, os.path.join(charm, "dispatch"))

    def stamp_shims(self):
        """A directory of `juju-log` and `action-log` that write each message
        with its time to $BENCH_STAMPS, then run the simulator's tool: under
        Juju the charm logs through them only, and their times give the
        action's stages."""
        d = os.path.join(self.env.work, "stamp-shims")
        if not os.path.isdir(d):
            os.makedirs(d)
            for tool in ["juju-log", "action-log"]:
                with open(os.path.join(d, tool), "w") as f:
                    f.write("#!/bin/sh\n"
                            'printf \'%s %s\\n\' "$(date +%s.%N)" "$*" >> "$BENCH_STAMPS"\n'
                            f'exec "$JUJU_SIM_HOME/tools/{tool}" "$@"\n')
                os.chmod(os.path.join(d, tool), 0o755)
        return d

    def action(self, unit, name, *params):
        """Runs an action; returns (wall seconds, its task document).

        Juju 3: `run UNIT ACTION … --wait=30m --format=json` (exits 1 when
        the action failed). Juju 2.9 (JUJU_SIM_AGENT_VERSION=2.9.x when the
        model was made): `run-action … --wait --format=json`; Juju 3 has no
        run-action."""
        if os.environ.get("JUJU_SIM_AGENT_VERSION", "").strip().startswith("2."):
            verb = ("run-action", unit, name, *params, "--wait", "--format=json")
        else:
            verb = ("run", unit, name, *params, "--wait=30m", "--format=json")
        secs, out = self.sim(*verb, timed_run=True)
        doc = json.loads(out)
        # Juju 2.9's run-action --wait puts the outcome under unit-APP-N.
        doc = doc.get(unit) or doc.get("unit-" + unit.replace("/", "-")) or doc
        if doc.get("status") != "completed":
            raise SystemExit(f"bench: {name} on {unit} did not complete: {json.dumps(doc)[:3000]}")
        return secs, doc


# The action's own log lines that start each stage (src/charm/*.rs).
SNAPSHOT_STAGES = [
    ("read params, lock, connect, status, key count", "Streaming a "),
    ("stream + pack (gzip, sha256) + fsync + rename", "Wrote "),
]
RESTORE_STAGES = [
    ("read params, lock, guards, connect", "Verifying the attached snapshot"),
    ("verify the archive + stage the db (gunzip, sha256)", "passed every check"),
    ("space check, journal, status", "Restoring the snapshot with"),
    ("etcdutl snapshot restore while etcd stops, swap", "Starting etcd on the restored data"),
    ("start etcd + wait healthy + check keys", "Restored revision"),
]


def stages(rss_dir, name, action_id, markers, action_wall):
    """Per-stage seconds of one action from its timed log lines."""
    with open(os.path.join(rss_dir, f"{name}-{action_id}.log")) as f:
        lines = [ln.split(" ", 1) for ln in f.read().splitlines() if " " in ln]
    rss = rss_of_action(rss_dir, name, action_id)
    t0 = rss["started_unix"]
    out, prev = {}, 0.0
    for label, marker in markers:
        t = next((float(ts) - t0 for ts, text in lines if marker in text), None)
        if t is None:
            raise SystemExit(f"bench: no {marker!r} in the log of {name} {action_id}")
        out[label] = t - prev
        prev = t
    out["results, exit"] = rss["wall_s"] - prev
    out["juju-sim around dispatch"] = action_wall - rss["wall_s"]
    return out


def tls_flags(c):
    return [f"--cacert={c['cacert']}", f"--cert={c['cert']}", f"--key={c['key']}"]


class Case:
    def __init__(self, env, kind, size):
        self.env = env
        self.kind = kind
        self.size_label = size
        self.bytes = parse_size(size)
        self.name = f"{kind}-{size}"
        self.rss_root = os.path.join(env.work, "rss", self.name)
        self.runs = {"etcdctl": [], "action": [], "legacy": [], "ours": [], "ref": [],
                     "verify": [], "vref": []}
        self.legacy_stages = []
        self.rss = []
        self.restore_rss = []
        self.snapshot_stages = []
        self.restore_stages = []
        self.ref_stages = []
        self.info = {}
        self.profiles = []

    # -- the snapshot side -------------------------------------------------

    def snapshot_side(self, m, creds, ep, unit):
        env = self.env
        root = m.root(unit)
        scratch = os.path.join(root, "home/ubuntu/bench-scratch")  # next to the action's target
        os.makedirs(scratch, exist_ok=True)
        rss_dir = os.path.join(self.rss_root, "snapshot")
        m.wrap_dispatch(unit, rss_dir)
        keep_db = os.path.join(env.work, f"{self.name}.db")
        keep_archive = os.path.join(env.work, f"{self.name}.tar.gz")
        ctl = [env.etcdctl, f"--endpoints={ep}", *tls_flags(creds)]
        order = ["etcdctl", "action", "legacy"]
        for r in range(env.runs):
            for what in order[r % 3:] + order[: r % 3]:
                if what == "etcdctl":
                    db = os.path.join(scratch, "save.db")
                    secs, _ = timed(ctl + ["snapshot", "save", db])
                    self.runs["etcdctl"].append(secs)
                    self.info["db_size"] = os.path.getsize(db)
                    os.replace(db, keep_db)
                elif what == "action":
                    secs, doc = m.action(unit, "snapshot")
                    res = doc["results"]["snapshot"]
                    path = os.path.join(root, res["path"].lstrip("/"))
                    self.runs["action"].append(secs)
                    self.info["archive_size"] = int(res["size-bytes"])
                    self.info["key_count"] = int(res["key-count"])
                    self.rss.append(rss_of_action(rss_dir, "snapshot", doc["id"]))
                    self.snapshot_stages.append(
                        stages(rss_dir, "snapshot", doc["id"], SNAPSHOT_STAGES, secs))
                    os.replace(path, keep_archive)
                else:
                    d = os.path.join(scratch, "legacy")
                    os.makedirs(d, exist_ok=True)
                    db = os.path.join(d, "etcd-snapshot.db")
                    tgz = os.path.join(d, "etcd-snapshot.tar.gz")
                    t_save, _ = timed(ctl + ["snapshot", "save", db])
                    t_tar, _ = timed(["tar", "-C", d, "-czf", tgz, "etcd-snapshot.db"])
                    t_sha, _ = timed(["sha256sum", tgz])
                    self.runs["legacy"].append(t_save + t_tar + t_sha)
                    self.legacy_stages.append((t_save, t_tar, t_sha))
                    self.info["legacy_size"] = os.path.getsize(tgz)
                    shutil.rmtree(d)
                log(f"{self.name} run {r + 1}/{env.runs}: {what} {self.runs[what][-1]:.2f} s")
        self.keep_db, self.keep_archive = keep_db, keep_archive

    def profile_actions(self, m, unit):
        """One more snapshot and one more restore, under `perf record`
        (on-CPU samples of dispatch and its children, flat by symbol)."""
        self.profiles = []

        def report(rss_dir, action, doc, what, secs):
            perf_data = os.path.join(rss_dir, f"{action}-{doc['id']}.perf.data")
            rep = subprocess.run(
                ["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                 "--sort", "comm,dso,symbol", "--percent-limit", "1"],
                capture_output=True, text=True)
            lines = [re.sub(r"(\s+-)*\s*$", "", ln) for ln in rep.stdout.splitlines()
                     if ln.strip() and not ln.startswith("#")]
            self.profiles.append({"what": what, "wall_s": secs, "top": lines[:25]})

        rss_dir = os.path.join(self.rss_root, "profile")
        m.wrap_dispatch(unit, rss_dir, perf=True)
        secs, doc = m.action(unit, "snapshot")
        os.remove(os.path.join(m.root(unit), doc["results"]["snapshot"]["path"].lstrip("/")))
        m.wrap_dispatch(unit, os.path.join(self.rss_root, "snapshot"))
        report(rss_dir, "snapshot", doc, "the snapshot action", secs)

        app = "restoreprof"
        m.deploy(app, "--resource", f"snapshot={self.keep_archive}")
        m.wrap_dispatch(f"{app}/0", rss_dir, perf=True)
        secs, doc = m.action(f"{app}/0", "restore", "skip-backup=true")
        m.sim("remove-application", app, "--force", "--no-wait")
        shutil.rmtree(m.unit_dir(f"{app}/0"), ignore_errors=True)
        report(rss_dir, "restore", doc, "the restore action (skip-backup=true)", secs)

    # -- the restore side --------------------------------------------------

    def restore_side(self, m, src_unit):
        env = self.env
        pki = os.path.join(m.root(src_unit), "etc/etcd-charm/pki")
        order = ["ours", "ref", "verify", "vref"]
        for r in range(env.runs):
            for what in order[r % 4:] + order[: r % 4]:
                if what == "ours":
                    secs, rss = self.restore_ours(m, r)
                    self.restore_rss.append(rss)
                elif what == "ref":
                    secs = self.restore_ref(pki, r)
                elif what == "verify":
                    secs = self.verify_ours(m, src_unit)
                else:
                    secs = self.restore_ref(pki, r, hashkv=True)
                self.runs[what].append(secs)
                log(f"{self.name} run {r + 1}/{env.runs}: restore {what} {secs:.2f}s")

    def restore_ours(self, m, r):
        app = f"restore{r}"
        m.deploy(app, "--resource", f"snapshot={self.keep_archive}")
        unit = f"{app}/0"
        rss_dir = os.path.join(self.rss_root, "restore")
        m.wrap_dispatch(unit, rss_dir)
        secs, doc = m.action(unit, "restore", "skip-backup=true")
        rss = rss_of_action(rss_dir, "restore", doc["id"])
        self.restore_stages.append(stages(rss_dir, "restore", doc["id"], RESTORE_STAGES, secs))
        m.sim("remove-application", app, "--force", "--no-wait")
        shutil.rmtree(m.unit_dir(unit), ignore_errors=True)
        return secs, rss

    def verify_ours(self, m, unit):
        dest = os.path.join(m.root(unit), "home/ubuntu/etcd-snapshots/bench-verify.tar.gz")
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(self.keep_archive, dest)
            os.chmod(dest, 0o600)
        secs, doc = m.action(unit, "verify-backup",
                             "path=/home/ubuntu/etcd-snapshots/bench-verify.tar.gz")
        res = doc.get("results", {}).get("verify", {})
        if res.get("result") != "verified":
            raise SystemExit(f"bench: verify-backup did not verify: {json.dumps(doc)[:3000]}")
        return secs

    def restore_ref(self, pki, r, hashkv=False):
        env = self.env
        data = os.path.join(env.work, f"ref-data-{r}")
        peer = "https://127.0.0.1:23800"
        client = "https://127.0.0.1:23790"
        t0 = time.monotonic()
        run([env.etcdutl, "snapshot", "restore", self.keep_db, "--name", "ref",
             "--data-dir", data, "--initial-cluster", f"ref={peer}",
             "--initial-advertise-peer-urls", peer, "--initial-cluster-token", f"ref-{r}"])
        t_restored = time.monotonic()
        logf = open(os.path.join(env.work, f"ref-etcd-{r}.log"), "w")
        tls = []
        for side, prefix in [("", ""), ("peer-", "peer-")]:
            tls += [f"--{prefix}client-cert-auth", f"--{prefix}trusted-ca-file={pki}/ca.crt",
                    f"--{prefix}cert-file={pki}/server.crt", f"--{prefix}key-file={pki}/server.key"]
        proc = subprocess.Popen(
            [env.etcd, "--name", "ref", "--data-dir", data, "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"ref={peer}", *tls],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        creds = {"cacert": f"{pki}/ca.crt", "cert": f"{pki}/client.crt", "key": f"{pki}/client.key"}
        try:
            while True:
                p = subprocess.run(
                    [env.etcdctl, f"--endpoints={client}", *tls_flags(creds),
                     "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "health"],
                    capture_output=True)
                if p.returncode == 0:
                    if hashkv:
                        run([env.etcdctl, f"--endpoints={client}", *tls_flags(creds),
                             "endpoint", "hashkv"])
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"bench: the reference etcd exited; see {logf.name}")
                if time.monotonic() - t0 > 120:
                    raise SystemExit("bench: the reference etcd is not healthy after 120 s")
                time.sleep(0.05)
            secs = time.monotonic() - t0
            if not hashkv:
                self.ref_stages.append({"etcdutl snapshot restore": t_restored - t0,
                                        "start etcd + wait healthy": t0 + secs - t_restored})
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            logf.close()
            shutil.rmtree(data, ignore_errors=True)
        return secs

    # -- the whole case ----------------------------------------------------

    def run(self, want_profile):
        env = self.env
        log(f"case {self.name}: deploying etcd 3.5 in a fresh model")
        m = Model(env, f"model-{self.name}")
        try:
            addr = m.deploy("etcd")
            ep = f"https://{addr}:2379"
            creds = m.credentials("etcd/0", os.path.join(env.work, f"creds-{self.name}"))
            self.info["etcd_version"] = run([env.etcdctl, f"--endpoints={ep}", *tls_flags(creds),
                                             "endpoint", "status", "-w", "json"])
            self.info["etcd_version"] = json.loads(self.info["etcd_version"])[0]["Status"]["version"]
            log(f"case {self.name}: filling etcd ({self.kind}, {self.size_label})")
            out = run([env.gen, "fill", "--endpoint", ep, "--cacert", creds["cacert"],
                       "--cert", creds["cert"], "--key", creds["key"], "--kind", self.kind,
                       "--bytes", str(self.bytes)])
            self.info["fill"] = json.loads(out)
            f = self.info["fill"]
            log(f"case {self.name}: {f['keys']} keys, db {f['db_size'] / MiB:.0f} MiB in "
                f"{f['seconds']:.1f} s ({f['mib_per_s']:.0f} MiB/s)")
            self.snapshot_side(m, creds, ep, "etcd/0")
            self.restore_side(m, "etcd/0")
            if want_profile:
                self.profile_actions(m, "etcd/0")
        finally:
            m.destroy()
            for p in [getattr(self, "keep_db", None), getattr(self, "keep_archive", None)]:
                if p and os.path.exists(p):
                    os.remove(p)

    def summary(self):
        s = {k: med(v) for k, v in self.runs.items()}
        db = self.info.get("db_size", 0)
        out = {
            "case": self.name, "kind": self.kind, "size": self.size_label,
            "runs": self.runs, "medians": s, "legacy_stages": self.legacy_stages,
            "info": self.info, "rss": self.rss, "restore_rss": self.restore_rss,
            "profiles": self.profiles, "snapshot_stages": self.snapshot_stages,
            "restore_stages": self.restore_stages, "ref_stages": self.ref_stages,
        }
        if s["etcdctl"] and s["action"]:
            out["ratio_a"] = s["action"] / s["etcdctl"]
        if s["legacy"] and s["action"]:
            out["ratio_b"] = s["legacy"] / s["action"]
        if s["ours"] and s["ref"]:
            out["ratio_d"] = s["ours"] / s["ref"]
        if s["verify"] and s["vref"]:
            out["ratio_e"] = s["verify"] / s["vref"]
        if self.rss:
            out["rss_self_mib"] = max(x["self_peak_rss_kib"] or 0 for x in self.rss) / 1024
            out["rss_tree_mib"] = max(x["tree_peak_rss_kib"] for x in self.rss) / 1024
        if db:
            out["mib_per_s"] = {k: db / MiB / v for k, v in s.items() if v}
            if self.info.get("archive_size"):
                out["compression"] = db / self.info["archive_size"]
            if self.info.get("legacy_size"):
                out["legacy_compression"] = db / self.info["legacy_size"]
        return out


def rss_of_action(rss_dir, name, action_id):
    with open(os.path.join(rss_dir, f"{name}-{action_id}.json")) as f:
        return json.load(f)


# -- the report ------------------------------------------------------------

def verdict(key, value):
    _, op, target = TARGETS[key]
    ok = value <= target if op == "<=" else value >= target
    if ok:
        return "met"
    if op == "<=":
        return f"MISSED by {value / target - 1:.0%} ({value:.2f} vs {target})"
    return f"MISSED by {1 - value / target:.0%} ({value:.2f} vs {target})"


def machine():
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
        "os": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "etcd35": first_line([os.path.join(os.environ["BENCH_ETCD_DIR"], "etcd"), "--version"]),
        "etcd34": first_line(["etcd", "--version"]),
        "gzip": first_line(["gzip", "--version"]),
        "tar": first_line(["tar", "--version"]),
        "rustc": first_line(["rustc", "--version"]),
    }


def fmt_s(x):
    return "—" if x is None else f"{x:.2f} s"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def write_report(env, cases, started, finished, load_before):
    sums = [c.summary() for c in cases]
    mach = machine()
    mach["load average before / after"] = f"{load_before} / {loadavg()}"
    git = run(["git", "-C", REPO, "log", "-1", "--format=%h %s"]).strip()
    L = []
    L.append("# Benchmark results\n")
    L.append(f"Produced by `{env.command}` on {started:%Y-%m-%d} "
             f"({started:%H:%M}–{finished:%H:%M} UTC, {(finished - started).total_seconds() / 60:.0f} min; "
             f"{env.runs} runs per measure, medians).\n")
    L.append(f"Code: `{git}`. Dispatch: {env.dispatch_build}.\n")
    L.append("Machine: " + ", ".join(f"{k} {v}" for k, v in mach.items()) + ".\n")
    L.append("\n## Targets\n")
    L.append("| | measure | case | median | target | verdict |")
    L.append("|---|---|---|---|---|---|")
    for s in sums:
        if s["kind"] == "k8s" and s["size"] == "1G" and "ratio_a" in s:
            L.append(f"| (a) | {TARGETS['a'][0]} | {s['case']} | {s['ratio_a']:.2f}× | ≤ 1.25× | {verdict('a', s['ratio_a'])} |")
    for s in sums:
        if "ratio_b" in s:
            L.append(f"| (b) | {TARGETS['b'][0]} | {s['case']} | {s['ratio_b']:.2f}× | ≥ 3× | {verdict('b', s['ratio_b'])} |")
    for s in sums:
        if "rss_self_mib" in s:
            L.append(f"| (c) | {TARGETS['c'][0]} | {s['case']} | {s['rss_self_mib']:.1f} MiB (max of runs) | ≤ 64 MiB | {verdict('c', s['rss_self_mib'])} |")
    for s in sums:
        if "ratio_d" in s:
            L.append(f"| (d) | {TARGETS['d'][0]} | {s['case']} | {s['ratio_d']:.2f}× | ≤ 1.3× | {verdict('d', s['ratio_d'])} |")
    for s in sums:
        if "ratio_e" in s:
            L.append(f"| (e) | {TARGETS['e'][0]} | {s['case']} | {s['ratio_e']:.2f}× | (none set) | "
                     f"{fmt_s(s['medians']['verify'])} vs {fmt_s(s['medians']['vref'])} |")
    L.append("\nRatios (a) at other sizes, for reference: " + ", ".join(
        f"{s['case']} {s['ratio_a']:.2f}×" for s in sums if "ratio_a" in s) + ".\n")

    L.append("\n## Absolute times (medians) and throughput (db MiB / s)\n")
    L.append("| case | db | keys | etcdctl save | snapshot action | legacy (save + tar czf + sha256sum) | restore action | etcdutl restore + start + healthy |")
    L.append("|---|---|---|---|---|---|---|---|")
    for s in sums:
        md, tp = s["medians"], s.get("mib_per_s", {})
        db = s["info"].get("db_size", 0)
        cells = [f"{fmt_s(md[k])} ({tp.get(k, 0):.0f} MiB/s)" for k in ["etcdctl", "action", "legacy", "ours", "ref"]]
        L.append(f"| {s['case']} | {db / MiB:.0f} MiB | {s['info'].get('key_count', '?')} | " + " | ".join(cells) + " |")
    L.append("\nLegacy stages (median): " + "; ".join(
        f"{s['case']}: save {med([x[0] for x in s['legacy_stages']]):.2f} s, tar czf {med([x[1] for x in s['legacy_stages']]):.2f} s, sha256sum {med([x[2] for x in s['legacy_stages']]):.2f} s"
        for s in sums if s["legacy_stages"]) + ".\n")

    L.append("\n## Archives\n")
    L.append("| case | db | our archive (gzip level 1) | ratio | legacy tar.gz (gzip -6) | ratio |")
    L.append("|---|---|---|---|---|---|")
    for s in sums:
        i = s["info"]
        L.append(f"| {s['case']} | {i.get('db_size', 0) / MiB:.1f} MiB | {i.get('archive_size', 0) / MiB:.1f} MiB | "
                 f"{s.get('compression', 0):.2f}× | {i.get('legacy_size', 0) / MiB:.1f} MiB | {s.get('legacy_compression', 0):.2f}× |")

    L.append("\n## Peak RSS\n")
    L.append("| case | snapshot dispatch alone (max / median) | with the hook tools it waited for | restore dispatch alone | restore with its children (etcdutl, …) |")
    L.append("|---|---|---|---|---|")
    for s in sums:
        a = [x["self_peak_rss_kib"] / 1024 for x in s["rss"] if x["self_peak_rss_kib"]]
        t = [x["tree_peak_rss_kib"] / 1024 for x in s["rss"]]
        ra = [x["self_peak_rss_kib"] / 1024 for x in s["restore_rss"] if x["self_peak_rss_kib"]]
        rt = [x["tree_peak_rss_kib"] / 1024 for x in s["restore_rss"]]
        f = lambda xs: f"{max(xs):.1f} / {med(xs):.1f} MiB" if xs else "—"
        L.append(f"| {s['case']} | {f(a)} | {f(t)} | {f(ra)} | {f(rt)} |")
    methods = sorted({x["method"] for s in sums for x in s["rss"] + s["restore_rss"]})
    L.append(f"\nMethod: {', '.join(methods)} (see bench/README.md).\n")

    L.append("\n## Data sets\n")
    for s in sums:
        fl = s["info"].get("fill", {})
        kinds = ", ".join(f"{k} {v['count']} × {v['avg_bytes']} B" for k, v in fl.get("kinds", {}).items())
        L.append(f"- {s['case']}: {fl.get('keys')} keys, {fl.get('logical_bytes', 0) / MiB:.0f} MiB of keys+values, "
                 f"db {fl.get('db_size', 0) / MiB:.0f} MiB, filled in {fl.get('seconds', 0):.0f} s "
                 f"({fl.get('mib_per_s', 0):.0f} MiB/s); {kinds}")

    L.append("\n## Where the time goes (medians per stage, from the actions' own timed log lines)\n")
    for s in sums:
        for title, key in [("snapshot action", "snapshot_stages"), ("restore action", "restore_stages"),
                           ("reference restore", "ref_stages")]:
            rows = s[key]
            if not rows:
                continue
            parts = [f"{label} {med([r[label] for r in rows]):.2f} s" for label in rows[0]]
            L.append(f"- {s['case']}, {title}: " + "; ".join(parts))
    L.append("")
    for s in sums:
        for p in s.get("profiles", []):
            L.append(f"\n### Profile: {s['case']}, {p['what']} ({p['wall_s']:.1f} s wall; "
                     "perf record -F 999 of dispatch and its children, on-CPU samples)\n")
            L.append("```")
            L.extend(p["top"])
            L.append("```")

    L.append("\n## All runs (seconds)\n")
    L.append("```")
    for s in sums:
        for k, v in s["runs"].items():
            L.append(f"{s['case']:12} {k:8} " + " ".join(f"{x:.2f}" for x in v))
    L.append("```")
    return "\n".join(L) + "\n", sums, mach


def main():
    env = Env()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()
    cases = [Case(env, "k8s", s) for s in env.sizes] + [Case(env, "random", s) for s in env.random_sizes]
    perf_ok = shutil.which("perf") is not None and env.profile != "0"
    biggest = max((c for c in cases if c.kind == "k8s"), key=lambda c: c.bytes, default=None)
    for c in cases:
        c.run(want_profile=perf_ok and (c is biggest or env.profile == "all"))
        s = c.summary()
        log(f"case {c.name}: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in s["medians"].items())
            + "; " + ", ".join(f"{k} {s[k]:.2f}" for k in ["ratio_a", "ratio_b", "ratio_d", "ratio_e", "rss_self_mib"] if k in s))
    finished = datetime.datetime.now(datetime.timezone.utc)
    md, sums, mach = write_report(env, cases, started, finished, load_before)
    with open(env.results_md, "w") as f:
        f.write(md)
    with open(os.path.splitext(env.results_md)[0].replace("RESULTS", "results") + ".json", "w") as f:
        json.dump({"command": env.command, "started": started.isoformat(), "machine": mach,
                   "cases": sums}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
