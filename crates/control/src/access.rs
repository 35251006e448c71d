//! Who may run which verb on the control socket.

/// Who may run a verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads state: anyone who can connect (root and the control group).
    ReadOnly,
    /// Changes the caches, the kernel table or the configuration: uid 0 only.
    Root,
}

/// The access a request line needs, from its first word. Only the verbs known to read are
/// open to the group; everything else, unknown and future verbs included, needs root.
pub fn access(command: &str) -> Access {
    match command.split_whitespace().next().unwrap_or("") {
        "" | "status" | "stats" | "sync-stats" | "dump" | "metrics" => Access::ReadOnly,
        // commit, flush, resync, bulk, request-resync, shorten, reload, and the unknown.
        _ => Access::Root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_verbs_are_open_changing_verbs_need_root() {
        for read in [
            "",
            "status",
            "stats",
            "stats vrrp",
            "sync-stats",
            "dump internal",
            "dump external",
            "metrics",
        ] {
            assert_eq!(access(read), Access::ReadOnly, "{read:?}");
        }
        for change in [
            "commit",
            "commit external",
            "flush",
            "flush all",
            "resync",
            "bulk",
            "request-resync",
            "shorten",
            "reload",
            "bogus",
            "STATUS",
        ] {
            assert_eq!(access(change), Access::Root, "{change:?}");
        }
    }
}
