#!/bin/sh
# compose/docker-compose.yml is valid (docker-compose config) and describes
# the same fleet as compose/fleet.sh: the same instance names, the same
# environment variable names, Kafka 3.9 (never 4.x), a health check on every
# long-running service, secrets as files. There is no Docker engine here:
# only the file is checked.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
file=$top/compose/docker-compose.yml
passed=0
failed=0

ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $1"
	failed=$((failed + 1))
}
check() { # description command...
	d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

command -v docker-compose >/dev/null 2>&1 || {
	echo "docker-compose not found: scripts/deps.sh test installs it" >&2
	exit 1
}

work=$(mktemp -d /tmp/chat-compose-test-XXXXXX)
trap 'rm -rf "$work"' EXIT

if docker-compose -f "$file" config >"$work/config" 2>"$work/err"; then
	ok "docker-compose config accepts the file"
else
	not_ok "docker-compose config accepts the file"
	cat "$work/err"
fi
# Warnings count as failures too (unknown keys, unset variables ...).
check "docker-compose config prints no warning" \
	[ ! -s "$work/err" ]
[ -s "$work/err" ] && cat "$work/err"

docker-compose -f "$file" config --services 2>/dev/null | sort >"$work/services"
for s in zk redis pg kafka kafka-init store-1 store-2 dispatcher-1 \
	dispatcher-2 presence-1 edge-1 edge-2 edge-3 api-1; do
	check "service $s is defined" grep -qx "$s" "$work/services"
done

# Every chat service and server but the one-shot kafka-init has a health
# check; the config output has one "healthcheck:" per such service.
want=$(($(wc -l <"$work/services") - 1))
have=$(grep -c '^    healthcheck:' "$work/config" || true)
check "every long-running service has a health check ($have of $want)" \
	[ "$have" -eq "$want" ]

# The environment names of the local fleet (compose/fleet.sh writes them
# to fleet.env) are the ones the containers get.
for v in CHAT_ZK CHAT_REDIS CHAT_KAFKA CHAT_STORE_DB CHAT_JWT_SECRET_FILE \
	CHAT_LOG_LEVEL; do
	check "environment $v is set" grep -q "^      $v: " "$work/config"
	check "fleet.sh writes $v too" grep -q "echo \"$v=" "$top/compose/fleet.sh"
done

check "Kafka image is 3.9.x" grep -q 'image: apache/kafka:3\.9\.' "$work/config"
check "no Kafka 4.x image" sh -c "! grep -q 'image: apache/kafka:4' '$work/config'"
check "ZooKeeper 3.8, Redis 7, PostgreSQL 15" sh -c \
	"grep -q 'image: zookeeper:3.8' '$work/config' &&
	 grep -q 'image: redis:7' '$work/config' &&
	 grep -q 'image: postgres:15' '$work/config'"
check "the JWT secret is a file secret" grep -q 'jwt.secret$' "$work/config"
check "instance ids are passed as --instance" \
	sh -c "[ \$(grep -c -- '- --instance' '$work/config') -eq 9 ]"

# The file must fail validation when broken: a bad copy is refused.
sed 's/^services:/servicez:/' "$file" >"$work/broken.yml"
if docker-compose -f "$work/broken.yml" config >/dev/null 2>&1; then
	not_ok "a broken file is refused"
else
	ok "a broken file is refused"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
