#!/usr/bin/env bash
# Starts the local Redis and PostgreSQL the tests use, when they are installed but down, and
# RabbitMQ (tests/e2e/test_rabbitmq.py; skipped where it is not installed).
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
ports="6379 5432"
if command -v rabbitmq-server >/dev/null; then
  ports="$ports 5672"
  if ! up 5672; then
    echo "starting rabbitmq-server"
    rabbitmq-server -detached
  fi
fi
for port in $ports; do
  # Up to 60 s each: an Erlang node (RabbitMQ) takes seconds to listen.
  for _ in $(seq 300); do up "$port" && break; sleep 0.2; done
  up "$port" || { echo "service on port $port is not reachable" >&2; exit 1; }
done

# The admin page's browser tests (tests/knowledge/test_admin_page.py) drive Debian's chromium
# through chromedriver; they are skipped, saying so, where these are missing.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and chromium-driver for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq --no-install-recommends chromium chromium-driver \
      || { apt-get update -qq \
           && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }; } \
      || echo "warning: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "note: chromium/chromedriver not installed (apt-get install chromium chromium-driver);" \
      "the browser tests will be skipped" >&2
  fi
fi
