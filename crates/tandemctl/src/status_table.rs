//! `tandemctl status`: the daemon's JSON status (`status json`, docs/control-and-health.md)
//! laid out for a person: one row per instance, the sync groups, the replication peer, and a
//! verdict line.

use serde_json::Value;

/// The table for the status document `status`.
pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let mut rows = vec![[
        "INSTANCE",
        "STATE",
        "PRIORITY",
        "MASTER",
        "VIPS",
        "IN STATE",
        "LAST TRANSITION",
    ]
    .map(String::from)];
    for i in status["instances"].as_array().into_iter().flatten() {
        let priority = match (i["priority"].as_u64(), i["base_priority"].as_u64()) {
            (Some(p), Some(b)) if p != b => format!("{p} (base {b})"),
            (Some(p), _) => p.to_string(),
            _ => "-".into(),
        };
        let vips: Vec<&str> = (i["addresses"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        let last = &i["last_transition"];
        let transition = match (last["from"].as_str(), last["to"].as_str()) {
            (Some(from), Some(to)) => {
                format!("{from} -> {to}: {}", last["cause"].as_str().unwrap_or("?"))
            }
            _ => "-".into(),
        };
        rows.push([
            text(&i["name"]),
            text(&i["state"]),
            priority,
            match (&i["master"], i["state"].as_str()) {
                (Value::Null, Some("MASTER")) => "(self)".into(),
                (master, _) => text(master),
            },
            if vips.is_empty() {
                "-".into()
            } else {
                vips.join(",")
            },
            i["in_state_seconds"].as_f64().map_or("-".into(), duration),
            transition,
        ]);
    }
    table(&mut out, &rows);
    let groups = status["groups"].as_array().filter(|g| !g.is_empty());
    if let Some(groups) = groups {
        out.push('\n');
        let mut rows = vec![["SYNC GROUP", "STATE", "MEMBERS"].map(String::from)];
        for g in groups {
            let members: Vec<&str> = (g["members"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            rows.push([text(&g["name"]), text(&g["state"]), members.join(",")]);
        }
        table(&mut out, &rows);
    }
    let sync = &status["sync"];
    if sync.is_object() {
        let heard = sync["last_heard_seconds"]
            .as_f64()
            .map_or("never heard".into(), |s| format!("last heard {s:.1} s ago"));
        let verdict = if sync["silent"].as_bool() == Some(true) {
            "SILENT"
        } else {
            "ok"
        };
        let drops: u64 = (sync["drops_by_reason"].as_object().into_iter().flatten())
            .filter_map(|(_, n)| n.as_u64())
            .sum();
        out.push_str(&format!(
            "\nsync peer {}: {verdict}, {heard}\n  caches: internal {}, external {}; records sent {}, \
             received {}; unacked {}, queued {} B; retransmissions {}; drops {drops}\n",
            text(&sync["peer"]),
            number(&sync["internal_entries"]),
            number(&sync["external_entries"]),
            number(&sync["records_sent"]),
            number(&sync["records_received"]),
            number(&sync["unacked"]),
            number(&sync["queued_bytes"]),
            number(&sync["retransmissions"]),
        ));
    }
    let failover = &status["failover"];
    if failover.is_object() {
        out.push_str(&format!(
            "failover: steps pending {}, waiting for commit {}, holding preemption {}, warnings {}{}\n",
            number(&failover["steps_pending"]),
            yes_no(&failover["waiting_for_commit"]),
            yes_no(&failover["holding_preemption"]),
            number(&failover["warnings"]),
            failover["last_warning"]
                .as_str()
                .map_or(String::new(), |w| format!(" (last: {w})")),
        ));
    }
    let health = &status["health"];
    if health["ok"].as_bool() == Some(true) {
        out.push_str("\nhealth: ok\n");
    } else {
        let failing: Vec<&str> = (health["failing"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!("\nhealth: FAILING {}\n", failing.join(" ")));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> String {
    v.as_u64().map_or("-".into(), |n| n.to_string())
}

fn yes_no(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
}

/// `42s`, `5m07s`, `3h02m`, `2d04h`.
fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Rows with columns padded to their widest cell (the last column unpadded).
fn table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_member_is_one_row_and_a_verdict() {
        let status: Value = serde_json::from_str(
            r#"{"instances":[{"name":"VI_1","state":"MASTER","priority":100,"base_priority":150,
            "master":"10.0.0.1","addresses":["10.0.0.254/24"],"in_state_seconds":307.2,
            "last_transition":{"from":"BACKUP","to":"MASTER","cause":"the master sent priority 0","seconds_ago":307.2}}],
            "groups":[],"sync":null,"failover":null,"health":{"ok":false,"failing":["sync=silent"]}}"#,
        )
        .unwrap();
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "INSTANCE  STATE   PRIORITY        MASTER    VIPS           IN STATE  LAST TRANSITION"
        );
        assert_eq!(
            lines[1],
            "VI_1      MASTER  100 (base 150)  10.0.0.1  10.0.0.254/24  5m07s     BACKUP -> MASTER: the master sent priority 0"
        );
        assert!(text.ends_with("\nhealth: FAILING sync=silent\n"), "{text}");
    }
}
