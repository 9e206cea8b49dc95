{{- define "thanos-store.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
