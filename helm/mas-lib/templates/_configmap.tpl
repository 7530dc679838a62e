{{/*
The service's non-secret environment (`config:`), loaded with envFrom. Secrets never go here:
they are referenced with `secretEnv` (secretKeyRef) or `envFromSecrets`.
*/}}
{{- define "mas-lib.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "mas-lib.fullname" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
data:
  {{- range $k, $v := .Values.config }}
  {{- if not (kindIs "invalid" $v) }}
  {{ $k }}: {{ include "mas-lib.envString" $v | quote }}
  {{- end }}
  {{- end }}
{{- end }}
