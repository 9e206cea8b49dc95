{{- define "thanos-query.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
