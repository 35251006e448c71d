//! Flows as text for `dump internal` / `dump external`.

use tandem_ctnetlink::Flow;

/// One line per flow, in the words `conntrack -L` uses.
pub fn describe(f: &Flow) -> String {
    fn tuple(t: &tandem_ctnetlink::Tuple) -> String {
        let l4 = match t.l4 {
            tandem_ctnetlink::L4::Ports { src, dst } => format!(" sport={src} dport={dst}"),
            tandem_ctnetlink::L4::Icmp { id, kind, code } => {
                format!(" type={kind} code={code} id={id}")
            }
            tandem_ctnetlink::L4::None => String::new(),
        };
        format!("src={} dst={}{l4}", t.src, t.dst)
    }
    let state = f
        .tcp
        .map(|t| format!(" state={}", t.state))
        .unwrap_or_default();
    format!(
        "proto={} timeout={}{state} {} {} mark={} zone={}",
        f.orig.proto,
        f.timeout,
        tuple(&f.orig),
        tuple(&f.reply),
        f.mark,
        f.zone
    )
}
