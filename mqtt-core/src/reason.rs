//! [`ReasonCode`]: the one vocabulary for outcomes on the wire.

use std::fmt;

/// An MQTT 5.0 reason code (spec §2.4), also used internally for MQTT 3.1.1, whose CONNACK
/// return codes and SUBACK return codes are mapped from it by the encoder.
///
/// A newtype rather than an enum: a peer may send any byte, and an unknown code must be an
/// ordinary value we can log and reject, never a panic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ReasonCode(pub u8);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $($(#[$doc])* pub const $name: ReasonCode = ReasonCode($value);)*

            /// The name the specification gives this code, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// Success / Normal disconnection / Granted QoS 0.
    SUCCESS = 0x00, "Success";
    /// Granted QoS 1.
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    /// Granted QoS 2.
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    /// Disconnect with Will Message.
    DISCONNECT_WITH_WILL = 0x04, "Disconnect with Will Message";
    /// No matching subscribers.
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    /// No subscription existed.
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    /// Continue authentication.
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    /// Re-authenticate.
    REAUTHENTICATE = 0x19, "Re-authenticate";
    /// Unspecified error.
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    /// Malformed Packet.
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    /// Protocol Error.
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    /// Implementation specific error.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    /// Unsupported Protocol Version.
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    /// Client Identifier not valid.
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    /// Bad User Name or Password.
    BAD_USERNAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    /// Not authorized.
    NOT_AUTHORIZED = 0x87, "Not authorized";
    /// Server unavailable.
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    /// Server busy.
    SERVER_BUSY = 0x89, "Server busy";
    /// Banned.
    BANNED = 0x8A, "Banned";
    /// Server shutting down.
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    /// Bad authentication method.
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    /// Keep Alive timeout.
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    /// Session taken over.
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    /// Topic Filter invalid.
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    /// Topic Name invalid.
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    /// Packet Identifier in use.
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    /// Packet Identifier not found.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    /// Receive Maximum exceeded.
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    /// Topic Alias invalid.
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    /// Packet too large.
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    /// Message rate too high.
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    /// Quota exceeded.
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    /// Administrative action.
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    /// Payload format invalid.
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    /// Retain not supported.
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    /// QoS not supported.
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    /// Use another server.
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    /// Server moved.
    SERVER_MOVED = 0x9D, "Server moved";
    /// Shared Subscriptions not supported.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    /// Connection rate exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    /// Maximum connect time.
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    /// Subscription Identifiers not supported.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    /// Wildcard Subscriptions not supported.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// Whether this code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The MQTT 3.1.1 CONNACK return code (§3.2.2.3) that best conveys this reason.
    pub fn to_v311_connack(self) -> u8 {
        match self {
            Self::SUCCESS => 0,
            Self::UNSUPPORTED_PROTOCOL_VERSION => 1,
            Self::CLIENT_IDENTIFIER_NOT_VALID => 2,
            Self::BAD_USERNAME_OR_PASSWORD => 4,
            Self::NOT_AUTHORIZED | Self::BANNED | Self::BAD_AUTHENTICATION_METHOD => 5,
            _ => 3,
        }
    }

    /// The reason code for an MQTT 3.1.1 CONNACK return code.
    pub fn from_v311_connack(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::SUCCESS,
            1 => Self::UNSUPPORTED_PROTOCOL_VERSION,
            2 => Self::CLIENT_IDENTIFIER_NOT_VALID,
            3 => Self::SERVER_UNAVAILABLE,
            4 => Self::BAD_USERNAME_OR_PASSWORD,
            5 => Self::NOT_AUTHORIZED,
            _ => return None,
        })
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:02X})", self.0),
            None => write!(f, "0x{:02X}", self.0),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
