{{/*
The migration Job: `mas migrate <service>` as a pre-install and pre-upgrade hook, so the schema is
current before any new replica starts. Hooks run before the release's own objects exist, so the
environment is written inline here (not from the chart's ConfigMap), and the Secrets it references
must exist before the install (see helm/README.md). A failed Job fails the install or upgrade and
is kept for `kubectl logs`; the next attempt replaces it.
*/}}
{{- define "mas-lib.migrationJob" -}}
{{- if .Values.migration.enabled }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-migrate" (include "mas-lib.fullname" . | trunc 52 | trimSuffix "-") }}
  labels:
    {{- include "mas-lib.labels" . | nindent 4 }}
    app.kubernetes.io/component: migration
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ .Values.migration.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.migration.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ include "mas-lib.name" . }}
        app.kubernetes.io/instance: {{ .Release.Name }}
        app.kubernetes.io/component: migration
        {{- include "mas-lib.commonLabels" . | nindent 8 }}
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      containers:
        - name: migrate
          image: {{ include "mas-lib.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command: ["/usr/local/bin/mas", "migrate", {{ include "mas-lib.masService" . | quote }}]
          {{- with .Values.envFromSecrets }}
          envFrom:
            {{- range . }}
            - secretRef:
                name: {{ . }}
            {{- end }}
          {{- end }}
          env:
            {{- range $k, $v := .Values.config }}
            {{- if not (kindIs "invalid" $v) }}
            - name: {{ $k }}
              value: {{ include "mas-lib.envString" $v | quote }}
            {{- end }}
            {{- end }}
            {{- include "mas-lib.secretEnv" . | trim | nindent 12 }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml .Values.migration.resources | nindent 12 }}
          securityContext:
            {{- include "mas-lib.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}
