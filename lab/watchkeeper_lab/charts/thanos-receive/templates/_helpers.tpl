{{- define "thanos-receive.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "thanos-receive.labels" -}}
app.kubernetes.io/name: thanos-receive
app.kubernetes.io/component: receive
{{- end -}}
