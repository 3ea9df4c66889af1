//! One way to read a request's custom header (`extFields`, PROTOCOL.md §1.8).
//!
//! Every handler reads its fields through [`Header`]: a field the handler needs that is missing
//! or empty is an error naming the field; a value that does not parse as the field's type, or
//! does not fit it, is an error naming the field and the value — never truncated (`as i32`),
//! never silently 0. Optional fields are `Option`s (absent or empty → `None`, but present and
//! malformed → still an error). Numbers are decimal, surrounding blanks allowed (some clients
//! send numbers as JSON numbers, which the codec keeps as their text).

use ferromq_net::RemotingCommand;
use ferromq_store::QueueId;

/// Why a header field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the request header has no {field}")]
    Missing { field: &'static str },
    #[error("the request header's {field} is not {expected}: {value:?}")]
    Invalid { field: &'static str, expected: &'static str, value: String },
}

/// A typed view of a request's `extFields`.
#[derive(Clone, Copy)]
pub struct Header<'a> {
    request: &'a RemotingCommand,
}

impl<'a> Header<'a> {
    pub fn of(request: &'a RemotingCommand) -> Header<'a> {
        Header { request }
    }

    /// The field's text; absent and empty both mean "not given" (§1.4 rule 3).
    pub fn opt_str(&self, field: &'static str) -> Option<&'a str> {
        self.request.ext(field).filter(|v| !v.is_empty())
    }

    /// A required, non-empty text field.
    pub fn str(&self, field: &'static str) -> Result<&'a str, HeaderError> {
        self.opt_str(field).ok_or(HeaderError::Missing { field })
    }

    /// An optional `i64`.
    pub fn opt_i64(&self, field: &'static str) -> Result<Option<i64>, HeaderError> {
        self.opt_parsed(field, "a 64-bit integer")
    }

    /// A required `i64`.
    pub fn i64(&self, field: &'static str) -> Result<i64, HeaderError> {
        self.opt_i64(field)?.ok_or(HeaderError::Missing { field })
    }

    /// An optional `i32`.
    pub fn opt_i32(&self, field: &'static str) -> Result<Option<i32>, HeaderError> {
        self.opt_parsed(field, "a 32-bit integer")
    }

    /// A required `i32`.
    pub fn i32(&self, field: &'static str) -> Result<i32, HeaderError> {
        self.opt_i32(field)?.ok_or(HeaderError::Missing { field })
    }

    /// An optional non-negative `i32` (queue ids, counts), as `u32`.
    pub fn opt_u31(&self, field: &'static str) -> Result<Option<u32>, HeaderError> {
        match self.opt_i32(field)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| HeaderError::Invalid { field, expected: "a non-negative 32-bit integer", value: v.to_string() }),
        }
    }

    /// A required non-negative `i32`, as `u32`.
    pub fn u31(&self, field: &'static str) -> Result<u32, HeaderError> {
        self.opt_u31(field)?.ok_or(HeaderError::Missing { field })
    }

    /// A required queue id (a non-negative `i32`).
    pub fn queue_id(&self, field: &'static str) -> Result<QueueId, HeaderError> {
        self.u31(field).map(QueueId)
    }

    /// An optional boolean: `true`/`false` in any case (Java's `Boolean.parseBoolean` takes
    /// anything else as false; FerroMQ says so instead).
    pub fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, HeaderError> {
        match self.opt_str(field).map(str::trim) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(HeaderError::Invalid { field, expected: "true or false", value: v.to_owned() }),
        }
    }

    fn opt_parsed<T: std::str::FromStr>(&self, field: &'static str, expected: &'static str) -> Result<Option<T>, HeaderError> {
        match self.opt_str(field) {
            None => Ok(None),
            Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| HeaderError::Invalid { field, expected, value: v.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> RemotingCommand {
        fields.iter().fold(RemotingCommand::request(11), |r, (k, v)| r.with_ext(k, v))
    }

    #[test]
    fn required_fields_name_themselves_when_missing_or_empty() {
        let r = request(&[("topic", "")]);
        let h = Header::of(&r);
        assert_eq!(h.str("topic"), Err(HeaderError::Missing { field: "topic" }));
        assert_eq!(h.i32("queueId"), Err(HeaderError::Missing { field: "queueId" }));
        assert_eq!(h.opt_i32("queueId"), Ok(None));
        assert!(h.u31("queueId").unwrap_err().to_string().contains("queueId"));
    }

    #[test]
    fn numbers_are_never_truncated_or_defaulted() {
        let r = request(&[("queueId", "4294967297"), ("n", " 7 "), ("neg", "-1"), ("text", "seven"), ("big", "9007199254740993")]);
        let h = Header::of(&r);
        assert!(matches!(h.i32("queueId"), Err(HeaderError::Invalid { field: "queueId", .. })));
        assert_eq!(h.i32("n"), Ok(7));
        assert_eq!(h.i32("neg"), Ok(-1));
        assert!(h.u31("neg").is_err());
        assert_eq!(h.queue_id("n"), Ok(QueueId(7)));
        assert!(matches!(h.queue_id("neg"), Err(HeaderError::Invalid { field: "neg", .. })), "a negative queue id names no queue");
        assert!(matches!(h.queue_id("queueId"), Err(HeaderError::Invalid { field: "queueId", .. })), "no truncation to 32 bits");
        let e = h.i64("text").unwrap_err().to_string();
        assert!(e.contains("text") && e.contains("seven"), "{e}");
        assert_eq!(h.i64("big"), Ok(9_007_199_254_740_993));
    }

    #[test]
    fn booleans_are_strict() {
        let r = request(&[("a", "TRUE"), ("b", "false"), ("c", "yes")]);
        let h = Header::of(&r);
        assert_eq!(h.opt_bool("a"), Ok(Some(true)));
        assert_eq!(h.opt_bool("b"), Ok(Some(false)));
        assert!(h.opt_bool("c").is_err());
        assert_eq!(h.opt_bool("d"), Ok(None));
    }
}
