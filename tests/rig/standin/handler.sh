#!/bin/sh
# One HTTP request per run (busybox `nc -ll -e` starts it per connection). Answers the real
# health and API paths of the service this stand-in plays ($STANDIN), and /_env with the
# container's environment so tests can see the wiring airpods gave it.
read -r method path proto
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
done
path=${path%%\?*}
status="200 OK"
case "$STANDIN:$path" in
  ollama:/) body="Ollama is running" ;;
  ollama:/api/version) body='{"version":"0.0.0-standin"}' ;;
  ollama:/api/tags) body='{"models":[]}' ;;
  ollama:/api/pull) body='{"status":"pulling manifest"}
{"status":"pulling 0123","total":100,"completed":50}
{"status":"pulling 0123","total":100,"completed":100}
{"status":"success"}' ;;
  open-webui:/health) body='{"status":true}' ;;
  open-webui:/) body='<!doctype html><title>Open WebUI stand-in</title>' ;;
  comfyui:/system_stats) body='{"system":{"os":"standin"},"devices":[]}' ;;
  *:/_env) body=$(env | sort) ;;
  *) status="404 Not Found"; body='{"error":"not found"}' ;;
esac
printf 'HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
  "$status" "$(printf '%s' "$body" | wc -c)" "$body"
