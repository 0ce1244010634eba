//! The body of the `lwm2m_decode` fuzz target, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so that both run exactly this code.

use crate::{
    link::{self, LinkLimits},
    oma_json, senml, tlv,
};

/// Feeds `data` to every payload decoder. Beyond "never panics", a TLV payload that decodes
/// must encode again and decode to the same elements. Returns how many decoders accepted it.
pub fn decode_all(data: &[u8]) -> usize {
    let mut accepted = 0;
    if let Ok(tlvs) = tlv::decode(data) {
        accepted += 1;
        let mut again = Vec::new();
        let encoded = tlv::encode(&tlvs, &mut again);
        assert!(encoded.is_ok(), "decoded TLV does not encode");
        assert_eq!(
            tlv::decode(&again).ok(),
            Some(tlvs),
            "TLV does not round-trip"
        );
    }
    accepted += usize::from(senml::decode(data).is_ok());
    accepted += usize::from(oma_json::decode(data).is_ok());
    accepted += usize::from(link::parse_links(data, LinkLimits::default()).is_ok());
    accepted += usize::from(link::object_list(data, LinkLimits::default()).is_ok());
    accepted
}
