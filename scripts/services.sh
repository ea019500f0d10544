#!/usr/bin/env bash
# Start the services the tests need when they are down; fail loudly when one cannot start.
# Usage: scripts/services.sh postgres redis [rabbitmq] [mariadb]
set -euo pipefail

wait_for() {  # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 1
  done
  echo "services: ERROR: $name did not come up (checked with: $*)" >&2
  return 1
}

port_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$1"; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then echo "services: postgres is up"; return 0; fi
  echo "services: starting PostgreSQL"
  command -v pg_ctlcluster >/dev/null || { echo "services: ERROR: PostgreSQL is not installed (pg_ctlcluster missing)" >&2; return 1; }
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  wait_for postgres pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then echo "services: redis is up"; return 0; fi
  echo "services: starting Redis"
  command -v redis-server >/dev/null || { echo "services: ERROR: redis-server is not installed" >&2; return 1; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

ensure_rabbitmq() {
  if port_open 5672 2>/dev/null; then echo "services: rabbitmq is up"; return 0; fi
  echo "services: starting RabbitMQ"
  command -v rabbitmq-server >/dev/null || { echo "services: ERROR: rabbitmq-server is not installed" >&2; return 1; }
  rabbitmq-server -detached
  wait_for rabbitmq port_open 5672
}

ensure_mariadb() {
  if mysqladmin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then echo "services: mariadb is up"; return 0; fi
  echo "services: starting MariaDB"
  command -v mysqld_safe >/dev/null || command -v mariadbd-safe >/dev/null \
    || { echo "services: ERROR: MariaDB is not installed (mysqld_safe missing)" >&2; return 1; }
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  (command -v mariadbd-safe >/dev/null && mariadbd-safe --user=mysql || mysqld_safe --user=mysql) \
    >/var/log/mariadb-ci.log 2>&1 &
  wait_for mariadb mysqladmin -h 127.0.0.1 -P 3306 -u root ping
  mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test CHARACTER SET utf8mb4"
}

for service in "$@"; do
  "ensure_$service"
done
