#!/usr/bin/env bash
# ensure-postgres.sh [--test]
#
# Makes sure a PostgreSQL server is reachable and prints exactly one line on
# stdout: a URL the service (or, with --test, the test suite) can use.
# Everything else goes to stderr.
#
#   1. An explicit URL wins: with --test, TEST_DATABASE_URL (never
#      DATABASE_URL); without it, DATABASE_URL. It is printed unchecked.
#   2. Otherwise, if a server on 127.0.0.1:$PG_PROBE_PORT (default 5432)
#      accepts user postgres, use it.
#   3. Otherwise start (or reuse) a private cluster under
#      ${DATA_DIR:-.data}/postgres on 127.0.0.1:$PG_PORT (default 55432).
#
# Without --test the URL names database "sirledger_<8 hex of the checkout's
# path>_<8 hex kept in .data/db-instance>" (created if missing): each
# checkout has its own development secrets
# and JetStream store under .data/, so it gets its own database too;
# with --test it names the "postgres" maintenance database, because the tests
# create and drop their own databases through it.
#
# Environment:
#   DATABASE_URL       use this URL as is
#   TEST_DATABASE_URL  with --test: use this URL as is
#   PG_PROBE_PORT      port of the existing local server to probe (5432)
#   PG_PORT            port of the private cluster (55432)
#   DATA_DIR           parent of the private cluster's directory (.data);
#                      a relative path is taken from the repository root
#   PG_BINDIR          directory with initdb/pg_ctl (default: newest
#                      /usr/lib/postgresql/*/bin, else pg_config --bindir,
#                      else PATH)
#
# When run as root, the private cluster runs as system user "sirledger"
# (created if missing), since PostgreSQL refuses to run as root. If that user
# cannot reach the data directory (e.g. the checkout lives under /root) or
# the path is too long for a Unix socket, the cluster lives in
# /var/tmp/sirledger-pg-<uid>-<hash of the data directory path> instead.
# scripts/stop-postgres.sh stops the private cluster.
set -euo pipefail

# stdout carries the URL and nothing else: keep it on fd 3, send the rest of
# this script's output (including every child's stdout) to stderr.
exec 3>&1 1>&2

say() { printf 'ensure-postgres: %s\n' "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
emit() {
	printf '%s\n' "$1" >&3
	exit 0
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

mode=run
for arg in "$@"; do
	case $arg in
	--test) mode="test" ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $arg (usage: $0 [--test])" ;;
	esac
done

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# One database per checkout: its .data/ (master key, JetStream store) only
# matches the database it was made with. The name holds the checkout's path
# and a token kept in .data/db-instance, so a checkout cloned again at the
# same path (a new .data/, a new master key) gets a new database instead of
# one whose sealed passwords its key cannot open. A .data/ from before the
# token (it has a master key) keeps the database it has.
APP_DB=sirledger_$(printf '%s' "$REPO_ROOT" | cksum | cut -d' ' -f1 | xargs printf '%08x' | cut -c1-8)
if [[ $mode == run ]]; then
	app_data=${DATA_DIR:-.data}
	[[ $app_data == /* ]] || app_data=$REPO_ROOT/$app_data
	if [[ ! -e $app_data/db-instance ]]; then
		mkdir -p "$app_data" || die "cannot create $app_data"
		if [[ -e $app_data/secrets/master.key ]]; then
			: >"$app_data/db-instance"
		else
			od -An -N4 -tx1 /dev/urandom | tr -d ' \n' >"$app_data/db-instance"
		fi
	fi
	token=$(tr -cd '0-9a-f' <"$app_data/db-instance")
	APP_DB=$APP_DB${token:+_$token}
fi
RUN_AS_USER=sirledger
PG_PORT=${PG_PORT:-55432}
PG_PROBE_PORT=${PG_PROBE_PORT:-5432}
HOST=127.0.0.1
[[ $PG_PORT =~ ^[0-9]+$ ]] || die "PG_PORT must be a number, got '$PG_PORT'"
[[ $PG_PROBE_PORT =~ ^[0-9]+$ ]] || die "PG_PROBE_PORT must be a number, got '$PG_PROBE_PORT'"

# Our psql/pg_isready calls say exactly where to go; don't let the caller's
# libpq environment (PGSSLMODE=require, PGPASSFILE, ...) change that.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSSLMODE PGOPTIONS PGPASSWORD 2>/dev/null || true
export PGCONNECT_TIMEOUT=5

# ---------------------------------------------------------------- 1. explicit
if [[ $mode == test && -n ${TEST_DATABASE_URL:-} ]]; then
	emit "$TEST_DATABASE_URL"
fi
# Tests create and drop databases, so they never fall back to DATABASE_URL
# (which may name a server that matters): only TEST_DATABASE_URL or a local one.
if [[ $mode != test && -n ${DATABASE_URL:-} ]]; then
	emit "$DATABASE_URL"
fi

# -------------------------------------------------------------------- helpers

# bindir [MAJOR]: directory holding the server binaries, preferring MAJOR.
bindir() {
	local want=${1:-} d=""
	if [[ -n ${PG_BINDIR:-} ]]; then
		printf '%s\n' "$PG_BINDIR"
		return 0
	fi
	if [[ -n $want && -x /usr/lib/postgresql/$want/bin/pg_ctl ]]; then
		printf '%s\n' "/usr/lib/postgresql/$want/bin"
		return 0
	fi
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	if [[ -n $d && -x $d/pg_ctl ]]; then
		printf '%s\n' "$d"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -n $d && -x $d/pg_ctl ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	if command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return 0
	fi
	return 1
}

# client NAME: path of a client tool (PATH first, then the server bindir).
client() {
	local p b
	if p=$(command -v "$1" 2>/dev/null); then
		printf '%s\n' "$p"
		return 0
	fi
	if b=$(bindir) && [[ -x $b/$1 ]]; then
		printf '%s\n' "$b/$1"
		return 0
	fi
	return 1
}

PSQL=$(client psql || true)
PG_ISREADY=$(client pg_isready || true)
CREATEDB=$(client createdb || true)

tcp_open() { # HOST PORT
	if command -v timeout >/dev/null 2>&1; then
		timeout 3 bash -c 'exec 9<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
	else
		bash -c 'exec 9<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
	fi
}

psql_admin() { # PORT SQL...: run SQL as postgres on the postgres database
	local port=$1
	shift
	"$PSQL" -X -w -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$port" -U postgres -d postgres -At "$@"
}

# usable PORT: does a server on 127.0.0.1:PORT accept user postgres?
usable() {
	local port=$1 out
	if [[ -n $PG_ISREADY ]]; then
		"$PG_ISREADY" -q -h "$HOST" -p "$port" -U postgres -d postgres -t 3 >/dev/null 2>&1 || return 1
	else
		tcp_open "$HOST" "$port" || return 1
	fi
	if [[ -n $PSQL ]]; then
		if ! out=$(psql_admin "$port" -c 'select 1' 2>&1); then
			say "$HOST:$port answers, but psql as user postgres (no password) fails: ${out//$'\n'/ }"
			return 1
		fi
	fi
	return 0
}

url_for() { # PORT DB
	printf 'postgres://postgres@%s:%s/%s?sslmode=disable' "$HOST" "$1" "$2"
}

# finish PORT: create the application database if needed, print the URL.
finish() {
	local port=$1 exists err
	if [[ $mode == test ]]; then
		emit "$(url_for "$port" postgres)"
	fi
	if [[ -n $PSQL ]]; then
		exists=$(psql_admin "$port" -c "select 1 from pg_database where datname = '$APP_DB'") ||
			die "cannot query databases on $HOST:$port"
		if [[ $exists != 1 ]]; then
			say "creating database $APP_DB on $HOST:$port"
			if ! err=$(psql_admin "$port" -c "CREATE DATABASE $APP_DB" 2>&1); then
				# Lost a race with a concurrent run? Then it exists now.
				exists=$(psql_admin "$port" -c "select 1 from pg_database where datname = '$APP_DB'" || true)
				[[ $exists == 1 ]] || die "cannot create database $APP_DB on $HOST:$port: $err"
			fi
		fi
	elif [[ -n $CREATEDB ]]; then
		if ! err=$("$CREATEDB" -w -h "$HOST" -p "$port" -U postgres "$APP_DB" 2>&1); then
			[[ $err == *"already exists"* ]] || die "cannot create database $APP_DB on $HOST:$port: $err"
		else
			say "created database $APP_DB on $HOST:$port"
		fi
	else
		say "neither psql nor createdb is installed; printing the URL of the postgres database"
		emit "$(url_for "$port" postgres)"
	fi
	emit "$(url_for "$port" "$APP_DB")"
}

# --------------------------------------------------- 2. existing local server
if usable "$PG_PROBE_PORT"; then
	finish "$PG_PROBE_PORT"
fi
say "no usable PostgreSQL on $HOST:$PG_PROBE_PORT; using a private cluster on port $PG_PORT"

# ------------------------------------------------------- 3. private cluster
is_root=false
[[ $(id -u) == 0 ]] && is_root=true

base=${DATA_DIR:-.data}
[[ $base == /* ]] || base=$REPO_ROOT/$base
mkdir -p "$base" || die "cannot create $base"
base=$(cd "$base" && pwd -P)
primary=$base/postgres
hash=$(printf '%s' "$primary" | sha256sum | cut -c1-12)
fallback=/var/tmp/sirledger-pg-$(id -u)-$hash

# Serialise concurrent runs (make run + make test, parallel CI steps).
if command -v flock >/dev/null 2>&1; then
	exec 8>>"$base/.postgres.lock" || die "cannot write $base/.postgres.lock"
	flock -w 180 8 || die "timed out waiting for another ensure-postgres.sh (lock $base/.postgres.lock)"
fi

# as_user USER CMD...: run CMD as USER (only root switches users). Fds 3
# (our real stdout) and 8 (the lock) are closed: a server started by pg_ctl
# would otherwise inherit them, keep the caller's $(...) pipe open forever
# and hold the lock.
as_user() {
	local user=$1
	shift
	if ! $is_root; then
		"$@" 3>&- 8>&-
	elif command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$user" -- "$@") 3>&- 8>&-
	else
		(cd / && su "$user" -s /bin/bash -c "$(printf '%q ' "$@")") 3>&- 8>&-
	fi
}

ensure_run_user() {
	getent passwd "$RUN_AS_USER" >/dev/null && return 0
	say "creating system user $RUN_AS_USER to run PostgreSQL (it refuses to run as root)"
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS_USER" ||
			getent passwd "$RUN_AS_USER" >/dev/null || die "useradd $RUN_AS_USER failed"
	elif command -v adduser >/dev/null 2>&1; then
		adduser --system --no-create-home "$RUN_AS_USER" || die "adduser $RUN_AS_USER failed"
	else
		die "running as root, but neither useradd nor adduser exists to create user $RUN_AS_USER"
	fi
}

initialised() { [[ -f $1/PG_VERSION ]]; } # root, or the owner, can see it

socket_ok() { (($(printf '%s/.s.PGSQL.%s' "$1" "$PG_PORT" | wc -c) <= 100)); }

# Choose the cluster directory: reuse one already initialised, else the
# primary location if the server user can reach it, else the fallback.
if initialised "$primary"; then
	pgdata=$primary
elif initialised "$fallback"; then
	pgdata=$fallback
else
	pgdata=$primary
	if ! socket_ok "$primary"; then
		say "note: $primary is too long a path for PostgreSQL's Unix socket"
		pgdata=$fallback
	elif $is_root; then
		ensure_run_user
		# The server user must be able to traverse every parent directory.
		# We only loosen the data directory we own; if an ancestor such as
		# /root (mode 700) blocks it, move the cluster instead.
		if as_user "$RUN_AS_USER" test -x "$(dirname "$base")"; then
			chmod o+x "$base"
			as_user "$RUN_AS_USER" test -x "$base" || pgdata=$fallback
		else
			pgdata=$fallback
		fi
	fi
	if [[ $pgdata == "$fallback" ]]; then
		say "note: user ${RUN_AS_USER} cannot use $primary (e.g. a parent directory is not traversable); the cluster lives in $fallback"
	fi
fi

# Who runs the server: the owner of an existing cluster, else sirledger when
# we are root, else ourselves.
if $is_root; then
	if initialised "$pgdata"; then
		run_as=$(stat -c %U "$pgdata")
		[[ $run_as != root && $run_as != UNKNOWN ]] ||
			die "$pgdata is owned by '$run_as'; PostgreSQL cannot run as root (chown -R $RUN_AS_USER $pgdata, or remove it)"
	else
		ensure_run_user
		run_as=$RUN_AS_USER
	fi
else
	run_as=$(id -un)
fi

if [[ $pgdata == "$fallback" && -e $fallback ]]; then
	# /var/tmp is world-writable: never adopt a directory someone else made.
	owner=$(stat -c %u "$fallback")
	[[ $owner == "$(id -u "$run_as")" ]] ||
		die "$fallback exists but belongs to uid $owner, not $run_as; remove it or set DATA_DIR"
fi

major=""
if initialised "$pgdata"; then
	major=$(<"$pgdata/PG_VERSION")
fi
BIN=$(bindir "$major") ||
	die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin, pg_config --bindir, PATH); install postgresql or set DATABASE_URL / TEST_DATABASE_URL"
for t in initdb pg_ctl postgres; do
	[[ -x $BIN/$t ]] || die "$BIN/$t is missing; set PG_BINDIR to a directory with the PostgreSQL server binaries"
done
[[ -n $PG_ISREADY ]] || PG_ISREADY=$([[ -x $BIN/pg_isready ]] && echo "$BIN/pg_isready" || true)
[[ -n $PSQL ]] || PSQL=$([[ -x $BIN/psql ]] && echo "$BIN/psql" || true)
[[ -n $CREATEDB ]] || CREATEDB=$([[ -x $BIN/createdb ]] && echo "$BIN/createdb" || true)
logfile=$pgdata/server.log

show_log() {
	if [[ -r $logfile ]]; then
		say "last lines of $logfile:"
		tail -n 30 "$logfile" >&2 || true
	fi
}

# wait_ready PORT: bounded wait (~30 s) until the server accepts connections.
wait_ready() {
	local port=$1 deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if [[ -n $PG_ISREADY ]]; then
			"$PG_ISREADY" -q -h "$HOST" -p "$port" -U postgres -d postgres -t 2 >/dev/null 2>&1 && return 0
		else
			tcp_open "$HOST" "$port" && return 0
		fi
		sleep 0.5
	done
	return 1
}

# Already running from this directory? Then use it, on whatever port it has.
if initialised "$pgdata" && as_user "$run_as" "$BIN/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
	port=$(sed -n 4p "$pgdata/postmaster.pid" 2>/dev/null || true)
	[[ $port =~ ^[0-9]+$ ]] || port=$PG_PORT
	[[ $port == "$PG_PORT" ]] || say "note: the cluster in $pgdata is already running on port $port (not $PG_PORT); using it"
	wait_ready "$port" || {
		show_log
		die "the cluster in $pgdata is running but not ready on port $port after 30s"
	}
	say "using the running private cluster in $pgdata (port $port)"
	finish "$port"
fi

# Something else on our port?
if tcp_open "$HOST" "$PG_PORT"; then
	if usable "$PG_PORT"; then
		dd=$(psql_admin "$PG_PORT" -c 'show data_directory' 2>/dev/null || echo unknown)
		say "note: a PostgreSQL server from another directory ($dd) already runs on port $PG_PORT; using it (set PG_PORT to start this checkout's own cluster)"
		finish "$PG_PORT"
	fi
	die "port $HOST:$PG_PORT is taken by something that is not a usable PostgreSQL server; set PG_PORT to a free port"
fi

# Initialise if needed.
if ! initialised "$pgdata"; then
	if [[ -d $pgdata ]] && [[ -n $(ls -A "$pgdata" 2>/dev/null) ]]; then
		die "$pgdata exists, is not empty and holds no PG_VERSION (an interrupted initdb?); inspect and remove it, then retry"
	fi
	mkdir -p "$pgdata"
	chmod 700 "$pgdata"
	$is_root && chown "$run_as:$(id -gn "$run_as")" "$pgdata"
	say "initialising a PostgreSQL cluster in $pgdata with $BIN/initdb (as $run_as)"
	# Capture initdb's chatter and show it only on failure.
	if ! out=$(as_user "$run_as" "$BIN/initdb" -D "$pgdata" -U postgres --auth=trust \
		--encoding=UTF8 --no-locale --data-checksums 2>&1); then
		printf '%s\n' "$out" >&2
		die "initdb failed in $pgdata"
	fi
	# Our settings live in a file we rewrite on every start (the port may
	# change); postgresql.conf only includes it.
	printf '\n# Added by scripts/ensure-postgres.sh\ninclude_if_exists = '\''sirledger.conf'\''\n' |
		as_user "$run_as" tee -a "$pgdata/postgresql.conf" >/dev/null
fi

pq_quote() { printf "'%s'" "${1//\'/\'\'}"; } # postgresql.conf string literal
{
	echo "# Written by scripts/ensure-postgres.sh on every start; edits are lost."
	echo "listen_addresses = '127.0.0.1'"
	echo "port = $PG_PORT"
	echo "unix_socket_directories = $(pq_quote "$pgdata")"
	echo "unix_socket_permissions = 0700"
	echo "max_connections = 200"
	echo "# Durability matters for a ledger, even in development."
	echo "fsync = on"
	echo "synchronous_commit = on"
	echo "full_page_writes = on"
} | as_user "$run_as" tee "$pgdata/sirledger.conf" >/dev/null

say "starting PostgreSQL ($BIN) on $HOST:$PG_PORT, data in $pgdata, log in $logfile"
if ! out=$(as_user "$run_as" "$BIN/pg_ctl" -D "$pgdata" -l "$logfile" -w -t 30 start 2>&1); then
	printf '%s\n' "$out" >&2
	show_log
	die "pg_ctl start failed for $pgdata"
fi
wait_ready "$PG_PORT" || {
	show_log
	die "PostgreSQL in $pgdata did not become ready on port $PG_PORT within 30s"
}
usable "$PG_PORT" || {
	show_log
	die "PostgreSQL in $pgdata started but does not accept user postgres on port $PG_PORT"
}
say "PostgreSQL is ready on $HOST:$PG_PORT (stop it with scripts/stop-postgres.sh)"
finish "$PG_PORT"
