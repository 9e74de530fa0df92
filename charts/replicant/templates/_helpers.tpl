{{/* The release's name, shortened to what Kubernetes allows in a name. */}}
{{- define "replicant.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "replicant.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "replicant.labels" -}}
{{ include "replicant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "replicant.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "replicant.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "replicant.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "replicant.configMapName" -}}
{{- default (printf "%s-config" (include "replicant.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{- define "replicant.googleSecretName" -}}
{{- if .Values.googleApplicationCredentials -}}
{{- printf "%s-google" (include "replicant.fullname" .) -}}
{{- else -}}
{{- .Values.googleApplicationCredentialsSecret.name -}}
{{- end -}}
{{- end -}}

{{- define "replicant.googleSecretKey" -}}
{{- if .Values.googleApplicationCredentials -}}
key.json
{{- else -}}
{{- .Values.googleApplicationCredentialsSecret.key | default "key.json" -}}
{{- end -}}
{{- end -}}

{{- define "replicant.dockerSecretName" -}}
{{- if .Values.dockerConfig.json -}}
{{- printf "%s-docker" (include "replicant.fullname" .) -}}
{{- else -}}
{{- .Values.dockerConfig.existingSecret -}}
{{- end -}}
{{- end -}}
