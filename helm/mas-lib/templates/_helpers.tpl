{{/*
Names, labels and small helpers shared by every MAS service chart.

A service chart sets `serviceName` (the MAS service name: what `mas migrate <service>` takes and what
the `mas-<service>` Prometheus job is called); the Kubernetes object names come from the release
(`helm install identity helm/identity` gives `identity` and `identity-headless`).
*/}}

{{- define "mas-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The MAS service name (identity, gateway, notifier, meetings-signalling). */}}
{{- define "mas-lib.masService" -}}
{{- default .Chart.Name .Values.serviceName }}
{{- end }}

{{- define "mas-lib.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "mas-lib.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service gRPC clients resolve to balance across every replica (DESIGN §4). */}}
{{- define "mas-lib.headlessName" -}}
{{- printf "%s-headless" (include "mas-lib.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "mas-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mas-lib.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mas-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "mas-lib.labels" -}}
app.kubernetes.io/name: {{ include "mas-lib.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "mas-lib.commonLabels" . }}
{{- end }}

{{/* The labels that are not part of any selector. */}}
{{- define "mas-lib.commonLabels" -}}
helm.sh/chart: {{ include "mas-lib.chart" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mas
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What the Services select: the serving pods only (never the migration Job's pod). */}}
{{- define "mas-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mas-lib.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "mas-lib.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
A value as an environment string. Helm reads YAML numbers as float64, which would print
2592000 as 2.592e+06; whole numbers are printed as integers instead.
*/}}
{{- define "mas-lib.envString" -}}
{{- if kindIs "float64" . }}
{{- if eq (float64 (int64 .)) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "invalid" . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* The listen addresses the kit reads, from the ports (they are not left to the ConfigMap). */}}
{{- define "mas-lib.portEnv" -}}
{{- if .Values.ports.grpc }}
- name: GRPC_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.ports.grpc) | quote }}
{{- end }}
- name: ADMIN_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.ports.admin) | quote }}
{{- if .Values.ports.http }}
- name: {{ required "ports.httpEnv names the variable of the HTTP listen address" .Values.ports.httpEnv }}
  value: {{ printf "0.0.0.0:%d" (int .Values.ports.http) | quote }}
{{- end }}
{{- end }}

{{/* Secret references: `secretEnv: {VAR: {secret: name, key: key, optional: bool}}`. */}}
{{- define "mas-lib.secretEnv" -}}
{{- range $var, $ref := .Values.secretEnv }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secretEnv.%s.secret is required" $var) $ref.secret }}
      key: {{ required (printf "secretEnv.%s.key is required" $var) $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* The container security context: non-root, read-only root, no privileges, no capabilities. */}}
{{- define "mas-lib.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}
