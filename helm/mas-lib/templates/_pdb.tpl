{{/* PodDisruptionBudget (policy/v1): voluntary evictions (node drains) keep replicas serving. */}}
{{- define "mas-lib.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "mas-lib.fullname" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) }}
  minAvailable: {{ .Values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "mas-lib.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
