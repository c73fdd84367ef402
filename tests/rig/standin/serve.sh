#!/bin/sh
# Entry point of a stand-in image: serve handler.sh on $PORT until SIGTERM (busybox as PID 1
# ignores SIGTERM unless trapped, which would make every `podman stop` wait its full timeout).
echo "stand-in for $STANDIN listening on $PORT"
nc -ll -p "$PORT" -e /standin/handler.sh &
pid=$!
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
wait $pid
