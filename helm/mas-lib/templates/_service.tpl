{{/*
Two Services. The ClusterIP one carries every port (gRPC, admin, HTTP) and is what the
ServiceMonitor scrapes (label mas-metrics) and the Ingress routes to. The headless one
(`<fullname>-headless`, gRPC only) is what other services put in their *_GRPC_URL: the kit's
gRPC client re-resolves its DNS and balances across every ready replica (DESIGN §4), which a
ClusterIP cannot do for long-lived HTTP/2 connections.
*/}}
{{- define "mas-lib.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mas-lib.fullname" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
    mas-metrics: "true"
    mas-job: {{ printf "mas-%s" (include "mas-lib.masService" .) }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  {{- with .Values.service.sessionAffinity }}
  sessionAffinity: {{ . }}
  {{- if eq . "ClientIP" }}
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: {{ $.Values.service.sessionAffinityTimeoutSeconds | default 10800 }}
  {{- end }}
  {{- end }}
  selector:
    {{- include "mas-lib.selectorLabels" . | nindent 4 }}
  ports:
    {{- if .Values.ports.grpc }}
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- end }}
    - name: admin
      port: {{ .Values.ports.admin }}
      targetPort: admin
      protocol: TCP
      appProtocol: http
    {{- if .Values.ports.http }}
    - name: http
      port: {{ .Values.service.httpPort | default .Values.ports.http }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- if .Values.ports.grpc }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mas-lib.headlessName" . }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  publishNotReadyAddresses: false
  selector:
    {{- include "mas-lib.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
{{- end }}
{{- end }}
