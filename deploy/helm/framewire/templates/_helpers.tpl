{{/* Names, labels and the pieces every framewire pod shares. */}}

{{- define "framewire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; leaves room for the longest suffix (-sender-<group>-credentials). */}}
{{- define "framewire.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 30 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "framewire.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "framewire.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: framewire
{{- end }}

{{- define "framewire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "framewire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "framewire.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Service names. */}}
{{- define "framewire.httpReceiver" -}}{{ include "framewire.fullname" . }}-http-receiver{{- end }}
{{- define "framewire.httpReceiverPeers" -}}{{ include "framewire.fullname" . }}-http-receiver-peers{{- end }}
{{- define "framewire.redisReceiver" -}}{{ include "framewire.fullname" . }}-redis-receiver{{- end }}
{{- define "framewire.redis" -}}{{ include "framewire.fullname" . }}-redis{{- end }}
{{- define "framewire.sender" -}}{{ include "framewire.fullname" . }}-sender{{- end }}
{{- define "framewire.secret" -}}{{ include "framewire.fullname" . }}{{- end }}

{{/* The Secret and key holding the Redis password. */}}
{{- define "framewire.redisPasswordRef" -}}
{{- $r := .Values.redis }}
{{- if $r.external.url }}
{{- if $r.external.existingSecret }}
name: {{ $r.external.existingSecret }}
key: {{ $r.external.existingSecretKey }}
{{- else if $r.external.password }}
name: {{ include "framewire.secret" . }}
key: redis-password
{{- end }}
{{- else if $r.existingSecret }}
name: {{ $r.existingSecret }}
key: {{ $r.existingSecretKey }}
{{- else }}
name: {{ include "framewire.secret" . }}
key: redis-password
{{- end }}
{{- end }}

{{/*
The Redis URL as the services read it. The password is never in a manifest: REDIS_PASSWORD
comes from the Secret and Kubernetes expands $(REDIS_PASSWORD) in the URL.
*/}}
{{- define "framewire.redisUrl" -}}
{{- $r := .Values.redis }}
{{- $auth := "" }}
{{- if include "framewire.redisPasswordRef" . }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $r.external.username }}
{{- end }}
{{- if $r.external.url }}
{{- regexReplaceAll "^(rediss?)://" $r.external.url (printf "${1}://%s" $auth) }}
{{- else }}
{{- printf "redis://%s%s:6379/0" $auth (include "framewire.redis" .) }}
{{- end }}
{{- end }}

{{- define "framewire.redisCaMounted" -}}
{{- if and .Values.redis.external.url (or .Values.redis.external.caCert .Values.redis.external.caSecret) }}true{{ end }}
{{- end }}

{{/* Env entries for Redis: the password, the URL, the cluster's seed nodes and the CA. */}}
{{- define "framewire.redisEnv" -}}
{{- with include "framewire.redisPasswordRef" . | trim }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- . | nindent 6 }}
{{- end }}
- name: FRAMEWIRE_REDIS_URL
  value: {{ include "framewire.redisUrl" . | quote }}
{{- if and .Values.redis.external.url .Values.redis.external.cluster }}
- name: FRAMEWIRE_REDIS_CLUSTER
  value: {{ .Values.redis.external.cluster | quote }}
{{- end }}
{{- if include "framewire.redisCaMounted" . }}
- name: FRAMEWIRE_REDIS_CA_CERT
  value: /etc/framewire/redis-ca/ca.crt
{{- end }}
{{- end }}

{{- define "framewire.redisCaVolume" -}}
{{- if include "framewire.redisCaMounted" . }}
- name: redis-ca
  secret:
    secretName: {{ .Values.redis.external.caSecret | default (printf "%s-redis-ca" (include "framewire.fullname" .)) }}
    items:
      - key: {{ if .Values.redis.external.caSecret }}{{ .Values.redis.external.caSecretKey }}{{ else }}ca.crt{{ end }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "framewire.redisCaMount" -}}
{{- if include "framewire.redisCaMounted" . }}
- name: redis-ca
  mountPath: /etc/framewire/redis-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "framewire.tokenEnv" -}}
- name: FRAMEWIRE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingTokenSecret | default (include "framewire.secret" .) }}
      key: token
{{- end }}

{{/* FRAMEWIRE_* settings from a values map, then raw EnvVar entries. */}}
{{- define "framewire.extraEnv" -}}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod-level fields every framewire pod shares. */}}
{{- define "framewire.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "framewire.containerCommon" -}}
image: {{ include "framewire.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{- define "framewire.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "framewire.metricsAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Refuse what the schema cannot see: names and camera ids used twice. */}}
{{- define "framewire.checks" -}}
{{- $groups := dict }}
{{- $ids := dict }}
{{- range .Values.cameras }}
{{- if hasKey $groups .name }}
{{- fail (printf "cameras: the group name %q is used twice" .name) }}
{{- end }}
{{- $_ := set $groups .name true }}
{{- range .cameras }}
{{- if hasKey $ids .id }}
{{- fail (printf "cameras: the camera id %q is used twice (a camera belongs to one group)" .id) }}
{{- end }}
{{- $_ := set $ids .id true }}
{{- if regexMatch "://[^/@:]*:[^$/@][^/@]*@" (toString .source) }}
{{- fail (printf "cameras: camera %q: a password in its source; write ${NAME} there and give NAME in the group's credentials or credentialsFrom" .id) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not (or .Values.receivers.http.enabled .Values.receivers.redis.enabled) }}
{{- fail "receivers: enable the HTTP receiver, the Redis receiver or both (the senders need somewhere to send)" }}
{{- end }}
{{- if and .Values.redis.external.caCert .Values.redis.external.caSecret }}
{{- fail "redis.external: give caCert or caSecret, not both" }}
{{- end }}
{{- if and (not .Values.redis.external.url) (or .Values.redis.external.caCert .Values.redis.external.caSecret) }}
{{- fail "redis.external.caCert/caSecret need redis.external.url" }}
{{- end }}
{{- if and (not .Values.redis.external.url) .Values.redis.external.cluster }}
{{- fail "redis.external.cluster needs redis.external.url (one of the cluster's nodes)" }}
{{- end }}
{{- end }}
