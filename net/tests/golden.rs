//! Golden tests: frames captured from the third-party client `rocketmq-client-rust` 1.0.0
//! (see `golden/README.md`) decode with the fields that client sent, in both header
//! encodings, and re-encode to frames that decode to the same command.

use std::path::PathBuf;

use bytes::Bytes;
use ferromq_net::codec::{decode_frame, encode_to_bytes};
use ferromq_net::{Language, RemotingCommand, SerializeType, WireLimits};

fn golden(name_prefix: &str) -> (String, RemotingCommand) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(name_prefix))
        .unwrap_or_else(|| panic!("no golden file {name_prefix}*"));
    let bytes = Bytes::from(std::fs::read(&entry).unwrap());
    let (command, used) = decode_frame(&bytes, &WireLimits::default()).unwrap().expect("a whole frame");
    assert_eq!(used, bytes.len(), "{}: trailing bytes", entry.display());
    (entry.file_name().unwrap().to_string_lossy().into_owned(), command)
}

#[test]
fn every_golden_frame_decodes_to_its_code_and_round_trips() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let code: i32 = name.split('_').nth(1).unwrap().parse().unwrap();
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let (command, used) = decode_frame(&bytes, &WireLimits::default()).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{name}");
        assert_eq!(command.code, code, "{name}");
        assert_eq!(command.language, Language::Rust, "{name}");
        assert_eq!(command.version, 474, "{name}");
        assert!(!command.is_response(), "{name}");
        let expected_type = if name.contains("binary") { SerializeType::RocketMq } else { SerializeType::Json };
        assert_eq!(command.serialize_type, expected_type, "{name}");
        // Re-encode in both header types: the command survives unchanged.
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let mut again = command.clone();
            again.serialize_type = serialize_type;
            let frame = encode_to_bytes(&again).unwrap();
            let (decoded, _) = decode_frame(&frame, &WireLimits::default()).unwrap().unwrap();
            // The binary form cannot carry empty values (Java reads them as null).
            let mut expected = again.clone();
            if serialize_type == SerializeType::RocketMq {
                expected.ext_fields.retain(|_, v| !v.is_empty());
            }
            assert_eq!(decoded, expected, "{name} as {serialize_type:?}");
        }
        count += 1;
    }
    assert!(count >= 20, "only {count} golden frames found");
}

#[test]
fn route_request_carries_the_topic() {
    let (_, json) = golden("01_105");
    assert_eq!(json.ext("topic"), Some("TopicTest"));
    assert_eq!(json.remark, None, "\"remark\":null is absent");
    let (_, binary) = golden("16_105");
    assert_eq!(binary.ext("topic"), Some("TopicTest"));
}

#[test]
fn send_v1_carries_topic_tags_keys_and_properties() {
    let (name, send) = golden("05_10");
    assert!(send.ext("topic").is_some(), "{name}: {send:?}");
    assert!(send.ext("producerGroup").is_some(), "{name}");
    let properties = send.ext("properties").expect("properties");
    // Properties are name\u0001value pairs separated by \u0002 (PROTOCOL.md §5.4).
    assert!(properties.contains('\u{1}') && properties.contains('\u{2}'), "{properties:?}");
    assert!(properties.contains("TAGS\u{1}"), "{properties:?}");
    assert!(properties.contains("KEYS\u{1}"), "{properties:?}");
    assert!(!send.body.is_empty());
}

#[test]
fn batch_and_v2_sends_use_short_keys() {
    for prefix in ["06_310", "07_320", "20_320"] {
        let (name, send) = golden(prefix);
        for key in ["a", "b", "d", "e"] {
            assert!(send.ext(key).is_some(), "{name}: missing short key {key}: {send:?}");
        }
        assert!(!send.body.is_empty(), "{name}");
    }
}

#[test]
fn pull_and_offset_frames() {
    let (name, pull) = golden("13_11");
    for key in ["consumerGroup", "topic", "queueId", "queueOffset", "maxMsgNums", "sysFlag"] {
        assert!(pull.ext(key).is_some(), "{name}: missing {key}");
    }
    let (name, update) = golden("14_15");
    assert!(update.is_oneway(), "{name}: UPDATE_CONSUMER_OFFSET is one-way");
    let (name, update) = golden("23_15");
    assert!(update.is_oneway(), "{name}");
}
