#!/bin/sh
# One HTTP request per run (busybox `nc -ll -e` starts it per connection). Answers the real
# health and API paths of the service this stand-in plays ($STANDIN), and /_env with the
# container's environment so tests can see the wiring airpods gave it. Every request is logged
# on stderr (the container's log) as "standin: METHOD PATH".
read -r method target proto
length=0 upgrade="" ws_key=""
while read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  value=${line#*: }
  case "$(printf '%s' "${line%%:*}" | tr 'A-Z' 'a-z')" in
    content-length) length=$value ;;
    upgrade) upgrade=$value ;;
    sec-websocket-key) ws_key=$value ;;
  esac
done
path=${target%%\?*}
query=${target#"$path"}
query=${query#\?}
echo "standin: $method $path" >&2
body=""
[ "$length" -gt 0 ] 2>/dev/null && body=$(head -c "$length")
status="200 OK"
type="application/json"

param() {  # param NAME: a value from the query string (no decoding: the ids here are plain)
  printf '%s' "$query" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# ComfyUI (what Open WebUI's image generation and airpods call): its models volume is mounted
# where the real image has it; /prompt keeps each client's prompt for the WebSocket to report.
comfy_models=/root/ComfyUI/models
comfy_state=/tmp/comfyui-standin
ws_frame() {  # ws_frame TEXT: one unmasked WebSocket text frame (RFC 6455 5.2), under 126 bytes
  printf '\201'"$(printf '\\%03o' "$(printf '%s' "$1" | wc -c)")"'%s' "$1"
}
comfy_ws() {  # the /ws?clientId= socket: handshake, then "executing node null" once the prompt is done
  hex=$(printf '%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11' "$ws_key" | sha1sum | cut -c1-40)
  octal=""
  while [ -n "$hex" ]; do  # the digest's bytes as octal escapes (POSIX printf has no \x)
    octal="$octal\\$(printf '%03o' "0x${hex%"${hex#??}"}")"
    hex=${hex#??}
  done
  accept=$(printf "$octal" | base64)
  client=$(param clientId)
  rm -f "$comfy_state/done-$client"  # before the handshake: its prompt comes after it
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
  ws_frame '{"type":"status","data":{"status":{"exec_info":{"queue_remaining":0}},"sid":"'"$client"'"}}'
  waited=0
  while [ ! -f "$comfy_state/done-$client" ] && [ "$waited" -lt 120 ]; do
    sleep 0.5
    waited=$((waited + 1))
  done
  [ -f "$comfy_state/done-$client" ] && ws_frame '{"type":"executing","data":{"node":null,"prompt_id":"'"$(cat "$comfy_state/done-$client")"'"}}'
  printf '\210\000'  # close
  exit 0
}
comfy_prompt() {  # POST /prompt {"prompt": workflow, "client_id": …}: queued and "run" at once
  mkdir -p "$comfy_state"
  id=$(cat /proc/sys/kernel/random/uuid)
  client=$(printf '%s' "$body" | sed -n 's/.*"client_id": *"\([^"]*\)".*/\1/p')
  printf '%s' "$body" > "$comfy_state/last-prompt.json"
  echo "standin: prompt $id from client ${client:-none}" >&2
  [ -n "$client" ] && printf '%s' "$id" > "$comfy_state/done-$client"
  body='{"prompt_id":"'"$id"'","number":0,"node_errors":{}}'
}
# A 1x1 PNG, what a SaveImage node of the default workflow (node "9") "made".
PNG=iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==

case "$STANDIN:$path" in
  ollama:/) body="Ollama is running" ;;
  ollama:/api/version) body='{"version":"0.0.0-standin"}' ;;
  ollama:/api/tags) body='{"models":[{"name":"standin-ollama:latest","model":"standin-ollama:latest","size":1,"details":{"format":"gguf"}}]}' ;;
  ollama:/api/pull) body='{"status":"pulling manifest"}
{"status":"pulling 0123","total":100,"completed":50}
{"status":"pulling 0123","total":100,"completed":100}
{"status":"success"}' ;;
  open-webui:/health) body='{"status":true}' ;;
  open-webui:/) body='<!doctype html><title>Open WebUI stand-in</title>' ;;
  comfyui:/system_stats) body='{"system":{"os":"posix","comfyui_version":"standin","embedded_python":false},"devices":[]}' ;;
  comfyui:/object_info)
    ckpts=$(ls "$comfy_models/checkpoints" 2>/dev/null | sed 's/.*/"&"/' | tr '\n' ',' | sed 's/,$//')
    body='{"CheckpointLoaderSimple":{"input":{"required":{"ckpt_name":[['"$ckpts"']]}},"output":["MODEL","CLIP","VAE"],"name":"CheckpointLoaderSimple"}}' ;;
  comfyui:/prompt)
    if [ "$method" = POST ]; then comfy_prompt; else body='{"exec_info":{"queue_remaining":0}}'; fi ;;
  comfyui:/queue) body='{"queue_running":[],"queue_pending":[]}' ;;
  comfyui:/history/*)
    id=${path#/history/}
    body='{"'"$id"'":{"outputs":{"9":{"images":[{"filename":"standin.png","subfolder":"","type":"output"}]}},"status":{"status_str":"success","completed":true,"messages":[]}}}' ;;
  comfyui:/view) type="image/png" ;;
  comfyui:/ws) [ -n "$ws_key" ] && [ "$(printf '%s' "$upgrade" | tr 'A-Z' 'a-z')" = websocket ] && comfy_ws
    status="400 Bad Request"; body='{"error":"expected a WebSocket upgrade"}' ;;
  comfyui:/_last_prompt) body=$(cat "$comfy_state/last-prompt.json" 2>/dev/null || echo null) ;;
  *:/_env) body=$(env | sort) ;;
  *) status="404 Not Found"; body='{"error":"not found"}' ;;
esac
if [ "$type" = image/png ]; then
  printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' \
    "$status" "$type" "$(printf '%s' "$PNG" | base64 -d | wc -c)"
  printf '%s' "$PNG" | base64 -d
  exit 0
fi
printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
  "$status" "$type" "$(printf '%s' "$body" | wc -c)" "$body"
