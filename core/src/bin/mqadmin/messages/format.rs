//! How the Java tool writes things that are not plain numbers and strings: local times
//! (`UtilAll.formatDate`, `timeMillisToHumanString2`), the `yyyy-MM-dd#HH:mm:ss:SSS` times it
//! reads, `MQVersion` names, Java's `HashMap.toString` (in its iteration order, which scripts
//! see) and `Arrays.toString(byte[])`.

use ferromq_store::record::java_string_hash;

use crate::common::{AdminError, AdminResult};

/// A local civil time, as Java's `Calendar.getInstance()` gives it.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

/// `ms` since the epoch in the local time zone (the one Java's default `Calendar` uses).
fn local(ms: i64) -> Civil {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data for which all-zero bytes are valid; `localtime_r` only writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        // Out of the C library's range: UTC is the only honest answer left.
        let (year, month, day, hour, minute, second) = ferromq_store::index::utc_civil(secs);
        return Civil { year, month, day, hour, minute, second, millis };
    }
    Civil {
        year: i64::from(tm.tm_year) + 1900,
        month: i64::from(tm.tm_mon) + 1,
        day: i64::from(tm.tm_mday),
        hour: i64::from(tm.tm_hour),
        minute: i64::from(tm.tm_min),
        second: i64::from(tm.tm_sec),
        millis,
    }
}

/// `yyyy-MM-dd HH:mm:ss` (Java `UtilAll.formatDate(…, YYYY_MM_DD_HH_MM_SS)`), local time.
pub fn date_time(ms: i64) -> String {
    let c = local(ms);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `yyyy-MM-dd HH:mm:ss,SSS` (Java `UtilAll.timeMillisToHumanString2`), local time.
pub fn human_time2(ms: i64) -> String {
    let c = local(ms);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}", c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis)
}

/// `yyyyMMddHHmmssSSS` (Java `UtilAll.timeMillisToHumanString`), local time.
pub fn human_time(ms: i64) -> String {
    let c = local(ms);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}{:03}", c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis)
}

/// The milliseconds since the epoch of `yyyy-MM-dd#HH:mm:ss:SSS` in local time (Java's
/// `UtilAll.YYYY_MM_DD_HH_MM_SS_SSS`); `None` when `text` is not in that form.
pub fn parse_local_time(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('#')?;
    let mut d = date.split('-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i32>().ok());
    let (hour, minute, second, millis) = (t.next()??, t.next()??, t.next()??, t.next()??);
    if d.next().is_some() || t.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(0..1000).contains(&millis) {
        return None;
    }
    // SAFETY: `tm` is plain data for which all-zero bytes are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    // Let the C library decide whether daylight saving time applies, as Java's calendar does.
    tm.tm_isdst = -1;
    // SAFETY: `tm` is valid for the call; mktime reads and normalizes it.
    let secs = unsafe { libc::mktime(&mut tm) };
    if secs == -1 {
        return None;
    }
    Some(secs * 1000 + i64::from(millis))
}

/// A time flag as the Java tool reads it (`PrintMessageSubCommand.timestampFormat`):
/// milliseconds since the epoch, or `yyyy-MM-dd#HH:mm:ss:SSS` in local time.
pub fn parse_timestamp(flag: &str, text: &str) -> AdminResult<i64> {
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_local_time(text))
        .ok_or_else(|| AdminError::Usage(format!("{flag} '{text}' is neither milliseconds nor yyyy-MM-dd#HH:mm:ss:SSS")))
}

/// `MQVersion.getVersionDesc(ordinal)`: the name of the client version an ordinal stands for.
/// The enum is 16 names of 3.0.0 pre-releases, then a `_SNAPSHOT` and a release name for each
/// version: 3.0.1–3.0.15, 3.1.0–3.2.9, 3.3.1–3.9.9 (no x.0), 4.0.0–5.9.9, then
/// HIGHER_VERSION, which ordinals past the end also get (as Java).
pub fn version_desc(ordinal: i32) -> String {
    const PRE_RELEASES: [&str; 16] = [
        "V3_0_0_SNAPSHOT", "V3_0_0_ALPHA1", "V3_0_0_BETA1", "V3_0_0_BETA2", "V3_0_0_BETA3", "V3_0_0_BETA4", "V3_0_0_BETA5",
        "V3_0_0_BETA6_SNAPSHOT", "V3_0_0_BETA6", "V3_0_0_BETA7_SNAPSHOT", "V3_0_0_BETA7", "V3_0_0_BETA8_SNAPSHOT", "V3_0_0_BETA8",
        "V3_0_0_BETA9_SNAPSHOT", "V3_0_0_BETA9", "V3_0_0_FINAL",
    ];
    let Ok(ordinal) = usize::try_from(ordinal) else {
        // Java indexes the enum's values with it and throws; a name says more.
        return format!("UNKNOWN_VERSION({ordinal})");
    };
    if let Some(name) = PRE_RELEASES.get(ordinal) {
        return (*name).to_owned();
    }
    let index = (ordinal - PRE_RELEASES.len()) / 2;
    let snapshot = (ordinal - PRE_RELEASES.len()).is_multiple_of(2);
    let version = (1..=15)
        .map(|patch| (3, 0, patch))
        .chain((1..=2).flat_map(|minor| (0..=9).map(move |patch| (3, minor, patch))))
        .chain((3..=9).flat_map(|minor| (1..=9).map(move |patch| (3, minor, patch))))
        .chain((4..=5).flat_map(|major| (0..=9).flat_map(move |minor| (0..=9).map(move |patch| (major, minor, patch)))))
        .nth(index);
    match version {
        Some((major, minor, patch)) => format!("V{major}_{minor}_{patch}{}", if snapshot { "_SNAPSHOT" } else { "" }),
        None => "HIGHER_VERSION".to_owned(),
    }
}

/// Java's `HashMap.toString()` of a map filled with `entries` in order (later duplicates
/// replace the value in place): `{k=v, k=v}` in the map's iteration order — by bucket
/// (`(h ^ h >>> 16) & (capacity - 1)` of the key's `String.hashCode`), then insertion —
/// for a map created with `initial_capacity` (rounded up to a power of two) that doubled
/// whenever it passed 3/4 full.
pub fn java_hash_map_string(entries: &[(String, String)], initial_capacity: usize) -> String {
    let mut unique: Vec<(&str, &str)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match unique.iter_mut().find(|(key, _)| *key == k.as_str()) {
            Some(slot) => slot.1 = v.as_str(),
            None => unique.push((k.as_str(), v.as_str())),
        }
    }
    let mut capacity = initial_capacity.max(1).next_power_of_two();
    while unique.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    let bucket = |key: &str| {
        let h = java_string_hash(key) as u32;
        (h ^ (h >> 16)) as usize & (capacity - 1)
    };
    let mut order: Vec<(usize, usize)> = unique.iter().enumerate().map(|(i, (k, _))| (bucket(k), i)).collect();
    order.sort_unstable();
    let items: Vec<String> = order.iter().map(|(_, i)| format!("{}={}", unique[*i].0, unique[*i].1)).collect();
    format!("{{{}}}", items.join(", "))
}

/// Java's `Arrays.toString(byte[])`: signed decimal bytes, `[104, -61]`.
pub fn java_bytes(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(|b| (*b as i8).to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// `text` cut to at most `chars` characters (Java's `UtilAll.frontStringAtLeast`, which
/// despite its name truncates).
pub fn front(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `MessageQueue.toString()`.
pub fn queue_text(topic: &str, broker_name: &str, queue_id: u32) -> String {
    format!("MessageQueue [topic={topic}, brokerName={broker_name}, queueId={queue_id}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_match_java_ordinals() {
        // The ordinals PROTOCOL.md §1.9 lists, and the ends of the enum.
        for (ordinal, name) in [
            (0, "V3_0_0_SNAPSHOT"), (15, "V3_0_0_FINAL"), (16, "V3_0_1_SNAPSHOT"), (28, "V3_0_7_SNAPSHOT"), (37, "V3_0_11"),
            (121, "V3_4_9"), (213, "V4_0_0"), (232, "V4_1_0_SNAPSHOT"), (317, "V4_5_2"), (401, "V4_9_4"), (407, "V4_9_7"),
            (413, "V5_0_0"), (433, "V5_1_0"), (479, "V5_3_3"), (611, "V5_9_9"), (612, "HIGHER_VERSION"), (9999, "HIGHER_VERSION"),
        ] {
            assert_eq!(version_desc(ordinal), name, "ordinal {ordinal}");
        }
    }

    #[test]
    fn hash_map_order_is_javas() {
        // What `java` 17 prints for `new HashMap<>(128)` filled with these keys in this order.
        let keys = ["UNIQ_KEY", "WAIT", "TAGS", "KEYS", "CLUSTER", "MIN_OFFSET", "MAX_OFFSET", "a", "zz"];
        let entries: Vec<(String, String)> = keys.iter().map(|k| ((*k).to_owned(), "v".to_owned())).collect();
        assert_eq!(
            java_hash_map_string(&entries, 128),
            "{UNIQ_KEY=v, CLUSTER=v, MIN_OFFSET=v, TAGS=v, zz=v, KEYS=v, WAIT=v, a=v, MAX_OFFSET=v}"
        );
        // A later duplicate replaces the value where the key already was.
        let dup = vec![("A".to_owned(), "1".to_owned()), ("A".to_owned(), "2".to_owned())];
        assert_eq!(java_hash_map_string(&dup, 128), "{A=2}");
    }

    #[test]
    fn bytes_and_times_read_and_print_as_java() {
        assert_eq!(java_bytes(b"hi\xc3"), "[104, 105, -61]");
        assert_eq!(front("abcdef", 3), "abc");
        assert_eq!(front("ab", 3), "ab");
        let ms = parse_local_time("2026-12-03#17:45:01:234").expect("parses");
        assert_eq!(human_time2(ms), "2026-12-03 17:45:01,234");
        assert_eq!(date_time(ms), "2026-12-03 17:45:01");
        assert_eq!(human_time(ms), "20261203174501234");
        assert_eq!(parse_local_time("2026-12-03 17:45:01"), None);
        assert_eq!(parse_local_time("2026-13-03#17:45:01:000"), None);
        assert!(parse_timestamp("-s", "x").is_err());
        assert_eq!(parse_timestamp("-s", " 1700000000000 ").ok(), Some(1_700_000_000_000));
    }
}
