{{/* Common names and labels. */}}
{{- define "reelplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "reelplane.serviceName" -}}
{{- printf "%s-%s" (include "reelplane.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reelplane.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "reelplane.labels" -}}
{{ include "reelplane.selectorLabels" . }}
app.kubernetes.io/component: {{ .component | default "service" }}
app.kubernetes.io/part-of: reelplane
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "reelplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "reelplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "reelplane.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Where the gateway routes each other enabled service (JSON for REELPLANE_SERVICE_URLS). */}}
{{- define "reelplane.serviceUrls" -}}
{{- $root := . -}}
{{- $urls := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- if and $svc.enabled (ne $name "gateway") -}}
{{- $_ := set $urls $name (printf "http://%s" (include "reelplane.serviceName" (dict "root" $root "name" $name))) -}}
{{- end -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/* The Secret every service Pod reads: one made elsewhere, or the one this chart creates. */}}
{{- define "reelplane.secretName" -}}
{{- .Values.secrets.existingSecret | default .Values.secrets.name -}}
{{- end -}}

{{/* The settings every Reelplane container reads: the ConfigMap and the Secret (envFrom). */}}
{{- define "reelplane.settingsEnvFrom" -}}
- configMapRef:
    name: {{ .Values.settings.configMapName }}
- secretRef:
    name: {{ include "reelplane.secretName" . }}
    optional: {{ .Values.secrets.optional }}
{{- end -}}
