#!/bin/sh
# Writes keepalived's verdict on every corpus file to stdout, one tab-separated line each:
#   FILE  accepted|refused  EXIT-CODE  INTERFACES  FIRST-ERROR
# Usage (as root, keepalived installed): keepalived-verdicts.sh > VERDICTS.tsv
# (VERBOSE=1 also shows what keepalived said about each file, on stderr)
#
# `keepalived -t -f FILE` runs in a network namespace of its own. An interface the file names
# that does not exist is a refusal for keepalived but only a warning for tandem (which checks
# names against the host at start-up, not in the parser), so the verdict is taken on a host
# where they exist: every interface keepalived reports missing becomes an (empty) bridge in the
# namespace, and keepalived runs again until it reports none. INTERFACES lists those created.
#
# keepalived -t prints only configuration errors (every message goes through its
# report_config_error) and exits 0 when there are none. Two of them depend on this host, not on
# the file: a tracked script that does not exist here, and scripts that would run as root
# because this host has no `keepalived_script` user. They are left out of the verdict: a file
# is refused when keepalived exits non-zero and says something else; FIRST-ERROR is the first
# such message (file name removed).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
version=$(keepalived --version 2>&1 | head -n 1)
echo "# $version: keepalived -t -f FILE, run by keepalived-verdicts.sh"
for path in "$dir"/*.conf; do
    file=$(basename "$path")
    ns="tandem-corpus-$$"
    ip netns add "$ns"
    created=""
    while :; do
        set +e
        out=$(cd "$dir" && ip netns exec "$ns" keepalived -t -f "$path" 2>&1)
        rc=$?
        set -e
        missing=$(printf '%s\n' "$out" |
            sed -n "s/.*interface \([^ ]*\) .*doesn't exist.*/\1/p; s/.*interface \([^ ]*\) doesn't exist.*/\1/p" |
            sort -u)
        added=0
        for name in $missing; do
            case " $created " in *" $name "*) continue ;; esac
            if ip -n "$ns" link add "$name" type bridge 2>/dev/null; then
                created="$created $name"
                added=1
            fi
        done
        [ "$added" = 1 ] || break
    done
    ip netns del "$ns"
    [ -z "${VERBOSE:-}" ] || printf "== %s (exit %s)\n%s\n" "$file" "$rc" "$out" >&2
    errors=$(printf '%s\n' "$out" |
        grep -v "interface .*doesn't exist\|^Non-existent interface specified\|^Disabling track script .* since not found/accessible\|^SECURITY VIOLATION - scripts are being executed" |
        sed 's/^([^)]*: Line \([0-9]*\))/(Line \1)/' | grep -v '^$' || true)
    if [ "$rc" = 0 ] || [ -z "$errors" ]; then verdict=accepted; else verdict=refused; fi
    first=$(printf '%s\n' "$errors" | head -n 1 | tr '\t' ' ')
    created=$(echo $created | tr ' ' ',')
    printf '%s\t%s\t%s\t%s\t%s\n' "$file" "$verdict" "$rc" "${created:--}" "${first:--}"
done
