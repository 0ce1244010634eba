//! The Block1/Block2 option value of RFC 7959 §2.2: block number, more flag, size exponent.

use coap_lite::{CoapOption, Packet};

/// One Block1 or Block2 option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockValue {
    /// Block number (0-based; at most 2^20 - 1).
    pub num: u32,
    /// Whether more blocks follow.
    pub more: bool,
    /// Size exponent: the block holds `2^(szx + 4)` bytes (0..=6; 7 is reserved for BERT).
    pub szx: u8,
}

impl BlockValue {
    /// The largest block number the 3-byte option can carry.
    pub const MAX_NUM: u32 = (1 << 20) - 1;

    /// The block size in bytes.
    pub fn size(self) -> usize {
        1 << (usize::from(self.szx.min(6)) + 4)
    }

    /// Where this block starts in the body.
    pub fn offset(self) -> usize {
        (self.num as usize).saturating_mul(self.size())
    }

    /// Decodes an option value (0 to 3 bytes, big-endian); `None` when malformed or BERT.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 3 {
            return None;
        }
        let raw = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (raw & 0x7) as u8;
        if szx == 7 {
            return None;
        }
        Some(Self {
            num: raw >> 4,
            more: raw & 0x8 != 0,
            szx,
        })
    }

    /// Encodes the value in the fewest bytes.
    pub fn encode(self) -> Vec<u8> {
        let raw =
            (self.num.min(Self::MAX_NUM) << 4) | (u32::from(self.more) << 3) | u32::from(self.szx);
        uint(raw)
    }

    /// The option `which` (Block1 or Block2) of `packet`: `None` when absent, `Some(None)` when
    /// malformed.
    pub fn of(packet: &Packet, which: CoapOption) -> Option<Option<Self>> {
        packet.get_first_option(which).map(|v| Self::decode(v))
    }

    /// The size exponent of the largest block not larger than `bytes` (16 at least, 1024 at most).
    pub fn szx_for(bytes: usize) -> u8 {
        let mut szx = 6u8;
        while szx > 0 && (1usize << (szx + 4)) > bytes {
            szx -= 1;
        }
        szx
    }
}

/// A CoAP uint option value: big-endian, no leading zero bytes (0 is empty).
pub fn uint(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// Reads a CoAP uint option value (at most 4 bytes).
pub fn read_uint(bytes: &[u8]) -> Option<u32> {
    (bytes.len() <= 4).then(|| bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_values_round_trip() {
        for value in [
            BlockValue {
                num: 0,
                more: true,
                szx: 6,
            },
            BlockValue {
                num: 1,
                more: false,
                szx: 2,
            },
            BlockValue {
                num: 4095,
                more: true,
                szx: 0,
            },
            BlockValue {
                num: BlockValue::MAX_NUM,
                more: false,
                szx: 5,
            },
        ] {
            assert_eq!(BlockValue::decode(&value.encode()), Some(value));
        }
        assert_eq!(
            BlockValue::decode(&[]),
            Some(BlockValue {
                num: 0,
                more: false,
                szx: 0
            })
        );
        assert_eq!(BlockValue::decode(&[0x0F]), None, "BERT is not supported");
        assert_eq!(BlockValue::decode(&[1, 2, 3, 4]), None);
        assert_eq!(
            BlockValue {
                num: 2,
                more: false,
                szx: 6
            }
            .offset(),
            2048
        );
        assert_eq!(BlockValue::szx_for(64), 2);
        assert_eq!(BlockValue::szx_for(5000), 6);
        assert_eq!(BlockValue::szx_for(3), 0);
        assert_eq!(uint(0), Vec::<u8>::new());
        assert_eq!(uint(0x0102), vec![1, 2]);
        assert_eq!(read_uint(&[1, 2]), Some(0x0102));
    }
}
