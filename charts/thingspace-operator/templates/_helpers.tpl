{{/* Names, labels and the values every template derives the same way. */}}

{{- define "thingspace-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name, plus the chart name unless it already contains it; 63 characters at most (DNS label). */}}
{{- define "thingspace-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "thingspace-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "thingspace-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "thingspace-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "thingspace-operator.labels" -}}
helm.sh/chart: {{ include "thingspace-operator.chart" . }}
{{ include "thingspace-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "thingspace-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "thingspace-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the existing ServiceAccount to run as, when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "thingspace-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
A Kubernetes memory quantity (256Mi, 1Gi, 500M, 1.5G, 268435456) in bytes, as an integer string. Only
the suffixes a memory limit uses in practice are accepted; anything else fails the render, so a limit
is never silently left without its GOMEMLIMIT.
*/}}
{{- define "thingspace-operator.bytes" -}}
{{- $q := toString . }}
{{- if kindIs "float64" . }}{{/* a YAML number: toString would give 2.68435456e+08 */}}
{{- $q = printf "%.0f" . }}
{{- end }}
{{- $m := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $m $q }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $m) (not (hasKey $units $suffix)) }}
{{- fail (printf "resources.limits.memory %q: the chart derives GOMEMLIMIT from it and understands only plain bytes and the suffixes k, M, G, T, Ki, Mi, Gi, Ti (or set goMemLimitPercent: 0)" $q) }}
{{- end }}
{{- mulf (float64 $m) (get $units $suffix) | floor | int64 }}
{{- end }}

{{/* The GOMEMLIMIT value (bytes) for the container, or empty: no limit, percent 0, or one in extraEnv. */}}
{{- define "thingspace-operator.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) }}
{{- $userSet := false }}
{{- range .Values.extraEnv }}
{{- if eq .name "GOMEMLIMIT" }}{{ $userSet = true }}{{ end }}
{{- end }}
{{- if and $limit (gt (int .Values.goMemLimitPercent) 0) (not $userSet) }}
{{- $bytes := include "thingspace-operator.bytes" $limit }}
{{- div (mul (int64 $bytes) (int .Values.goMemLimitPercent)) 100 }}
{{- end }}
{{- end }}

{{/*
Labels of the uninstall drain hook's objects: the chart's, but with a name of their own, so that the
hook Pod is not selected by the manager Deployment (it would wait for itself), its PodMonitor, PDB or
NetworkPolicy.
*/}}
{{- define "thingspace-operator.drainLabels" -}}
helm.sh/chart: {{ include "thingspace-operator.chart" . }}
app.kubernetes.io/name: {{ include "thingspace-operator.name" . | trunc 48 | trimSuffix "-" }}-uninstall-drain
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: uninstall-drain
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
How the ServiceMonitor and the PodMonitor scrape: with metrics.secure over HTTPS (the manager's
certificate is self-signed, as in kubebuilder's ServiceMonitor) with the token of the chart's scraper
ServiceAccount (metrics-scraper.yaml); otherwise plain HTTP.
*/}}
{{- define "thingspace-operator.metricsScrapeAuth" -}}
{{- if .Values.metrics.secure -}}
scheme: https
tlsConfig:
  insecureSkipVerify: true
authorization:
  type: Bearer
  credentials:
    name: {{ include "thingspace-operator.fullname" . }}-metrics-scraper-token
    key: token
{{- else -}}
scheme: http
{{- end }}
{{- end }}

{{/*
Selector labels of the callback-only pods: a name of their own, so that no selector of the manager's
(its Deployment, the PodDisruptionBudget, the metrics Service, the uninstall drain) takes them in.
*/}}
{{- define "thingspace-operator.callbackSelectorLabels" -}}
app.kubernetes.io/name: {{ include "thingspace-operator.name" . }}-oauth-callback
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
