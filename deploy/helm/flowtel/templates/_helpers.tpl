{{/* Common names and labels. */}}
{{- define "flowtel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flowtel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "flowtel.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "flowtel.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flowtel.labels" -}}
app.kubernetes.io/name: {{ include "flowtel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "flowtel.agentSelector" -}}
app.kubernetes.io/name: {{ include "flowtel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "flowtel.gatewaySelector" -}}
app.kubernetes.io/name: {{ include "flowtel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "flowtel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flowtel.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the agents send OTLP: the chart's gateway, else .Values.otlpEndpoint. */}}
{{- define "flowtel.otlpEndpoint" -}}
{{- if .Values.otlpEndpoint -}}
{{- .Values.otlpEndpoint -}}
{{- else if .Values.gateway.enabled -}}
{{- printf "http://%s-gateway.%s.svc.%s:4317" (include "flowtel.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- fail "set otlpEndpoint, or gateway.enabled=true" -}}
{{- end -}}
{{- end -}}

{{/* The agent config: the preset of files/ (none: nothing) with .Values.config merged over it. */}}
{{- define "flowtel.agentConfig" -}}
{{- $preset := dict -}}
{{- if ne .Values.configPreset "none" -}}
{{- $preset = .Files.Get (printf "files/flowtel-%s.yaml" .Values.configPreset) | fromYaml -}}
{{- end -}}
{{- toYaml (mergeOverwrite $preset (deepCopy .Values.config)) -}}
{{- end -}}
