{{/* The pods' own ServiceAccount; the services never call the Kubernetes API, so no token. */}}
{{- define "mas-lib.serviceaccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "mas-lib.serviceAccountName" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}
