#!/usr/bin/env bash
# make.sh V1_BINARY: regenerate this fixture (alice/, bob/, peers) with the
# v1 (bbolt + write-ahead log) p2pchat binary. See README.md.
#
# Ports 24711..24713 on 127.0.0.1 must be free. Transcripts of each run go to
# a temporary directory, printed at the end, not into the fixture.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 PATH/TO/v1/p2pchat" >&2
	exit 2
fi
BIN=$(realpath "$1")
cd "$(dirname "$0")"

T=$(mktemp -d /tmp/upgrade-v1.XXXXXX)

cat >peers <<'EOF'
# The table of friends of the upgrade-v1 fixture (carol never runs).
# NAME  HOST       PORT
alice   127.0.0.1  24711
bob     127.0.0.1  24712
carol   127.0.0.1  24713
EOF

# waitfor FILE REGEX COUNT: until FILE has COUNT lines matching (20 s at
# most). With fast set, it polls without sleeping in between.
waitfor() {
	local file=$1 re=$2 count=$3 n deadline=$((SECONDS + 20))
	while n=$(grep -c -E -- "$re" "$file" 2>/dev/null || true); [ "${n:-0}" -lt "$count" ]; do
		if [ $SECONDS -ge $deadline ]; then
			echo "make.sh: timed out waiting for $count x /$re/ in $file" >&2
			return 1
		fi
		[ -n "${fast:-}" ] || sleep 0.01
	done
}

# start NAME: run NAME in the background, stdin a fifo (the caller opens it
# for writing and keeps it open).
start() {
	local name=$1
	mkfifo "$T/$name.in"
	"$BIN" --peers peers --data-dir "$name" "$name" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
	eval "${name}_pid=$!"
}

attempt() {
	rm -rf alice bob "$T"/*
	alice_pid= bob_pid=
	start alice
	exec 3>"$T/alice.in"
	start bob
	exec 4>"$T/bob.in"
	waitfor "$T/alice.err" 'listening on' 1 || return 1
	waitfor "$T/bob.err" 'listening on' 1 || return 1

	# 1. History both ways, one direction after the other.
	printf 'bob/a2b-1\nbob/a2b-2\nbob/a2b-3\n' >&3
	waitfor "$T/bob.out" '^Message from alice: a2b-3$' 1 || return 1
	printf 'alice/b2a-1\nalice/b2a-2\nalice/b2a-3\n' >&4
	waitfor "$T/alice.out" '^Message from bob: b2a-3$' 1 || return 1
	# A message delivered at once prints no "Delivered to" (only one that
	# was reported queued does): /history shows the delivered state.
	sleep 0.5 # acknowledgements in, delivered marks synced (within 200 ms)
	printf '/history bob\n' >&3
	printf '/history alice\n' >&4
	waitfor "$T/alice.err" 'you → bob: a2b-[123]  \[delivered\]' 3 || return 1
	waitfor "$T/bob.err" 'you → alice: b2a-[123]  \[delivered\]' 3 || return 1
	sleep 1 # quiet: everything so far is checkpointed into bbolt

	# 2. A queue to carol, who never runs.
	printf 'carol/a2c-1\ncarol/a2c-2\ncarol/a2c-3\n' >&3
	waitfor "$T/alice.err" '^carol is offline: queued' 3 || return 1
	sleep 1

	# 3. bob stops cleanly; two more messages to him queue.
	kill -TERM "$bob_pid"
	wait "$bob_pid" || { echo "make.sh: bob exited with status $?" >&2; return 1; }
	exec 4>&-
	sleep 1 # alice sees bob's connection close
	printf 'bob/a2b-q1\nbob/a2b-q2\n' >&3
	# 4. Killed well within the 100 ms before the checkpointer would run.
	fast=1 waitfor "$T/alice.err" '^bob is offline: queued' 2 || return 1
	kill -KILL "$alice_pid"
	wait "$alice_pid" 2>/dev/null || true
	exec 3>&-

	# The records of a2b-q1 and a2b-q2 must be in a wal segment only.
	local seg
	for seg in alice/p2pchat.db.wal.*; do
		if [ "$(stat -c %s "$seg")" -gt 8 ] && grep -qa 'a2b-q1' "$seg" && grep -qa 'a2b-q2' "$seg"; then
			return 0
		fi
	done
	echo "make.sh: no wal segment holding a2b-q1 and a2b-q2; retrying" >&2
	return 1
}

ok=
for try in 1 2 3 4 5; do
	if attempt; then
		ok=1
		break
	fi
	for p in ${alice_pid:-} ${bob_pid:-}; do kill -KILL "$p" 2>/dev/null || true; done
	exec 3>&- 4>&-
	sleep 1
done
[ -n "$ok" ] || { echo "make.sh: giving up" >&2; exit 1; }

# Only the data stays in the fixture.
rm -f alice/history bob/history alice/p2pchat.log bob/p2pchat.log
rm -f "$T"/*.in

for n in alice bob; do
	echo "$n $("$BIN" --id "$n" --data-dir "$n" --peers peers)"
done
echo "transcripts in $T"
ls -l alice bob
