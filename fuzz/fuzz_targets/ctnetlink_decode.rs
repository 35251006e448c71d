//! Decoding arbitrary netlink bytes as ctnetlink never panics, and what decodes re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_ctnetlink::codec::{self, Message, Request};

fuzz_target!(|data: &[u8]| {
    for m in codec::messages(data) {
        if let Ok(Message::Conntrack { flow, .. }) = m {
            let mut create = Vec::new();
            codec::encode_request(
                &mut create,
                &flow,
                Request::Create { strict_tcp: true },
                0,
                2,
            );
            assert!(
                matches!(
                    codec::messages(&create).next(),
                    Some(Ok(Message::Conntrack { .. }))
                ),
                "a decoded flow re-encodes to a decodable create"
            );
        }
    }
    let _ = codec::decode_flow(data);
});
