//! Kubernetes-like objects as the API server stores them in etcd (JSON):
//! pods, configmaps, secrets and events under `/registry/<kind>/<ns>/<name>`,
//! with the sizes and the repetition of a real cluster's data, so that the
//! snapshot compresses the way a real one does.
//!
//! The mix, by count: 45% events (~1 KB), 35% pods (3–8 KB: labels,
//! annotations, managedFields, spec, status), 10% configmaps (1–50 KB,
//! log-uniform: config files), 10% secrets (base64 of random bytes; 1% of
//! them are 10–60 KB Helm release blobs). Names, UIDs, hashes, IPs and
//! tokens are random; field names, images and vocabulary repeat.

use std::fmt::Write as _;

use crate::rng::Rng;

const NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "monitoring",
    "logging",
    "ingress-nginx",
    "cert-manager",
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "team-a",
    "team-b",
    "staging",
    "data-pipeline",
    "ml-serving",
    "argocd",
    "istio-system",
    "backstage",
];

const APPS: &[&str] = &[
    "nginx",
    "redis",
    "api-gateway",
    "payments-api",
    "frontend",
    "worker",
    "postgres",
    "kafka-broker",
    "prometheus",
    "grafana",
    "coredns",
    "ingress-nginx-controller",
    "cert-manager-webhook",
    "metrics-server",
    "fluent-bit",
    "orders",
    "inventory",
    "notification-service",
    "auth-proxy",
    "search-indexer",
    "recommendation",
    "session-store",
    "image-resizer",
    "billing-cron",
];

const REGISTRIES: &[&str] = &[
    "registry.k8s.io",
    "docker.io/library",
    "quay.io/prometheus",
    "ghcr.io/acme-corp",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform",
];

const ENV_NAMES: &[&str] = &[
    "LOG_LEVEL",
    "ENVIRONMENT",
    "HTTP_PORT",
    "GRPC_PORT",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "JAVA_OPTS",
    "GOMAXPROCS",
    "FEATURE_FLAGS",
    "CACHE_TTL_SECONDS",
    "MAX_CONNECTIONS",
    "AWS_REGION",
    "S3_BUCKET",
    "SENTRY_DSN",
    "API_TOKEN_SECRET_NAME",
    "POD_NAME",
    "POD_NAMESPACE",
];

const WORDS: &[&str] = &[
    "server",
    "client",
    "timeout",
    "retries",
    "buffer",
    "cache",
    "enabled",
    "listen",
    "upstream",
    "backend",
    "worker",
    "pool",
    "max",
    "min",
    "interval",
    "path",
    "level",
    "format",
    "json",
    "metrics",
    "tracing",
    "sampler",
    "endpoint",
    "replicas",
    "threshold",
    "window",
    "shards",
    "compression",
    "keepalive",
    "proxy",
    "headers",
    "ssl",
    "certificate",
    "rules",
    "alert",
    "expr",
    "for",
    "labels",
    "severity",
    "annotations",
    "summary",
];

const REASONS: &[(&str, &str, &str)] = &[
    ("Scheduled", "Normal", "Successfully assigned {ns}/{pod} to {node}"),
    (
        "Pulling",
        "Normal",
        "Pulling image \"{image}\"",
    ),
    (
        "Pulled",
        "Normal",
        "Successfully pulled image \"{image}\" in 2.31s (2.31s including waiting)",
    ),
    ("Created", "Normal", "Created container {c}"),
    ("Started", "Normal", "Started container {c}"),
    (
        "Unhealthy",
        "Warning",
        "Readiness probe failed: Get \"http://{ip}:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    ),
    (
        "BackOff",
        "Warning",
        "Back-off restarting failed container {c} in pod {pod}_{ns}({uid})",
    ),
    ("Killing", "Normal", "Stopping container {c}"),
];

/// What one object is, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ConfigMap,
    Secret,
    Event,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Event => "events",
        }
    }
    pub const ALL: [Kind; 4] = [Kind::Pod, Kind::ConfigMap, Kind::Secret, Kind::Event];
}

/// Makes one object after another.
pub struct Generator {
    rng: Rng,
    /// resourceVersion: grows like etcd's revision.
    rv: u64,
}

struct Meta {
    ns: &'static str,
    app: &'static str,
    name: String,
    uid: String,
    ts: String,
    node: String,
    ip: String,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            rv: 1_000_000,
        }
    }

    /// The next object: its kind, key and JSON value.
    pub fn next_object(&mut self) -> (Kind, String, String) {
        self.rv += 1 + self.rng.below(3);
        let roll = self.rng.below(100);
        let kind = match roll {
            0..=44 => Kind::Event,
            45..=79 => Kind::Pod,
            80..=89 => Kind::ConfigMap,
            _ => Kind::Secret,
        };
        let m = self.meta();
        let (name, value) = match kind {
            Kind::Pod => (m.name.clone(), self.pod(&m)),
            Kind::ConfigMap => (m.name.clone(), self.configmap(&m)),
            Kind::Secret => (m.name.clone(), self.secret(&m)),
            // An event is named after its object, plus a suffix.
            Kind::Event => self.event(&m),
        };
        let key = format!("/registry/{}/{}/{name}", kind.name(), m.ns);
        (kind, key, value)
    }

    fn ts(&mut self) -> String {
        format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.rng.range(1, 12),
            self.rng.range(1, 28),
            self.rng.below(24),
            self.rng.below(60),
            self.rng.below(60)
        )
    }

    fn meta(&mut self) -> Meta {
        let ns = *self.rng.pick(NAMESPACES);
        let app = *self.rng.pick(APPS);
        let mut name = format!("{app}-");
        self.rng.push_suffix(&mut name, 10);
        name.push('-');
        self.rng.push_suffix(&mut name, 5);
        let mut uid = String::new();
        self.rng.push_uid(&mut uid);
        let ts = self.ts();
        let node = format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            self.rng.below(16),
            self.rng.range(2, 254)
        );
        let ip = format!(
            "10.{}.{}.{}",
            self.rng.range(42, 45),
            self.rng.below(256),
            self.rng.range(2, 254)
        );
        Meta {
            ns,
            app,
            name,
            uid,
            ts,
            node,
            ip,
        }
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        self.rng.push_hex(&mut s, n);
        s
    }

    fn pod(&mut self, m: &Meta) -> String {
        let rs = m
            .name
            .rsplit_once('-')
            .map(|(a, _)| a.to_string())
            .unwrap_or_default();
        let hash = rs.rsplit('-').next().unwrap_or_default().to_string();
        let owner_uid = {
            let mut s = String::new();
            self.rng.push_uid(&mut s);
            s
        };
        let version = format!(
            "{}.{}.{}",
            self.rng.below(4),
            self.rng.below(30),
            self.rng.below(20)
        );
        let registry = *self.rng.pick(REGISTRIES);
        // Mostly 1 container; some 2, a few 3.
        let n_containers = 1 + u64::from(self.rng.chance(20)) + u64::from(self.rng.chance(3));
        let mut vol = String::new();
        self.rng.push_suffix(&mut vol, 5);
        let (ns, app, ts, ip, node) = (m.ns, m.app, &m.ts, &m.ip, &m.node);

        let mut containers = Vec::new();
        for c in 0..n_containers {
            let cname = if c == 0 {
                app.to_string()
            } else {
                ["istio-proxy", "log-shipper", "config-reloader"][c as usize % 3].to_string()
            };
            let n_env = self.rng.range(1, 6) as usize;
            let env: Vec<(&str, String)> = (0..n_env)
                .map(|i| {
                    let k = ENV_NAMES[(i * 7 + c as usize) % ENV_NAMES.len()];
                    let v = match self.rng.below(6) {
                        0 => "info".to_string(),
                        1 => "production".to_string(),
                        2 => format!("{}", self.rng.range(1, 65535)),
                        3 => format!("http://{app}.{ns}.svc.cluster.local:{}", 8080 + c),
                        4 => self.hex(32),
                        _ => format!("{}-{}", self.rng.pick(WORDS), self.rng.pick(WORDS)),
                    };
                    (k, v)
                })
                .collect();
            containers.push((cname, env, self.hex(64), self.hex(64), self.rng.below(4)));
        }

        // Annotations: some pods are scraped, some clusters run Calico.
        let mut annotations = format!(r#""kubectl.kubernetes.io/restartedAt":"{ts}""#);
        if self.rng.chance(50) {
            let _ = write!(
                annotations,
                r#","prometheus.io/scrape":"true","prometheus.io/port":"9090","checksum/config":"{}""#,
                self.hex(64)
            );
        }
        if self.rng.chance(50) {
            let _ = write!(
                annotations,
                r#","cni.projectcalico.org/containerID":"{}","cni.projectcalico.org/podIP":"{ip}/32","cni.projectcalico.org/podIPs":"{ip}/32""#,
                self.hex(64)
            );
        }
        let mut s = String::with_capacity(8192);
        let _ = write!(
            s,
            r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","generateName":"{rs}-","namespace":"{ns}","uid":"{uid}","resourceVersion":"{rv}","creationTimestamp":"{ts}","labels":{{"app.kubernetes.io/name":"{app}","app.kubernetes.io/instance":"{app}-{ns}","app.kubernetes.io/part-of":"{ns}","pod-template-hash":"{hash}","version":"v{version}"}},"annotations":{{{annotations}}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{rs}","uid":"{owner_uid}","controller":true,"blockOwnerDeletion":true}}],"managedFields":[{{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"{ts}","fieldsType":"FieldsV1","fieldsV1":{{"f:metadata":{{"f:annotations":{{".":{{}},"f:checksum/config":{{}},"f:kubectl.kubernetes.io/restartedAt":{{}},"f:prometheus.io/port":{{}},"f:prometheus.io/scrape":{{}}}},"f:generateName":{{}},"f:labels":{{".":{{}},"f:app.kubernetes.io/instance":{{}},"f:app.kubernetes.io/name":{{}},"f:app.kubernetes.io/part-of":{{}},"f:pod-template-hash":{{}},"f:version":{{}}}},"f:ownerReferences":{{".":{{}},"k:{{\"uid\":\"{owner_uid}\"}}":{{}}}}}},"f:spec":{{"f:containers":{{"#,
            name = m.name,
            uid = m.uid,
            rv = self.rv,
        );
        for (i, (cname, env, _, _, _)) in containers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#""k:{{\"name\":\"{cname}\"}}":{{".":{{}},"f:env":{{".":{{}}"#
            );
            for (k, _) in env {
                let _ = write!(
                    s,
                    r#","k:{{\"name\":\"{k}\"}}":{{".":{{}},"f:name":{{}},"f:value":{{}}}}"#
                );
            }
            s.push_str(r#"},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}"#);
        }
        let _ = write!(
            s,
            r#"}},"f:dnsPolicy":{{}},"f:enableServiceLinks":{{}},"f:restartPolicy":{{}},"f:schedulerName":{{}},"f:securityContext":{{}},"f:serviceAccount":{{}},"f:serviceAccountName":{{}},"f:terminationGracePeriodSeconds":{{}}}}}}}},{{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"{ts}","fieldsType":"FieldsV1","fieldsV1":{{"f:status":{{"f:conditions":{{"k:{{\"type\":\"ContainersReady\"}}":{{".":{{}},"f:lastProbeTime":{{}},"f:lastTransitionTime":{{}},"f:status":{{}},"f:type":{{}}}},"k:{{\"type\":\"Initialized\"}}":{{".":{{}},"f:lastProbeTime":{{}},"f:lastTransitionTime":{{}},"f:status":{{}},"f:type":{{}}}},"k:{{\"type\":\"Ready\"}}":{{".":{{}},"f:lastProbeTime":{{}},"f:lastTransitionTime":{{}},"f:status":{{}},"f:type":{{}}}}}},"f:containerStatuses":{{}},"f:hostIP":{{}},"f:phase":{{}},"f:podIP":{{}},"f:podIPs":{{".":{{}},"k:{{\"ip\":\"{ip}\"}}":{{".":{{}},"f:ip":{{}}}}}},"f:startTime":{{}}}}}},"subresource":"status"}}]}},"spec":{{"volumes":[{{"name":"kube-api-access-{vol}","projected":{{"sources":[{{"serviceAccountToken":{{"expirationSeconds":3607,"path":"token"}}}},{{"configMap":{{"name":"kube-root-ca.crt","items":[{{"key":"ca.crt","path":"ca.crt"}}]}}}},{{"downwardAPI":{{"items":[{{"path":"namespace","fieldRef":{{"apiVersion":"v1","fieldPath":"metadata.namespace"}}}}]}}}}],"defaultMode":420}}}}],"containers":["#
        );
        for (i, (cname, env, _, _, _)) in containers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let port = 8080 + i;
            let probes = if self.rng.chance(60) {
                format!(
                    r#""livenessProbe":{{"httpGet":{{"path":"/healthz","port":{port},"scheme":"HTTP"}},"initialDelaySeconds":10,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}},"readinessProbe":{{"httpGet":{{"path":"/ready","port":{port},"scheme":"HTTP"}},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3}},"#
                )
            } else {
                String::new()
            };
            let _ = write!(
                s,
                r#"{{"name":"{cname}","image":"{registry}/{cname}:{version}","ports":[{{"name":"http","containerPort":{port},"protocol":"TCP"}}],"env":["#
            );
            for (j, (k, v)) in env.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                let _ = write!(s, r#"{{"name":"{k}","value":"{v}"}}"#);
            }
            let _ = write!(
                s,
                r#"],"resources":{{"limits":{{"cpu":"{cpu}m","memory":"{mem}Mi"}},"requests":{{"cpu":"{rcpu}m","memory":"{rmem}Mi"}}}},"volumeMounts":[{{"name":"kube-api-access-{vol}","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}}],{probes}"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}}"#,
                cpu = 250 * self.rng.range(1, 8),
                mem = 128 * self.rng.range(1, 16),
                rcpu = 50 * self.rng.range(1, 5),
                rmem = 64 * self.rng.range(1, 8),
            );
        }
        let _ = write!(
            s,
            r#"],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"{app}","serviceAccount":"{app}","nodeName":"{node}","securityContext":{{}},"schedulerName":"default-scheduler","tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}},{{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}},"status":{{"phase":"Running","conditions":[{{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"{ts}"}},{{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"{ts}"}},{{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"{ts}"}},{{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"{ts}"}}],"hostIP":"10.0.{h1}.{h2}","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"startTime":"{ts}","containerStatuses":["#,
            h1 = self.rng.below(16),
            h2 = self.rng.range(2, 254),
        );
        for (i, (cname, _, image_id, container_id, restarts)) in containers.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"name":"{cname}","state":{{"running":{{"startedAt":"{ts}"}}}},"lastState":{{}},"ready":true,"restartCount":{restarts},"image":"{registry}/{cname}:{version}","imageID":"{registry}/{cname}@sha256:{image_id}","containerID":"containerd://{container_id}","started":true}}"#
            );
        }
        s.push_str(r#"],"qosClass":"Burstable"}}"#);
        s
    }

    /// Config-file text of about `size` bytes: `section.key = value` lines
    /// from a small vocabulary, numbers, and now and then a random token.
    fn config_text(&mut self, size: usize) -> String {
        let mut t = String::with_capacity(size + 128);
        while t.len() < size {
            match self.rng.below(10) {
                0 => {
                    let _ = write!(
                        t,
                        "\\n# {} {}\\n",
                        self.rng.pick(WORDS),
                        self.rng.pick(WORDS)
                    );
                }
                1 => {
                    let _ = write!(t, "{}.token = ", self.rng.pick(WORDS));
                    self.rng.push_hex(&mut t, 40);
                    t.push_str("\\n");
                }
                2..=4 => {
                    let _ = write!(
                        t,
                        "{}.{}.{} = {}\\n",
                        self.rng.pick(WORDS),
                        self.rng.pick(WORDS),
                        self.rng.pick(WORDS),
                        self.rng.range(1, 100_000)
                    );
                }
                _ => {
                    let _ = write!(
                        t,
                        "{}.{} = {}\\n",
                        self.rng.pick(WORDS),
                        self.rng.pick(WORDS),
                        self.rng.pick(WORDS)
                    );
                }
            }
        }
        t
    }

    /// `{"kind":K,"apiVersion":"v1","metadata":{…, LABELS, "managedFields":
    /// [one entry by MANAGER with FIELDS]},` (`APP` and `NS` in `labels`
    /// are replaced).
    fn head(
        &self,
        s: &mut String,
        kind: &str,
        m: &Meta,
        labels: &str,
        manager: &str,
        fields: &str,
    ) {
        let labels = labels.replace("APP", m.app).replace("NS", m.ns);
        let _ = write!(
            s,
            r#"{{"kind":"{kind}","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"{ns}","uid":"{uid}","resourceVersion":"{rv}","creationTimestamp":"{ts}",{labels}"managedFields":[{{"manager":"{manager}","operation":"Update","apiVersion":"v1","time":"{ts}","fieldsType":"FieldsV1","fieldsV1":{fields}}}]}},"#,
            name = m.name,
            ns = m.ns,
            uid = m.uid,
            rv = self.rv,
            ts = m.ts,
        );
    }

    fn configmap(&mut self, m: &Meta) -> String {
        let size = self.rng.log_uniform(1024, 50 * 1024) as usize;
        let files = 1 + self.rng.below(3) as usize;
        let mut s = String::with_capacity(size + 1024);
        self.head(
            &mut s,
            "ConfigMap",
            m,
            r#""labels":{"app.kubernetes.io/name":"APP","app.kubernetes.io/managed-by":"Helm"},"annotations":{"meta.helm.sh/release-name":"APP","meta.helm.sh/release-namespace":"NS"},"#,
            "helm",
            r#"{"f:data":{},"f:metadata":{"f:annotations":{},"f:labels":{}}}"#,
        );
        s.push_str(r#""data":{"#);
        for f in 0..files {
            if f > 0 {
                s.push(',');
            }
            let text = self.config_text(size / files);
            let _ = write!(s, r#""{}-{f}.conf":"{text}""#, self.rng.pick(WORDS));
        }
        s.push_str("}}");
        s
    }

    fn secret(&mut self, m: &Meta) -> String {
        let mut s = String::with_capacity(4096);
        let helm = self.rng.chance(1);
        let tls = !helm && self.rng.chance(30);
        let typ = if helm {
            "helm.sh/release.v1"
        } else if tls {
            "kubernetes.io/tls"
        } else {
            "Opaque"
        };
        self.head(
            &mut s,
            "Secret",
            m,
            r#""labels":{"app.kubernetes.io/name":"APP"},"#,
            "kubectl-client-side-apply",
            r#"{"f:data":{},"f:type":{}}"#,
        );
        s.push_str(r#""data":{"#);
        if helm {
            s.push_str(r#""release":""#);
            let n = self.rng.range(10 << 10, 60 << 10) as usize * 3 / 4;
            self.rng.push_base64_random(&mut s, n);
            s.push('"');
        } else if tls {
            for (i, k) in ["tls.crt", "tls.key", "ca.crt"].into_iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, r#""{k}":""#);
                // The base64 of a PEM file: itself base64 inside.
                let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
                let body = self.rng.range(400, 1200) as usize;
                self.rng.push_base64_random(&mut pem, body);
                pem.push_str("\n-----END CERTIFICATE-----\n");
                crate::rng::push_base64(&mut s, pem.as_bytes());
                s.push('"');
            }
        } else {
            let n = self.rng.range(1, 4);
            for i in 0..n {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, r#""{}-{i}":""#, self.rng.pick(WORDS));
                let len = self.rng.log_uniform(16, 2048) as usize;
                self.rng.push_base64_random(&mut s, len);
                s.push('"');
            }
        }
        let _ = write!(s, r#"}},"type":"{typ}"}}"#);
        s
    }

    fn event(&mut self, m: &Meta) -> (String, String) {
        let pod = m.name.clone();
        let ev = format!("{pod}.{}", self.hex(16));
        let (reason, typ, template) = *self.rng.pick(REASONS);
        let image = format!(
            "{}/{}:1.{}.0",
            self.rng.pick(REGISTRIES),
            m.app,
            self.rng.below(30)
        );
        let msg = template
            .replace("{ns}", m.ns)
            .replace("{pod}", &pod)
            .replace("{node}", &m.node)
            .replace("{image}", &image)
            .replace("{c}", m.app)
            .replace("{ip}", &m.ip)
            .replace("{uid}", &m.uid)
            .replace('"', "\\\"");
        let first = self.ts();
        let mut s = String::with_capacity(1200);
        let _ = write!(
            s,
            r#"{{"kind":"Event","apiVersion":"v1","metadata":{{"name":"{ev}","namespace":"{ns}","uid":"{evuid}","resourceVersion":"{rv}","creationTimestamp":"{ts}","managedFields":[{{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"{ts}","fieldsType":"FieldsV1","fieldsV1":{{"f:count":{{}},"f:firstTimestamp":{{}},"f:involvedObject":{{}},"f:lastTimestamp":{{}},"f:message":{{}},"f:reason":{{}},"f:reportingComponent":{{}},"f:reportingInstance":{{}},"f:source":{{"f:component":{{}},"f:host":{{}}}},"f:type":{{}}}}}}]}},"involvedObject":{{"kind":"Pod","namespace":"{ns}","name":"{pod}","uid":"{uid}","apiVersion":"v1","resourceVersion":"{porv}","fieldPath":"spec.containers{{{app}}}"}},"reason":"{reason}","message":"{msg}","source":{{"component":"kubelet","host":"{node}"}},"firstTimestamp":"{first}","lastTimestamp":"{ts}","count":{count},"type":"{typ}","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"{node}"}}"#,
            evuid = {
                let mut u = String::new();
                self.rng.push_uid(&mut u);
                u
            },
            ns = m.ns,
            rv = self.rv,
            ts = m.ts,
            uid = m.uid,
            porv = self.rv.saturating_sub(self.rng.below(5000)),
            app = m.app,
            node = m.node,
            count = 1 + self.rng.below(100) / 80 * self.rng.below(40),
        );
        (ev, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_json_and_sized_like_kubernetes() {
        let mut g = Generator::new(1);
        let mut sizes: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for _ in 0..4000 {
            let (kind, key, value) = g.next_object();
            let v: serde_json::Value =
                serde_json::from_str(&value).unwrap_or_else(|e| panic!("{key}: {e}\n{value}"));
            assert!(key.starts_with(&format!("/registry/{}/", kind.name())));
            assert_eq!(v["metadata"]["namespace"].as_str().map(|_| ()), Some(()));
            sizes.entry(kind.name()).or_default().push(value.len());
        }
        // (kind, min, average range, max) in bytes.
        let expect = [
            ("pods", 2500, 3000..=8500, 13_000),
            ("events", 500, 700..=1600, 2000),
            ("configmaps", 1024, 4000..=20_000, 60 << 10),
            ("secrets", 300, 1000..=8000, 90 << 10),
        ];
        for (kind, min, avg, max) in expect {
            let v = &sizes[kind];
            let (lo, hi) = (v.iter().min().unwrap(), v.iter().max().unwrap());
            let mean = v.iter().sum::<usize>() / v.len();
            eprintln!("{kind}: {lo}..{hi}, average {mean}");
            assert!(
                *lo >= min && *hi <= max && avg.contains(&mean),
                "{kind}: {lo}..{hi}, average {mean}"
            );
        }
    }
}
