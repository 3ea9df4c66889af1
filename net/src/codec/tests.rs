//! Codec tests: worked examples from PROTOCOL.md, leniency rules, limits, round trips and a
//! bounded fuzz over arbitrary bytes.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn json_frame(header: &str, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    let len = 4 + header.len() + body.len();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

fn decode_one(frame: &Bytes) -> RemotingCommand {
    let (command, consumed) = decode_frame(frame, &WireLimits::default())
        .expect("valid frame")
        .expect("whole frame");
    assert_eq!(consumed, frame.len());
    command
}

/// Data-driven check: a JSON header decodes to the expected fields.
fn check_json(header: &str, expected: &RemotingCommand) {
    let command = decode_one(&json_frame(header, b""));
    assert_eq!(&command, expected, "header: {header}");
}

#[test]
fn java_route_request_from_protocol_doc() {
    check_json(
        r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":479}"#,
        &RemotingCommand {
            code: 105,
            version: 479,
            opaque: 3,
            ext_fields: ExtFields::from([("topic", "TopicTest")]),
            ..RemotingCommand::default()
        },
    );
}

#[test]
fn json_ext_values_of_any_scalar_type_become_text() {
    // The C++ client sends ints as numbers; others send booleans; null means absent.
    check_json(
        r#"{"code":310,"extFields":{"e":3,"f":0,"h":-7,"m":true,"n":false,"x":null,"big":9007199254740993,"s":"a\u0001b\u0002c"},"language":"CPP","opaque":-5,"flag":2,"version":317}"#,
        &RemotingCommand {
            code: 310,
            language: Language::Cpp,
            version: 317,
            opaque: -5,
            flag: 2,
            ext_fields: ExtFields::from([
                ("e", "3"),
                ("f", "0"),
                ("h", "-7"),
                ("m", "true"),
                ("n", "false"),
                ("big", "9007199254740993"),
                ("s", "a\u{1}b\u{2}c"),
            ]),
            ..RemotingCommand::default()
        },
    );
}

#[test]
fn json_missing_or_null_ext_fields_empty_remark_numeric_language() {
    let expected = RemotingCommand { code: 34, version: 1, language: Language::Python, ..Default::default() };
    check_json(r#"{"code":34,"language":3,"version":1,"remark":""}"#, &expected);
    check_json(r#"{"code":34,"language":"PYTHON","version":1,"extFields":null,"remark":null}"#, &expected);
    check_json(
        r#"{"code":34,"language":"KLINGON","version":1}"#,
        &RemotingCommand { language: Language::Unknown("KLINGON".into()), ..expected.clone() },
    );
    // Numbers as strings are accepted for the int fields, as fastjson does, and so are
    // integral numbers written with a fraction.
    check_json(r#"{"code":"34","language":3,"version":"1","opaque":"0"}"#, &expected);
    check_json(r#"{"code":34.0,"language":3,"version":" 1 ","opaque":-0.0}"#, &expected);
}

#[test]
fn json_errors_are_typed() {
    let limits = WireLimits::default();
    for header in [
        r#"{"language":"JAVA"}"#,
        "not json",
        r#"{"code":"abc"}"#,
        r#"{"code":1,"extFields":{"a":[1]}}"#,
        r#"{"code":99999999999}"#,
        r#"{"code":1.5}"#,
        r#"{"code":true}"#,
        r#"{"code":1,"opaque":-2147483649}"#,
    ] {
        let frame = json_frame(header, b"");
        assert!(matches!(decode_frame(&frame, &limits), Err(WireError::Json(_))), "{header}");
    }
    // A header that is not UTF-8 (a stray byte in a value, or in a key) is not JSON.
    for header in [&b"{\"code\":1,\"extFields\":{\"a\":\"\xff\"}}"[..], b"{\"code\":1,\"\xc3\":2}"] {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(header);
        assert!(matches!(decode_frame(&frame.freeze(), &limits), Err(WireError::Json(_))), "{header:?}");
    }
}

#[test]
fn binary_worked_example_from_protocol_doc() {
    let frame: Vec<u8> = [
        &[0x00, 0x00, 0x00, 0x2d][..],
        &[0x01, 0x00, 0x00, 0x29],
        &[0x00, 0x69, 0x00, 0x01, 0xdf],
        &[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0, 0, 0, 0x14, 0, 5],
        b"topic",
        &[0, 0, 0, 9],
        b"TopicTest",
    ]
    .concat();
    let frame = Bytes::from(frame);
    let command = decode_one(&frame);
    assert_eq!(command.code, 105);
    assert_eq!(command.version, 479);
    assert_eq!(command.opaque, 3);
    assert_eq!(command.language, Language::Java);
    assert_eq!(command.serialize_type, SerializeType::RocketMq);
    assert_eq!(command.ext("topic"), Some("TopicTest"));
    // And it encodes back to the same bytes.
    assert_eq!(encode_to_bytes(&command).unwrap(), frame);
}

#[test]
fn json_response_encoding_has_string_values_and_sorted_keys() {
    let response = RemotingCommand::response(0, 42, None)
        .with_ext("queueOffset", 17)
        .with_ext("queueId", 2)
        .with_ext("MSG_REGION", "DefaultRegion");
    let frame = encode_to_bytes(&response).unwrap();
    let header_len = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&frame[8..8 + header_len]).unwrap();
    assert_eq!(
        header,
        r#"{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","queueId":"2","queueOffset":"17"},"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":479}"#
    );
    // Error responses carry the remark; extFields is `{}` rather than null (Appendix Q).
    let error = RemotingCommand::response(3, 7, Some(" request type 999 not supported".into()));
    let frame = encode_to_bytes(&error).unwrap();
    let text = String::from_utf8_lossy(&frame[8..]);
    assert!(text.contains(r#""extFields":{}"#), "{text}");
    assert!(text.contains(r#""remark":" request type 999 not supported""#), "{text}");
}

#[test]
fn incomplete_frames_ask_for_more() {
    let frame = json_frame(r#"{"code":1}"#, b"body");
    let limits = WireLimits::default();
    for cut in 0..frame.len() {
        assert_eq!(decode_frame(&frame.slice(..cut), &limits), Ok(None), "cut at {cut}");
    }
    let (command, used) = decode_frame(&frame, &limits).unwrap().unwrap();
    assert_eq!(used, frame.len());
    assert_eq!(&command.body[..], b"body");
}

#[test]
fn two_pipelined_frames_decode_in_turn() {
    let mut both = BytesMut::new();
    both.extend_from_slice(&json_frame(r#"{"code":1,"opaque":1}"#, b"a"));
    both.extend_from_slice(&json_frame(r#"{"code":2,"opaque":2}"#, b""));
    let mut buf = both.freeze();
    let limits = WireLimits::default();
    let (first, used) = decode_frame(&buf, &limits).unwrap().unwrap();
    buf = buf.slice(used..);
    let (second, used) = decode_frame(&buf, &limits).unwrap().unwrap();
    assert_eq!((first.code, first.opaque, &first.body[..]), (1, 1, &b"a"[..]));
    assert_eq!((second.code, second.opaque, second.body.len()), (2, 2, 0));
    assert_eq!(used, buf.len());
}

#[test]
fn limits_are_checked_before_the_body_arrives() {
    let limits = WireLimits { max_frame_bytes: 1024, max_header_bytes: 64 };
    // Only the 4-byte prefix: an over-limit length is refused without waiting for the rest.
    let prefix = Bytes::from(2048u32.to_be_bytes().to_vec());
    assert_eq!(
        decode_frame(&prefix, &limits),
        Err(WireError::FrameTooLarge { length: 2048, limit: 1024 })
    );
    // Exactly at the limit is accepted.
    assert_eq!(frame_length(&1024u32.to_be_bytes(), &limits), Ok(Some(1028)));
    // Negative and too-short lengths.
    for bad in [-1i32, 0, 3, i32::MIN] {
        assert!(matches!(frame_length(&bad.to_be_bytes(), &limits), Err(WireError::FrameTooShort { .. })));
    }
    // A header above its own limit, and a header length beyond the frame.
    let big_header = format!(r#"{{"code":1,"remark":"{}"}}"#, "x".repeat(100));
    assert_eq!(
        decode_frame(&json_frame(&big_header, b""), &limits),
        Err(WireError::HeaderTooLarge { length: big_header.len(), limit: 64 })
    );
    let mut lying = BytesMut::new();
    lying.extend_from_slice(&8u32.to_be_bytes());
    lying.extend_from_slice(&60u32.to_be_bytes());
    lying.extend_from_slice(b"{}{}");
    assert!(matches!(decode_frame(&lying.freeze(), &limits), Err(WireError::HeaderExceedsFrame { header: 60, frame: 8 })));
    // Unknown serialize type.
    let mut typed = BytesMut::new();
    typed.extend_from_slice(&6u32.to_be_bytes());
    typed.extend_from_slice(&(0x0700_0002u32).to_be_bytes());
    typed.extend_from_slice(b"{}");
    assert_eq!(decode_frame(&typed.freeze(), &limits), Err(WireError::UnknownSerializeType(7)));
}

#[test]
fn binary_length_fields_are_bounds_checked() {
    let limits = WireLimits::default();
    let good = RemotingCommand {
        serialize_type: SerializeType::RocketMq,
        remark: Some("r".into()),
        ..RemotingCommand::request(10).with_ext("k", "v")
    };
    let frame = encode_to_bytes(&good).unwrap();
    // Corrupt each length field in turn (remark length at header offset 13, ext length at
    // 18, key length at 22, value length at 25) with negative and oversized values.
    for offset in [13usize, 18, 22, 25] {
        for value in [0xFFu8, 0x7F] {
            let mut bad = frame.to_vec();
            bad[8 + offset] = value;
            let result = decode_frame(&Bytes::from(bad), &limits);
            assert!(matches!(result, Err(WireError::Binary(_))), "offset {offset}: {result:?}");
        }
    }
    let code = RemotingCommand { serialize_type: SerializeType::RocketMq, ..RemotingCommand::request(200050) };
    assert_eq!(encode_to_bytes(&code), Err(WireError::CodeOutOfRange(200050)));
}

fn arb_text() -> impl Strategy<Value = String> {
    // Control characters included: property strings carry \u0001 and \u0002 (§5.4).
    proptest::string::string_regex("[a-zA-Z0-9_%\\-\\.\u{1}\u{2} \"\\\\é中]{1,24}").unwrap()
}

fn arb_command(serialize_type: SerializeType) -> impl Strategy<Value = RemotingCommand> {
    let code = if serialize_type == SerializeType::RocketMq { -32768i32..32768 } else { i32::MIN..i32::MAX };
    let version = if serialize_type == SerializeType::RocketMq { -32768i32..32768 } else { i32::MIN..i32::MAX };
    (
        code,
        0u8..14,
        version,
        any::<i32>(),
        0i32..4,
        proptest::option::of(arb_text()),
        proptest::collection::btree_map(arb_text(), arb_text(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(code, lang, version, opaque, flag, remark, ext_fields, body)| RemotingCommand {
            code,
            language: Language::from_byte(lang),
            version,
            opaque,
            flag,
            remark,
            ext_fields: ext_fields.into_iter().collect(),
            body: Bytes::from(body),
            serialize_type,
        })
}

proptest! {
    #[test]
    fn json_round_trip(command in arb_command(SerializeType::Json)) {
        let frame = encode_to_bytes(&command).unwrap();
        prop_assert_eq!(decode_one(&frame), command);
    }

    #[test]
    fn binary_round_trip(command in arb_command(SerializeType::RocketMq)) {
        let frame = encode_to_bytes(&command).unwrap();
        prop_assert_eq!(decode_one(&frame), command);
    }
}

/// Arbitrary bytes never panic the decoder, and a reported frame length never exceeds the
/// limit (so a reader never allocates beyond it). Bounded in time so that CI stays fast.
#[test]
fn fuzz_arbitrary_bytes_never_panic() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let seed: u64 = std::env::var("FERROMQ_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_F00D);
    let mut rng = StdRng::seed_from_u64(seed);
    let limits = WireLimits { max_frame_bytes: 4096, max_header_bytes: 1024 };
    // Seeds to mutate: real frames of both encodings.
    let seeds: Vec<Vec<u8>> = vec![
        json_frame(r#"{"code":105,"extFields":{"topic":"T","n":3},"flag":0,"language":"JAVA","opaque":3,"version":479}"#, b"xy").to_vec(),
        encode_to_bytes(&RemotingCommand { serialize_type: SerializeType::RocketMq, remark: Some("r".into()), ..RemotingCommand::request(10).with_ext("topic", "T") }).unwrap().to_vec(),
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut iterations = 0u64;
    while Instant::now() < deadline && iterations < 2_000_000 {
        iterations += 1;
        let mut input = if rng.random_bool(0.3) {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect::<Vec<u8>>()
        } else {
            let mut s = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..s.len());
                match rng.random_range(0..3) {
                    0 => s[at] = rng.random(),
                    1 => s.truncate(at),
                    _ => s.insert(at, rng.random()),
                }
                if s.is_empty() { break; }
            }
            s
        };
        if input.is_empty() { input.push(0); }
        if let Ok(Some(total)) = frame_length(&input, &limits) {
            assert!(total <= limits.max_frame_bytes + LENGTH_PREFIX_BYTES);
        }
        let _ = decode_frame(&Bytes::from(input), &limits);
    }
    assert!(iterations > 1000, "fuzz ran only {iterations} iterations");
}
