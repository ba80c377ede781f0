#!/usr/bin/env bash
# stop-postgres.sh: stop the private PostgreSQL cluster that
# scripts/ensure-postgres.sh started for this checkout, if it runs. It never
# touches any other server (e.g. a system PostgreSQL on port 5432).
#
# It looks where ensure-postgres.sh puts the cluster: ${DATA_DIR:-.data}/postgres
# (a relative DATA_DIR is taken from the repository root) and the fallback
# /var/tmp/sirledger-pg-<uid>-<hash of that path>. Honours DATA_DIR and
# PG_BINDIR like ensure-postgres.sh. The data is kept; delete the directory
# yourself to start from scratch.
set -euo pipefail

say() { printf 'stop-postgres: %s\n' "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
base=${DATA_DIR:-.data}
[[ $base == /* ]] || base=$REPO_ROOT/$base
if [[ -d $base ]]; then
	base=$(cd "$base" && pwd -P)
fi
primary=$base/postgres
hash=$(printf '%s' "$primary" | sha256sum | cut -c1-12)
fallback=/var/tmp/sirledger-pg-$(id -u)-$hash

bindir() { # MAJOR
	local d
	if [[ -n ${PG_BINDIR:-} ]]; then
		printf '%s\n' "$PG_BINDIR"
		return 0
	fi
	if [[ -x /usr/lib/postgresql/$1/bin/pg_ctl ]]; then
		printf '%s\n' "/usr/lib/postgresql/$1/bin"
		return 0
	fi
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	[[ -n $d && -x $d/pg_ctl ]] && {
		printf '%s\n' "$d"
		return 0
	}
	d=$(pg_config --bindir 2>/dev/null || true)
	[[ -n $d && -x $d/pg_ctl ]] && {
		printf '%s\n' "$d"
		return 0
	}
	command -v pg_ctl >/dev/null 2>&1 && dirname "$(command -v pg_ctl)" && return 0
	return 1
}

as_owner() { # DIR CMD...: pg_ctl refuses root, so root runs it as the owner
	local dir=$1 owner
	shift
	if [[ $(id -u) != 0 ]]; then
		"$@"
		return
	fi
	owner=$(stat -c %U "$dir")
	[[ $owner != root ]] || die "$dir is owned by root; cannot run pg_ctl for it"
	if command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$owner" -- "$@")
	else
		(cd / && su "$owner" -s /bin/bash -c "$(printf '%q ' "$@")")
	fi
}

found=false
for pgdata in "$primary" "$fallback"; do
	[[ -f $pgdata/PG_VERSION ]] || continue
	found=true
	BIN=$(bindir "$(<"$pgdata/PG_VERSION")") || die "no PostgreSQL binaries found to stop $pgdata"
	if as_owner "$pgdata" "$BIN/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
		say "stopping PostgreSQL in $pgdata"
		as_owner "$pgdata" "$BIN/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >&2 ||
			die "pg_ctl stop failed for $pgdata (see $pgdata/server.log)"
	else
		say "PostgreSQL in $pgdata is not running"
	fi
done
$found || say "no private cluster found (looked in $primary and $fallback)"
