{{/*
Names, labels and the few fixed facts about each component.

Templates that work on one component pass a context dict:
  (dict "root" $ "name" "order" "c" .Values.components.order)
*/}}

{{/* The chart name, overridable. */}}
{{- define "orderly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name. Component suffixes ("-inventory", "-migrate") are
at most 10 characters, so the base is cut to 52 to keep names within 63.
*/}}
{{- define "orderly.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "orderly-0.1.0", for the helm.sh/chart label. */}}
{{- define "orderly.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. Takes the root context. */}}
{{- define "orderly.labels" -}}
helm.sh/chart: {{ include "orderly.chart" . }}
app.kubernetes.io/name: {{ include "orderly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "orderly.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: orderly
{{- end }}

{{/* The name of one component's objects: "<release>-orderly-order". */}}
{{- define "orderly.componentName" -}}
{{- printf "%s-%s" (include "orderly.fullname" .root) .name }}
{{- end }}

{{/* Selector labels of one component; never change them after release. */}}
{{- define "orderly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderly.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Labels on one component's objects. */}}
{{- define "orderly.componentLabels" -}}
{{ include "orderly.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "orderly.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{/* The image reference. Takes the root context. */}}
{{- define "orderly.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "orderly.imageTag" .) }}
{{- end }}

{{/* The ServiceAccount the components run as. */}}
{{- define "orderly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "orderly.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
What the chart knows about each component and values do not change: the
gRPC service name its health reports on (DESIGN §7) and the prefix of its
ORDERLY_<PREFIX>_GRPC_ADDR / _METRICS_ADDR variables.
*/}}
{{- define "orderly.componentFacts" -}}
order:
  healthService: orderly.v1.OrderService
  envPrefix: ORDER
inventory:
  healthService: orderly.v1.InventoryService
  envPrefix: INVENTORY
payment:
  healthService: orderly.v1.PaymentService
  envPrefix: PAYMENT
query:
  healthService: orderly.v1.QueryService
  envPrefix: QUERY
relay:
  healthService: orderly.v1.RelayAdmin
  envPrefix: RELAY
{{- end }}

{{/* The facts of the component named in the context, as a dict. */}}
{{- define "orderly.facts" -}}
{{- $all := include "orderly.componentFacts" . | fromYaml }}
{{- if not (hasKey $all .name) }}
{{- fail (printf "components.%s: unknown component (known: %s)" .name (keys $all | sortAlpha | join ", ")) }}
{{- end }}
{{- get $all .name | toYaml }}
{{- end }}

{{/*
The non-secret ORDERLY_* settings, shared by the ConfigMap the components
read and the one the migration hook reads, so both always agree. Listener
addresses bind every interface on the configured ports.
*/}}
{{- define "orderly.configData" -}}
{{- $v := .Values -}}
ORDERLY_DATABASE_POOL_SIZE: {{ $v.database.poolSize | int | quote }}
{{- if not $v.redis.existingSecret }}
ORDERLY_REDIS_URL: {{ $v.redis.url | quote }}
{{- end }}
ORDERLY_REDIS_POOL_SIZE: {{ $v.redis.poolSize | int | quote }}
ORDERLY_REDIS_KEY_PREFIX: {{ $v.redis.keyPrefix | quote }}
ORDERLY_KAFKA_BROKERS: {{ $v.kafka.brokers | quote }}
ORDERLY_KAFKA_TOPIC_PREFIX: {{ $v.kafka.topicPrefix | quote }}
ORDERLY_KAFKA_TOPIC_PARTITIONS: {{ $v.kafka.topicPartitions | int | quote }}
ORDERLY_KAFKA_REPLICATION_FACTOR: {{ $v.kafka.replicationFactor | int | quote }}
ORDERLY_KAFKA_FETCH_WAIT_MS: {{ $v.kafka.fetchWaitMs | int | quote }}
{{- with $v.kafka.securityProtocol }}
ORDERLY_KAFKA_SECURITY_PROTOCOL: {{ . | quote }}
{{- end }}
{{- with $v.kafka.sasl.mechanism }}
ORDERLY_KAFKA_SASL_MECHANISM: {{ . | quote }}
{{- end }}
{{- range $name, $value := $v.kafka.properties }}
ORDERLY_KAFKA_PROPERTY_{{ $name | replace "_" "__" | replace "." "_" | upper }}: {{ $value | toString | quote }}
{{- end }}
ORDERLY_CONSUMER_LEASE_TTL_MS: {{ $v.consumer.leaseTtlMs | int | quote }}
ORDERLY_CONSUMER_ON_LOG_RESET: {{ $v.consumer.onLogReset | quote }}
ORDERLY_CONSUMER_DEAD_LETTER_ATTEMPTS: {{ $v.consumer.deadLetterAttempts | int | quote }}
ORDERLY_CONSUMER_DEDUPE_RETENTION_HOURS: {{ $v.consumer.dedupeRetentionHours | int | quote }}
ORDERLY_CONSUMER_GATHER_MS: {{ $v.consumer.gatherMs | int | quote }}
ORDERLY_GRPC_REQUEST_TIMEOUT_MS: {{ $v.grpc.requestTimeoutMs | int | quote }}
ORDERLY_GRPC_CONCURRENCY_LIMIT: {{ $v.grpc.concurrencyLimit | int | quote }}
ORDERLY_GRPC_MAX_MESSAGE_BYTES: {{ $v.grpc.maxMessageBytes | int | quote }}
ORDERLY_GRPC_MAX_STREAMS_PER_CONNECTION: {{ $v.grpc.maxStreamsPerConnection | int | quote }}
ORDERLY_GRPC_KEEPALIVE_INTERVAL_MS: {{ $v.grpc.keepaliveIntervalMs | int | quote }}
ORDERLY_GRPC_KEEPALIVE_TIMEOUT_MS: {{ $v.grpc.keepaliveTimeoutMs | int | quote }}
ORDERLY_SAGA_PAYMENT_DEADLINE_MS: {{ $v.saga.paymentDeadlineMs | int | quote }}
ORDERLY_SAGA_PENDING_DEADLINE_MS: {{ $v.saga.pendingDeadlineMs | int | quote }}
ORDERLY_SHUTDOWN_GRACE_MS: {{ $v.shutdownGraceMs | int | quote }}
ORDERLY_LOG: {{ $v.log.level | quote }}
ORDERLY_LOG_FORMAT: {{ $v.log.format | quote }}
{{- $facts := include "orderly.componentFacts" . | fromYaml }}
{{- range $name, $c := $v.components }}
{{- if $c.enabled }}
{{- $prefix := (get $facts $name).envPrefix }}
ORDERLY_{{ $prefix }}_GRPC_ADDR: {{ printf "0.0.0.0:%d" ($c.ports.grpc | int) | quote }}
ORDERLY_{{ $prefix }}_METRICS_ADDR: {{ printf "0.0.0.0:%d" ($c.ports.metrics | int) | quote }}
{{- end }}
{{- end }}
{{- /* The order saga calls inventory and payment through their Services. */}}
{{- $inventory := include "orderly.componentName" (dict "root" . "name" "inventory") }}
{{- $payment := include "orderly.componentName" (dict "root" . "name" "payment") }}
{{- $scheme := ternary "https" "http" $v.tls.enabled }}
ORDERLY_SAGA_INVENTORY_URL: {{ printf "%s://%s:%d" $scheme $inventory ($v.components.inventory.ports.grpc | int) | quote }}
ORDERLY_SAGA_PAYMENT_URL: {{ printf "%s://%s:%d" $scheme $payment ($v.components.payment.ports.grpc | int) | quote }}
{{- range $key, $value := $v.extraConfig }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The Secret's data: the database URL and any secretEnv entries. */}}
{{- define "orderly.secretData" -}}
ORDERLY_DATABASE_URL: {{ required "database.url is required unless database.existingSecret is set" .Values.database.url | b64enc | quote }}
{{- range $key, $value := .Values.secretEnv }}
{{ $key }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Seconds Kubernetes waits between SIGTERM and SIGKILL: the preStop pause,
then the process's own drain (ORDERLY_SHUTDOWN_GRACE_MS, rounded up), plus
a margin for telemetry flush and exit. An explicit value must exceed the
pause plus the drain, or pods would be killed mid-drain.
*/}}
{{- define "orderly.terminationGracePeriod" -}}
{{- $v := .root.Values }}
{{- $drain := div (add ($v.shutdownGraceMs | int64) 999) 1000 }}
{{- $needed := add $drain ($v.preStopSleepSeconds | int64) }}
{{- if kindIs "invalid" .c.terminationGracePeriodSeconds }}
{{- add $needed 10 }}
{{- else if le (.c.terminationGracePeriodSeconds | int64) $needed }}
{{- fail (printf "components.%s.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds plus shutdownGraceMs in seconds (%d)" .name (.c.terminationGracePeriodSeconds | int64) $needed) }}
{{- else }}
{{- .c.terminationGracePeriodSeconds | int64 }}
{{- end }}
{{- end }}

{{/*
Replicas a component is expected to keep: the HPA's floor when autoscaling,
else replicas. Decides whether a PodDisruptionBudget makes sense.
*/}}
{{- define "orderly.minReplicas" -}}
{{- if .c.autoscaling.enabled }}
{{- .c.autoscaling.minReplicas | int }}
{{- else }}
{{- .c.replicas | int }}
{{- end }}
{{- end }}

{{/* A per-component setting, else the chart-wide one. */}}
{{- define "orderly.pick" -}}
{{- $own := get .c .key }}
{{- if $own }}
{{- toYaml $own }}
{{- else }}
{{- $global := get .root.Values .key }}
{{- if $global }}
{{- toYaml $global }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the bearer tokens. */}}
{{- define "orderly.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "orderly.fullname" .)) }}
{{- end }}

{{/*
One role's tokens for the chart's auth Secret, base64: the given list (one
token a line), else what the Secret already holds, else a generated token.
*/}}
{{- define "orderly.tokenData" -}}
{{- if .given }}
{{- join "\n" .given | b64enc | quote }}
{{- else if .existing }}
{{- .existing | quote }}
{{- else }}
{{- randAlphaNum 48 | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Where the token files and the TLS files are mounted. */}}
{{- define "orderly.authDir" -}}/etc/orderly/auth{{- end }}
{{- define "orderly.tlsDir" -}}/etc/orderly/tls{{- end }}

{{/*
Managed stores: CA bundles, client certificates and credentials from
existing Secrets, each mounted read-only under its own directory. One list
of (volume, Secret, items, env) drives the env entries, mounts and volumes
of the components and the migration hook alike.
*/}}
{{- define "orderly.storesDir" -}}/etc/orderly/stores{{- end }}
{{- define "orderly.storeSecrets" -}}
{{- $v := .Values -}}
{{- $dir := include "orderly.storesDir" . -}}
{{- if $v.database.caSecret }}
- volume: postgres-ca
  secret: {{ $v.database.caSecret }}
  files: {ORDERLY_DATABASE_CA_FILE: {{ $v.database.caSecretKey | quote }}}
{{- end }}
{{- if $v.redis.caSecret }}
- volume: redis-ca
  secret: {{ $v.redis.caSecret }}
  files: {ORDERLY_REDIS_CA_FILE: {{ $v.redis.caSecretKey | quote }}}
{{- end }}
{{- if $v.redis.clientCertSecret }}
- volume: redis-client
  secret: {{ $v.redis.clientCertSecret }}
  files: {ORDERLY_REDIS_CERT_FILE: tls.crt, ORDERLY_REDIS_KEY_FILE: tls.key}
{{- end }}
{{- if $v.kafka.caSecret }}
- volume: kafka-ca
  secret: {{ $v.kafka.caSecret }}
  files: {ORDERLY_KAFKA_CA_FILE: {{ $v.kafka.caSecretKey | quote }}}
{{- end }}
{{- if $v.kafka.clientCertSecret }}
- volume: kafka-client
  secret: {{ $v.kafka.clientCertSecret }}
  files: {ORDERLY_KAFKA_CERT_FILE: tls.crt, ORDERLY_KAFKA_KEY_FILE: tls.key}
{{- end }}
{{- if $v.kafka.sasl.existingSecret }}
- volume: kafka-sasl
  secret: {{ $v.kafka.sasl.existingSecret }}
  files:
    ORDERLY_KAFKA_SASL_USERNAME_FILE: {{ $v.kafka.sasl.usernameKey | quote }}
    ORDERLY_KAFKA_SASL_PASSWORD_FILE: {{ $v.kafka.sasl.passwordKey | quote }}
{{- end }}
{{- end }}

{{/* The env entries pointing at the mounted store files (and the Redis URL). */}}
{{- define "orderly.storeEnv" -}}
{{- $dir := include "orderly.storesDir" . -}}
{{- if .Values.redis.existingSecret }}
- name: ORDERLY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- end }}
{{- range (include "orderly.storeSecrets" . | fromYamlArray) }}
{{- $volume := .volume }}
{{- range $env, $key := .files }}
- name: {{ $env }}
  value: {{ printf "%s/%s/%s" $dir $volume $key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "orderly.storeMounts" -}}
{{- $dir := include "orderly.storesDir" . -}}
{{- range (include "orderly.storeSecrets" . | fromYamlArray) }}
- name: {{ .volume }}
  mountPath: {{ printf "%s/%s" $dir .volume }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "orderly.storeVolumes" -}}
{{- range (include "orderly.storeSecrets" . | fromYamlArray) }}
- name: {{ .volume }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      {{- range $env, $key := .files }}
      - key: {{ $key }}
        path: {{ $key }}
      {{- end }}
{{- end }}
{{- end }}
