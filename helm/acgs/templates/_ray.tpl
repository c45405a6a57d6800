{{/* Pod and container settings shared by the RayCluster head and worker groups. */}}
{{- define "acgs.rayPodCommon" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  fsGroup: 100
  seccompProfile:
    type: RuntimeDefault
{{- with .rc.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ .rc.sharedMemorySize }}
  {{- with .rc.volumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .group.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- define "acgs.rayContainerCommon" -}}
imagePullPolicy: {{ .rc.image.pullPolicy }}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop: ["ALL"]
{{- if or .rc.serveRouterEnv .rc.env }}
env:
  {{- range $name, $value := .rc.serveRouterEnv }}
  - name: {{ $name }}
    value: {{ $value | quote }}
  {{- end }}
  {{- with .rc.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
volumeMounts:
  - name: dshm
    mountPath: /dev/shm
  {{- with .rc.volumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
