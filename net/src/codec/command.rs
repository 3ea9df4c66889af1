//! [`RemotingCommand`]: one decoded request or response (PROTOCOL.md §1.3), with the helpers
//! handlers use to build responses.

use bytes::Bytes;

use super::fields::ExtFields;
use crate::codes::{response_code, FLAG_ONEWAY, FLAG_RESPONSE};

/// The serialization of a frame's header: the top byte of the header-length word (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    /// Type 0: one UTF-8 JSON object. What FerroMQ always answers in (§1.2: the C++ 2.x client
    /// parses every header as JSON).
    #[default]
    Json,
    /// Type 1: the fixed binary layout of §1.5.
    RocketMq,
}

impl SerializeType {
    pub const fn to_byte(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

/// The sender's language (§1.3). JSON carries the enum name (or, from some clients, the
/// number); the binary header carries the byte. Unknown values are kept, never rejected,
/// because admin tools display them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
    NodeJs,
    /// A name or number this codec does not know, kept verbatim.
    Unknown(String),
}

/// (byte, name) in LanguageCode order; the index in this table is not used, the byte is.
const LANGUAGES: [(u8, &str); 14] = [
    (0, "JAVA"),
    (1, "CPP"),
    (2, "DOTNET"),
    (3, "PYTHON"),
    (4, "DELPHI"),
    (5, "ERLANG"),
    (6, "RUBY"),
    (7, "OTHER"),
    (8, "HTTP"),
    (9, "GO"),
    (10, "PHP"),
    (11, "OMS"),
    (12, "RUST"),
    (13, "NODE_JS"),
];

impl Language {
    fn known(self_byte: u8) -> Option<Language> {
        Some(match self_byte {
            0 => Language::Java,
            1 => Language::Cpp,
            2 => Language::Dotnet,
            3 => Language::Python,
            4 => Language::Delphi,
            5 => Language::Erlang,
            6 => Language::Ruby,
            7 => Language::Other,
            8 => Language::Http,
            9 => Language::Go,
            10 => Language::Php,
            11 => Language::Oms,
            12 => Language::Rust,
            13 => Language::NodeJs,
            _ => return None,
        })
    }

    /// The language for a LanguageCode byte; unknown bytes are kept as their decimal text.
    pub fn from_byte(byte: u8) -> Language {
        Language::known(byte).unwrap_or_else(|| Language::Unknown(byte.to_string()))
    }

    /// The language for a JSON enum name (or a decimal number, as some clients send).
    pub fn from_name(name: &str) -> Language {
        if let Some((byte, _)) = LANGUAGES.iter().find(|(_, n)| *n == name) {
            return Language::from_byte(*byte);
        }
        match name.parse::<u8>() {
            Ok(byte) => Language::from_byte(byte),
            Err(_) => Language::Unknown(name.to_owned()),
        }
    }

    /// The LanguageCode byte; unknown languages encode as OTHER (7).
    pub fn to_byte(&self) -> u8 {
        match self {
            Language::Unknown(text) => text
                .parse::<u8>()
                .ok()
                .filter(|b| Language::known(*b).is_some())
                .unwrap_or(7),
            known => LANGUAGES
                .iter()
                .find(|(_, n)| *n == known.name())
                .map_or(7, |(b, _)| *b),
        }
    }

    /// The JSON enum name; an unknown language is written back verbatim.
    pub fn name(&self) -> &str {
        match self {
            Language::Java => "JAVA",
            Language::Cpp => "CPP",
            Language::Dotnet => "DOTNET",
            Language::Python => "PYTHON",
            Language::Delphi => "DELPHI",
            Language::Erlang => "ERLANG",
            Language::Ruby => "RUBY",
            Language::Other => "OTHER",
            Language::Http => "HTTP",
            Language::Go => "GO",
            Language::Php => "PHP",
            Language::Oms => "OMS",
            Language::Rust => "RUST",
            Language::NodeJs => "NODE_JS",
            Language::Unknown(text) => text,
        }
    }
}

/// The version ordinal FerroMQ puts on everything it sends: V5_3_3 (§1.9). A modern ordinal
/// keeps SQL92 filtering enabled on clients, which remember the broker's version.
pub const FERROMQ_VERSION_ORDINAL: i32 = 479;

/// The name of [`FERROMQ_VERSION_ORDINAL`] in Java's `MQVersion.Version` enum, which
/// GET_BROKER_RUNTIME_INFO reports as `brokerVersionDesc` (§4.8).
pub const FERROMQ_VERSION_NAME: &str = "V5_3_3";

/// One remoting command: a request or a response (§1.3). `ext_fields` is the "custom header";
/// every value is text, whatever JSON type it arrived as (§1.4 rule 1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: Language,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    /// `None` when absent, null or empty (§1.4 rule 3).
    pub remark: Option<String>,
    /// Sorted, so that encoding is deterministic (fastjson sorts keys too).
    pub ext_fields: ExtFields,
    pub body: Bytes,
    /// How the header arrived. Responses FerroMQ builds are always JSON.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A new request with `code`, labelled JAVA with FerroMQ's version ordinal (§1.3).
    pub fn request(code: i32) -> RemotingCommand {
        RemotingCommand {
            code,
            version: FERROMQ_VERSION_ORDINAL,
            ..RemotingCommand::default()
        }
    }

    /// A response with `code` and an optional remark for the request `opaque`.
    pub fn response(code: i32, opaque: i32, remark: Option<String>) -> RemotingCommand {
        RemotingCommand {
            code,
            version: FERROMQ_VERSION_ORDINAL,
            opaque,
            flag: FLAG_RESPONSE,
            remark,
            ..RemotingCommand::default()
        }
    }

    /// A SUCCESS response to this request.
    pub fn success_response(&self) -> RemotingCommand {
        RemotingCommand::response(response_code::SUCCESS, self.opaque, None)
    }

    /// An error response to this request with a remark an operator can act on.
    pub fn error_response(&self, code: i32, remark: impl Into<String>) -> RemotingCommand {
        RemotingCommand::response(code, self.opaque, Some(remark.into()))
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this request one-way: the peer must never answer it (§1.6).
    pub fn set_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// Builder-style ext field insertion; `value` is stored as its `Display` text.
    pub fn with_ext(mut self, key: &str, value: impl std::fmt::Display) -> RemotingCommand {
        self.ext_fields.insert_display(key, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> RemotingCommand {
        self.body = body.into();
        self
    }

    /// An ext field's text, if present.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_names_and_bytes_agree() {
        for (byte, name) in LANGUAGES {
            let by_byte = Language::from_byte(byte);
            assert_eq!(by_byte.name(), name);
            assert_eq!(by_byte.to_byte(), byte);
            assert_eq!(Language::from_name(name), by_byte);
        }
    }

    #[test]
    fn unknown_languages_are_kept() {
        assert_eq!(Language::from_name("COBOL"), Language::Unknown("COBOL".into()));
        assert_eq!(Language::from_name("COBOL").to_byte(), 7);
        assert_eq!(Language::from_name("3"), Language::Python);
        assert_eq!(Language::from_byte(200), Language::Unknown("200".into()));
    }
}
