# Sourced by scripts/test: start (and where missing, install) the servers the suite talks to.
# Uses sudo when not root. Each function is idempotent.

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

_apt_install() {
  echo "installing $* with apt-get" >&2
  _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

_pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  command -v pg_ctlcluster >/dev/null || _apt_install postgresql
  if ! _pg_ready; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    _as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do _pg_ready && break; sleep 1; done
    _pg_ready || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; return 1; }
  fi
  # A login role for the tests (password auth works with Debian's default pg_hba.conf).
  _as_root runuser -u postgres -- psql -q -h /var/run/postgresql -c \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'drivetrain_test') THEN
       CREATE ROLE drivetrain_test LOGIN CREATEDB PASSWORD 'drivetrain_test'; END IF; END \$\$;" >/dev/null
}

postgres_url() { echo "postgresql+psycopg://drivetrain_test:drivetrain_test@127.0.0.1:5432/postgres"; }

_mqtt_ready() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }

# Mosquitto 2 on 127.0.0.1:1883. Debian's /etc/mosquitto/mosquitto.conf has no listener line,
# so Mosquitto 2 listens on localhost only and allows anonymous clients there ("local only" mode).
ensure_mosquitto() {
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || _apt_install mosquitto
  if ! _mqtt_ready; then
    local program
    program=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    # without systemd nothing creates the pid file's directory
    _as_root install -d -o mosquitto -g mosquitto /run/mosquitto 2>/dev/null || _as_root mkdir -p /run/mosquitto
    _as_root "$program" -d -c /etc/mosquitto/mosquitto.conf
    for _ in $(seq 1 30); do _mqtt_ready && break; sleep 0.5; done
    _mqtt_ready || { echo "error: Mosquitto did not start on 127.0.0.1:1883" >&2; return 1; }
  fi
}

mqtt_url() { echo "mqtt://127.0.0.1:1883"; }

_nats_ready() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }

# NATS with JetStream on 127.0.0.1:4222: the fleet profile's backbone. The node-kill tests and
# benchmarks/scale.py start their own nodes from the same program on free ports.
ensure_nats() {
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || _apt_install nats-server
  if ! _nats_ready; then
    local program
    program=$(command -v nats-server || echo /usr/sbin/nats-server)
    _as_root mkdir -p /var/lib/nats-server
    _as_root sh -c "nohup '$program' -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server \
      -l /var/log/nats-server.log >/dev/null 2>&1 &"
    for _ in $(seq 1 30); do _nats_ready && break; sleep 0.5; done
    _nats_ready || { echo "error: nats-server did not start on 127.0.0.1:4222" >&2; return 1; }
  fi
}

nats_url() { echo "nats://127.0.0.1:4222"; }

# Debian's Chromium for the console's browser tests (Playwright drives it; Playwright's own
# browser download is never used).
ensure_chromium() {
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || _apt_install chromium
}

# Java 17+ for the Spark batch jobs (pyspark 4 starts a JVM); JAVA_HOME wins when set.
ensure_java() {
  [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ] && return 0
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
  [ -n "$major" ] && [ "$major" -ge 17 ] || _apt_install openjdk-17-jre-headless
}
