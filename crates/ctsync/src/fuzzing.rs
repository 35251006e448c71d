//! The check the fuzzer runs on arbitrary bytes, shared with the corpus replay test so both
//! exercise exactly the same code.

use std::time::Instant;

use crate::wire::{self, Attrs};
use crate::{AuthKey, Config, Input, Node, Record, WireError};

/// A small record: attribute 1 is a u32 key, everything else is skipped.
#[derive(Clone, Debug)]
struct Entry(u32);

impl Record for Entry {
    type Key = u32;
    fn key(&self) -> u32 {
        self.0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        wire::put_u32(out, 1, self.0);
    }
    fn decode(attrs: &[u8]) -> Result<Self, WireError> {
        let mut key = None;
        for a in Attrs::new(attrs) {
            if let (1, v) = a? {
                key = Some(wire::get_u32("key", 1, v)?);
            }
        }
        key.map(Entry).ok_or(WireError::Missing { field: "key" })
    }
}

/// Decoding never panics, a header that decodes re-encodes to the same bytes, and a node fed
/// the bytes (whole and split at 0xff), with and without a key, survives them.
pub fn fuzz_datagram(data: &[u8]) {
    let key = AuthKey::new(b"fuzz");
    let _ = wire::decode(data, Some(&key));
    if let Ok(msg) = wire::decode(data, None) {
        let mut again = Vec::new();
        msg.header.encode(&mut again);
        assert_eq!(&again[..], &data[..wire::HEADER_LEN], "header re-encodes");
        for a in Attrs::new(msg.body) {
            let (_, value) = a.expect("decode validated the attributes");
            for inner in Attrs::new(value) {
                let _ = inner;
            }
        }
    }
    let _ = wire::frame(data).map(|f| f.session());
    let now = Instant::now();
    let keyed = Config {
        hmac_key: Some(b"fuzz".to_vec()),
        ..Config::new(2, 1)
    };
    for config in [Config::new(2, 1), keyed] {
        let mut node: Node<Entry> = Node::new(config);
        node.handle(now, Input::Start);
        for chunk in data.split(|b| *b == 0xff) {
            node.handle(now, Input::Datagram(chunk));
        }
        node.handle(now, Input::Datagram(data));
    }
}
