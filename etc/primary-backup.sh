#!/bin/sh
# Notify hook for operators who keep the failover sequence in a script (set
# `builtin_failover = false` in [sync]); tandemd runs the same steps itself by default.
# It calls conntrackd's verbs, so it works with `conntrackd` linked to tandemctl:
#   ln -s /usr/sbin/tandemctl /usr/local/sbin/conntrackd
# tandemd exports TANDEM_CONTROL to its hooks, so no socket path is needed here.
# Hook it up as:  notify_master "/etc/tandem/primary-backup.sh primary"  (and backup, fault)
CONNTRACKD=${CONNTRACKD:-conntrackd}

case "$1" in
primary)
	$CONNTRACKD -c   # the peer's flows into our kernel table
	$CONNTRACKD -f   # forget both caches
	$CONNTRACKD -R   # our table becomes the internal cache
	$CONNTRACKD -B   # and goes to the peer
	;;
backup)
	$CONNTRACKD -n   # ask the new primary for its flows
	;;
fault)
	$CONNTRACKD -t   # our flows expire soon unless traffic comes back
	;;
*)
	echo "usage: $0 primary|backup|fault" >&2
	exit 2
	;;
esac
