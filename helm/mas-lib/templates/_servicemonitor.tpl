{{/*
ServiceMonitor (Prometheus Operator, monitoring.coreos.com/v1): scrapes `/metrics` on the admin
port. `jobLabel: mas-job` names the job `mas-<service>` (the Service carries that label), which
is what deploy/prometheus/alerts.yml matches (`up{job=~"mas-.*"}`).
*/}}
{{- define "mas-lib.servicemonitor" -}}
{{- if .Values.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "mas-lib.fullname" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
    {{- with .Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: mas-job
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ include "mas-lib.name" . }}
      app.kubernetes.io/instance: {{ .Release.Name }}
      mas-metrics: "true"
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  endpoints:
    - port: admin
      path: /metrics
      scheme: http
      # The services label every series with `service` themselves; keep it (the operator's
      # own `service` target label would otherwise rename ours to exported_service).
      honorLabels: true
      interval: {{ .Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .Values.serviceMonitor.scrapeTimeout }}
      {{- with .Values.serviceMonitor.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}
