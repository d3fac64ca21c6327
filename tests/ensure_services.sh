#!/usr/bin/env bash
# Starts the local Redis and PostgreSQL the tests use, when they are installed but down.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 6379; then
  echo "starting redis-server"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! up 5432; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
for port in 6379 5432; do
  for _ in $(seq 50); do up "$port" && break; sleep 0.2; done
  up "$port" || { echo "service on port $port is not reachable" >&2; exit 1; }
done
