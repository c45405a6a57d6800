{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "acgs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already contains it. */}}
{{- define "acgs.fullname" -}}
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

{{- define "acgs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "acgs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: acgs
{{- end }}

{{- define "acgs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "acgs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "acgs.operatorSelectorLabels" -}}
{{ include "acgs.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "acgs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "acgs.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "acgs.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{- define "acgs.rayImageTag" -}}
{{- default .Chart.AppVersion .Values.rayCluster.image.tag }}
{{- end }}

{{- define "acgs.rayClusterName" -}}
{{- default (printf "%s-ray" (include "acgs.fullname" .)) .Values.rayCluster.name | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* KubeRay names the head Service <cluster>-head-svc. */}}
{{- define "acgs.rayHeadService" -}}
{{- printf "%s-head-svc" (include "acgs.rayClusterName" .) }}
{{- end }}

{{/* The Ray dashboard URL the operator uses: the value, else the RayCluster's head, else loopback. */}}
{{- define "acgs.rayAddress" -}}
{{- if .Values.operator.rayAddress }}
{{- .Values.operator.rayAddress }}
{{- else if .Values.rayCluster.enabled }}
{{- printf "http://%s.%s.svc:%v" (include "acgs.rayHeadService" .) .Release.Namespace .Values.rayCluster.head.dashboardPort }}
{{- else }}
{{- "http://127.0.0.1:8265" }}
{{- end }}
{{- end }}

{{/* Namespaces the operator watches in namespace scope (default: the release namespace). */}}
{{- define "acgs.watchNamespaces" -}}
{{- $ns := .Values.rbac.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/* Namespaces where the operator may get Secrets (default: release namespace + watched namespaces). */}}
{{- define "acgs.secretNamespaces" -}}
{{- $ns := .Values.rbac.secretNamespaces }}
{{- if not $ns }}
{{- $ns = concat (list .Release.Namespace) .Values.rbac.watchNamespaces }}
{{- end }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/* The rules the operator needs on its own resources and events (namespaced part). */}}
{{- define "acgs.operatorRules" -}}
- apiGroups: ["acgs.io"]
  resources: ["constitutions", "trainingjobs", "modeldeployments"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["acgs.io"]
  resources: ["constitutions/status", "trainingjobs/status", "modeldeployments/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# the public keys that verify served models (ConfigMap acgs-verification-keys or spec.verification.publicKeysRef,
# in the ModelDeployment's namespace): `get` one named ConfigMap, never list or watch
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}

{{/* Refuse combinations JSON schema cannot express. */}}
{{- define "acgs.validate" -}}
{{- range $group := list "cpuWorkers" "gpuWorkers" }}
{{- $g := index $.Values.rayCluster $group }}
{{- if gt (int $g.minReplicas) (int $g.maxReplicas) }}
{{- fail (printf "rayCluster.%s.minReplicas (%v) must not exceed rayCluster.%s.maxReplicas (%v)" $group $g.minReplicas $group $g.maxReplicas) }}
{{- end }}
{{- if or (lt (int $g.replicas) (int $g.minReplicas)) (gt (int $g.replicas) (int $g.maxReplicas)) }}
{{- fail (printf "rayCluster.%s.replicas (%v) must lie within minReplicas..maxReplicas (%v..%v)" $group $g.replicas $g.minReplicas $g.maxReplicas) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.rbac.scope "cluster") .Values.rbac.watchNamespaces }}
{{- fail "rbac.watchNamespaces is only used with rbac.scope=namespace (scope cluster watches every namespace)" }}
{{- end }}
{{- end }}
