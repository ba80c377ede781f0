#!/usr/bin/env bash
# Makes one HMAC-signed partner API request (CONTRACT §2) from a shell.
#
#   export SIR_KEY=sk_test_…  SIR_HMAC_SECRET=…   # from POST /v1/partner/keys
#   scripts/signed-curl.sh GET  '/v1/partner/users/user-42/balance'
#   scripts/signed-curl.sh POST /v1/partner/actions/submit action.json
#
# SIR_URL is where ledgerd listens (e.g. http://localhost:9090). Unset, it is
# derived from LISTEN_ADDR as `make run` uses it (:9090 -> http://localhost:9090),
# else http://localhost:8080. Extra curl flags go after the body file (use -
# for no body): scripts/signed-curl.sh GET /v1/partner/users - -i
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n 2,11p "$0" >&2; exit 2; }
: "${SIR_KEY:?set SIR_KEY to your sk_ or pk_ key}" "${SIR_HMAC_SECRET:?set SIR_HMAC_SECRET to the hmacSecret of that key}"
method=$1 path=$2 body=${3:--}
shift $(( $# >= 3 ? 3 : 2 ))
if [[ $body != - ]]; then
	[[ -f $body ]] || { echo "signed-curl: no such body file: $body" >&2; exit 2; }
	body=$(cd "$(dirname "$body")" && pwd -P)/$(basename "$body") # before the cd below
fi
if [[ -z ${SIR_URL:-} ]]; then
	addr=${LISTEN_ADDR:-:8080}
	host=${addr%:*} port=${addr##*:}
	# A wildcard listen address is reached on the loopback.
	[[ -z $host || $host == 0.0.0.0 || $host == '[::]' ]] && host=localhost
	SIR_URL=http://$host:$port
fi
cd "$(dirname "$0")/.."
ctl=(go run ./cmd/ledgerctl)
[[ -x bin/ledgerctl ]] && ctl=(bin/ledgerctl)
sign=("${ctl[@]}" sign --key "$SIR_KEY" --secret "$SIR_HMAC_SECRET" --method "$method" --path "$path")
data=()
if [[ $body != - ]]; then
	sign+=(--body-file "$body")
	data=(-H 'Content-Type: application/json' --data-binary "@$body")
fi
# ledgerctl sign prints: -H 'X-Partner-Key: …' -H 'X-Timestamp: …' -H 'X-Signature: …'
# Captured first: a signing failure must stop here, not send an unsigned request.
signed=$("${sign[@]}")
eval "headers=($signed)"
exec curl -sS -X "$method" "${SIR_URL%/}$path" "${headers[@]}" "${data[@]}" "$@"
