{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "abliterate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name for every object. */}}
{{- define "abliterate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "abliterate.labels" -}}
app.kubernetes.io/name: {{ include "abliterate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels (stable across upgrades). */}}
{{- define "abliterate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "abliterate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "abliterate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "abliterate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "abliterate.s3SecretName" -}}
{{- default (printf "%s-s3" (include "abliterate.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{- define "abliterate.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s-nats:4222" (include "abliterate.fullname" .) -}}
{{- else -}}
{{- required "nats.externalUrl is required when nats.enabled is false" .Values.nats.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "abliterate.s3Endpoint" -}}
{{- if .Values.minio.enabled -}}
{{- printf "http://%s-minio:9000" (include "abliterate.fullname" .) -}}
{{- else -}}
{{- required "s3.endpoint is required when minio.enabled is false" .Values.s3.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "abliterate.workloadNamespace" -}}
{{- default .Release.Namespace .Values.workloadNamespace -}}
{{- end -}}
