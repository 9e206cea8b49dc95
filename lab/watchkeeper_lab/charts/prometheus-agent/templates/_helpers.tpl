{{- define "prometheus-agent.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
