{{/* The secret variables every Drivetrain process reads (docs/deploy.md). */}}
{{- define "drivetrain.secretEnv" -}}
- name: DRIVETRAIN_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.secretName }}, key: database-url}}
- name: DRIVETRAIN_AUTH_SECRET
  valueFrom: {secretKeyRef: {name: {{ .Values.secretName }}, key: auth-secret}}
- name: DRIVETRAIN_AUDIT_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.secretName }}, key: audit-key}}
- name: DRIVETRAIN_BROKER_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.secretName }}, key: broker-password}}
- name: DRIVETRAIN_METRICS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ .Values.secretName }}, key: metrics-token}}
{{- end }}
{{/* The cloud signing key, mounted from the secret. */}}
{{- define "drivetrain.cloudKeyVolume" -}}
- name: cloud-key
  secret:
    secretName: {{ .Values.secretName }}
    items:
      - {key: cloud-signing.pem, path: cloud-signing.pem}
{{- end }}
