//! Every keyword keepalived 2.2.7 installs on the load-balancing side
//! (tests/keywords/keepalived-2.2.7-lvs.txt, written by tests/keywords/extract-lvs-keywords.py
//! from keepalived's check parsers) is read into tandem's model or warned about at its line.
//!
//! "Read into the model" is measured, not listed: the keyword's line, with a value that is not
//! keepalived's default, must change `Config::virtual_servers` compared with the same file
//! holding a comment on that line.

mod common;

use std::path::PathBuf;

use common::keyword_list;
use tandem_config::{parse_str, Config, ConfigError};

/// keepalived 2.2.7's load-balancing keywords, under tests/keywords.
const LIST: &str = "keepalived-2.2.7-lvs.txt";

/// A value for each keyword that differs from keepalived's default, and lines the block needs
/// before it (present in the baseline too): (block, keyword, lines before, value).
const SAMPLES: &[(&str, &str, &str, &str)] = &[
    ("virtual_server", "ip_family", "", " inet"),
    ("virtual_server", "retry", "", " 5"),
    ("virtual_server", "delay_before_retry", "", " 7"),
    ("virtual_server", "warmup", "", " 9"),
    ("virtual_server", "connect_timeout", "", " 2"),
    ("virtual_server", "delay_loop", "", " 3"),
    ("virtual_server", "lb_algo", "", " wrr"),
    ("virtual_server", "lvs_sched", "", " wrr"),
    ("virtual_server", "lb_kind", "", " DR"),
    ("virtual_server", "lvs_method", "", " DR"),
    ("virtual_server", "persistence_engine", "", " sip"),
    ("virtual_server", "persistence_timeout", "", " 50"),
    (
        "virtual_server",
        "persistence_granularity",
        "",
        " 255.255.255.0",
    ),
    ("virtual_server", "protocol", "", " UDP"),
    ("virtual_server", "virtualhost", "", " www.example.com"),
    ("virtual_server", "snmp_name", "", " web"),
    ("virtual_server", "quorum_up", "", " /bin/true up"),
    ("virtual_server", "quorum_down", "", " /bin/true down"),
    ("virtual_server", "quorum", "", " 1"),
    ("virtual_server", "hysteresis", "", " 1"),
    ("virtual_server", "weight", "", " 3"),
    ("virtual_server", "sorry_server", "", " 10.0.0.9 80"),
    (
        "virtual_server",
        "sorry_server_inhibit",
        "sorry_server 10.0.0.9 80",
        "",
    ),
    (
        "virtual_server",
        "sorry_server_lvs_method",
        "sorry_server 10.0.0.9 80",
        " DR",
    ),
    ("real_server", "weight", "", " 3"),
    ("real_server", "lvs_method", "", " DR"),
    ("real_server", "uthreshold", "", " 100"),
    ("real_server", "lthreshold", "", " 10"),
    ("real_server", "notify_up", "", " /bin/true up"),
    ("real_server", "notify_down", "", " /bin/true down"),
    ("real_server", "retry", "", " 5"),
    ("real_server", "delay_before_retry", "", " 7"),
    ("real_server", "warmup", "", " 9"),
    ("real_server", "connect_timeout", "", " 2"),
    ("real_server", "delay_loop", "", " 3"),
    ("real_server", "smtp_alert", "", " off"),
    ("real_server", "virtualhost", "", " www.example.com"),
    ("real_server", "snmp_name", "", " web1"),
    ("MISC_CHECK", "misc_path", "", " /bin/false"),
    ("MISC_CHECK", "misc_timeout", "", " 5"),
    ("MISC_CHECK", "user", "", " nobody"),
    ("SMTP_CHECK", "helo_name", "", " mx.example.com"),
    ("UDP_CHECK", "payload", "", " 0a0b"),
    ("UDP_CHECK", "min_reply_length", "", " 1"),
    ("UDP_CHECK", "max_reply_length", "", " 100"),
    ("HTTP_GET", "virtualhost", "", " www.example.com"),
    ("HTTP_GET", "http_protocol", "", " 1.1"),
    ("SSL_GET", "virtualhost", "", " www.example.com"),
    ("SSL_GET", "http_protocol", "", " 1.1"),
    ("url", "path", "", " /health"),
    ("url", "digest", "", " 640205b7b0fc66c1ea91c463fac6334d"),
    ("url", "status_code", "", " 301 302"),
    ("url", "virtualhost", "", " www.example.com"),
    ("url", "regex", "", " ok"),
    ("url", "regex_no_match", "regex ok", ""),
    ("url", "regex_options", "regex ok", " caseless"),
    ("url", "regex_min_offset", "regex ok", " 2"),
    ("url", "regex_max_offset", "regex ok", " 9"),
    ("url", "regex_stack", "regex ok", " 10 100"),
    ("DNS_CHECK", "type", "", " A"),
    ("DNS_CHECK", "name", "", " example.com"),
    ("FILE_CHECK", "track_file", "", " tf2"),
    ("FILE_CHECK", "weight", "", " 5"),
    ("BFD_CHECK", "name", "", " other"),
];

/// Values for the keywords every checker shares.
const CHECKER_COMMON: &[(&str, &str)] = &[
    ("connect_ip", " 10.0.0.7"),
    ("connect_port", " 8080"),
    ("bindto", " 10.0.0.1"),
    ("bind_port", " 4000"),
    ("bind_if", " eth0"),
    ("connect_timeout", " 2"),
    ("fwmark", " 7"),
    ("retry", " 5"),
    ("delay_before_retry", " 7"),
    ("warmup", " 9"),
    ("delay_loop", " 3"),
];

/// Keywords keepalived itself refuses (a configuration error in `keepalived -t`).
const REFUSED_BY_KEEPALIVED: &[(&str, &str)] =
    &[("HTTP_GET", "nb_get_retry"), ("SSL_GET", "nb_get_retry")];

/// A director configuration with `line` in `block` (after `pre`), and the line it is on.
fn placed(block: &str, key: &str, pre: &str, line: &str) -> (String, u32) {
    let algo = if key.starts_with("mh-") { "mh" } else { "sh" };
    let protocol = if key == "ops" { "UDP" } else { "TCP" };
    let head = format!(
        "track_file tf {{\n file /run/tf\n}}\ntrack_file tf2 {{\n file /run/tf2\n}}\n\
         virtual_server 10.0.0.1 80 {{\n lb_algo {algo}\n lb_kind NAT\n protocol {protocol}\n quorum 2\n"
    );
    let head_lines = head.lines().count() as u32;
    let pre_lines = |p: &str| -> (String, u32) {
        if p.is_empty() {
            (String::new(), 0)
        } else {
            (format!("{p}\n"), 1)
        }
    };
    let (pre, np) = pre_lines(pre);
    let rs2 = " real_server 10.0.0.3 80\n}\n";
    match block {
        "top" => (format!("{line}\n"), 1),
        "SSL" => (format!("SSL {{\n{line}\n}}\n"), 2),
        "virtual_server" => (
            format!(
                "{head}{pre}{line}\n real_server 10.0.0.2 80 {{\n  TCP_CHECK {{\n  }}\n }}\n{rs2}"
            ),
            head_lines + np + 1,
        ),
        "real_server" => (
            format!(
                "{head} real_server 10.0.0.2 80 {{\n  TCP_CHECK {{\n  }}\n{pre}{line}\n }}\n{rs2}"
            ),
            head_lines + 3 + np + 1,
        ),
        "url" | "host" => {
            let (checker, open, inner) = if block == "url" {
                ("HTTP_GET", "url {", "path /\n")
            } else {
                ("SMTP_CHECK", "host {", "")
            };
            let inner_lines = inner.lines().count() as u32;
            (
                format!("{head} real_server 10.0.0.2 80 {{\n  {checker} {{\n   {open}\n{inner}{pre}{line}\n   }}\n  }}\n }}\n{rs2}"),
                head_lines + 3 + inner_lines + np + 1,
            )
        }
        checker => {
            let needs = match checker {
                "MISC_CHECK" => "misc_path /bin/true\n",
                "HTTP_GET" | "SSL_GET" => "url {\n path /\n}\n",
                "FILE_CHECK" => "track_file tf\n",
                "BFD_CHECK" => "name b\n",
                _ => "",
            };
            let need_lines = needs.lines().count() as u32;
            (
                format!("{head} real_server 10.0.0.2 80 {{\n  {checker} {{\n{needs}{pre}{line}\n  }}\n }}\n{rs2}"),
                head_lines + 2 + need_lines + np + 1,
            )
        }
    }
}

fn file() -> PathBuf {
    PathBuf::from("lb.conf")
}

fn parse(text: &str) -> Result<Config, Vec<String>> {
    match parse_str(text, &file()) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid { errors, .. }) => {
            Err(errors.iter().map(|e| e.to_string()).collect())
        }
        Err(e) => panic!("{e}"),
    }
}

/// The load-balancing part of the model, without the lines things were written on.
fn lb_model(c: &Config) -> String {
    let text = format!("{:?}{:?}", c.virtual_servers, c.virtual_server_groups);
    let mut out = String::new();
    for part in text.split("location: Location {") {
        match part.find('}') {
            Some(end) if !out.is_empty() => out.push_str(&part[end + 1..]),
            _ => out.push_str(part),
        }
    }
    out
}

fn sample(block: &str, key: &str) -> (&'static str, String) {
    if let Some((_, _, pre, v)) = SAMPLES.iter().find(|(b, k, _, _)| *b == block && *k == key) {
        return (pre, (*v).to_owned());
    }
    if let Some((_, v)) = CHECKER_COMMON.iter().find(|(k, _)| *k == key) {
        return ("", (*v).to_owned());
    }
    ("", String::new())
}

#[test]
fn the_list_is_keepalived_s_whole_lvs_side() {
    let list = keyword_list(LIST);
    assert!(list.len() > 200, "{} keywords", list.len());
    for (b, k) in [
        ("top", "virtual_server"),
        ("virtual_server", "sorry_server_lvs_method"),
        ("real_server", "uthreshold"),
        ("HTTP_GET", "enable_sni"),
        ("url", "regex_max_offset"),
        ("MISC_CHECK", "misc_dynamic"),
        ("host", "connect_ip"),
        ("UDP_CHECK", "require_reply"),
    ] {
        assert!(list.iter().any(|(lb, lk)| lb == b && lk == k), "{b} {k}");
    }
}

#[test]
fn every_lvs_keyword_is_read_into_the_model_or_warned_at_its_line() {
    let mut failures = Vec::new();
    let mut read = 0;
    let mut warned_count = 0;
    for (block, key) in keyword_list(LIST) {
        let opens_block = matches!(
            key.as_str(),
            "virtual_server" | "real_server" | "url" | "host"
        ) || key.ends_with("_CHECK")
            || key.ends_with("_GET");
        if opens_block || (block == "top" && key == "virtual_server_group") {
            // Every placement below is built of these blocks, so each other keyword's test
            // reads them too (and tests/lvs.rs reads virtual_server_group).
            read += 1;
            continue;
        }
        let (pre, value) = sample(&block, &key);
        let (text, line) = placed(&block, &key, pre, &format!("{key}{value}"));
        let (baseline, _) = placed(&block, &key, pre, "# nothing here");
        let refused = REFUSED_BY_KEEPALIVED.contains(&(block.as_str(), key.as_str()));
        let config = match parse(&text) {
            Ok(c) if refused => {
                failures.push(format!(
                    "{block} {key}: keepalived refuses it, tandem accepts it"
                ));
                let _ = c;
                continue;
            }
            Ok(c) => c,
            Err(errors) if refused && errors.iter().any(|e| e.contains(&format!(":{line}:"))) => {
                continue;
            }
            Err(errors) => {
                failures.push(format!(
                    "{block} {key}: refused:\n  {}\n{text}",
                    errors.join("\n  ")
                ));
                continue;
            }
        };
        let at_line = config.warnings.iter().any(|w| {
            (w.location.line == line || (block == "SSL" && w.location.line == 1))
                && (w.message.contains(&format!("`{key}`"))
                    || w.message.contains(&format!("`{block}`")))
        });
        if at_line {
            warned_count += 1;
            continue;
        }
        let before = parse(&baseline).map(|c| lb_model(&c));
        if before.as_ref().is_ok_and(|b| *b != lb_model(&config)) {
            read += 1;
        } else if key == "ip_family" {
            // `ip_family inet` on an IPv4 service states what the address already says.
            read += 1;
        } else {
            failures.push(format!(
                "{block} {key}: neither changes the model nor is warned at line {line} of:\n{text}warnings: {:?}",
                config.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>()
            ));
        }
    }
    eprintln!("LVS keywords: {read} read into the model, {warned_count} warned");
    assert!(
        failures.is_empty(),
        "{} keyword(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
