{{- define "cvmanager.labels" -}}
app.kubernetes.io/name: cvmanager
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "cvmanager.selector" -}}
app.kubernetes.io/name: cvmanager
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cvmanager.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}{{ .Values.serviceAccount.name }}{{ else }}{{ .Values.serviceAccount.name | default "default" }}{{ end }}
{{- end }}

{{- define "cvmanager.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{- /* The namespaces watched, comma-separated; empty for all. watchNamespace (one) is kept for older values files. */ -}}
{{- define "cvmanager.watchNamespaces" -}}
{{- $nss := concat (.Values.watchNamespaces | default list) (compact (list .Values.watchNamespace)) | uniq -}}
{{- join "," $nss -}}
{{- end }}

{{- /* The controller's rules, for the ClusterRole or each namespace's Role: exactly the verbs the code uses (deploy/10-rbac.yaml). */ -}}
{{- define "cvmanager.rules" }}
# Requests are objects of their own (create on any replica, delete by the leader), see deploy/10-rbac.yaml.
- apiGroups: ["cvmanager.dev"]
  resources: ["containerversions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["cvmanager.dev"]
  resources: ["containerversionrequests"]
  verbs: ["list", "watch", "create", "delete"]
- apiGroups: ["cvmanager.dev"]
  resources: ["containerversions/status"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["list", "watch", "patch"]
# Verification and migration Jobs: created per version, watched by label,
# a failed one deleted when a rollout of the same version is retried; get
# also reads a suspended template Job.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Blue-green: read the live and verification Services, switch their selector.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "patch"]
# The tail of a failed Job's log goes into the failure Event.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# History records, the spec.config version key; list: a namespace's
# histories in one paged request (delivery view, DORA series).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "update"]
# The settings ConfigMap (run --configmap-key), watched by name only.
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["cvmanager"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Author checks (pkg/authz): namespaced reviews only.
- apiGroups: ["authorization.k8s.io"]
  resources: ["localsubjectaccessreviews"]
  verbs: ["create"]
{{- end }}
