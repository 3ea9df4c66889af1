//! The deployment layouts in `tuning/conf/` (Apache RocketMQ's `2m-noslave`, `2m-2s-async` and
//! `2m-2s-sync` sample configurations): every file loads with no unknown key and validates,
//! every `.properties` file and its `.toml` twin give the same configuration, each file holds
//! RocketMQ's sample values plus the documented port and store scheme and nothing else, and the
//! brokers of one layout can share a host (no port or store in common). The single master
//! (`tuning/conf/broker.properties`, Java's `conf/broker.conf`) is held to the same rules, and
//! the systemd units in `tuning/systemd/` to the keys a deployment relies on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferromq_core::config::{BrokerConfig, BrokerRole, FlushDiskType, KEYS};

/// Each layout: its directory, the role of its masters, its brokers.
const LAYOUTS: &[(&str, BrokerRole, &[&str])] = &[
    ("2m-noslave", BrokerRole::AsyncMaster, &["broker-a", "broker-b"]),
    ("2m-2s-async", BrokerRole::AsyncMaster, &["broker-a", "broker-a-s", "broker-b", "broker-b-s"]),
    ("2m-2s-sync", BrokerRole::SyncMaster, &["broker-a", "broker-a-s", "broker-b", "broker-b-s"]),
];

/// The port scheme of `tuning/conf/README.md`: `listenPort` is 10911 + 10 × the broker's place
/// in this list, whatever the layout, and `haListenPort` is `listenPort + 1`.
const PORT_ORDER: &[&str] = &["broker-a", "broker-a-s", "broker-b", "broker-b-s"];

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/conf")
}

/// Loads one file: no unknown key, valid, and (for a properties file) only keys of the schema,
/// so that every key has a TOML counterpart.
fn load(path: &Path) -> Result<BrokerConfig, String> {
    let shown = path.display();
    let (config, unknown) = BrokerConfig::load(path).map_err(|e| format!("{shown}: {e}"))?;
    if !unknown.is_empty() {
        return Err(format!("{shown}: unknown keys {unknown:?}"));
    }
    config.validate().map_err(|e| format!("{shown}: {e}"))?;
    if path.extension().is_some_and(|e| e == "properties") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let map = java_properties::read(text.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
        for key in map.keys() {
            if !KEYS.iter().any(|k| k.java == key) {
                return Err(format!("{shown}: {key} is accepted but not a schema key (no TOML counterpart)"));
            }
        }
    }
    Ok(config)
}

/// The same configuration from a `.properties` file and its `.toml` twin, or the keys where
/// they differ.
fn twins(properties: &Path, toml: &Path) -> Result<BrokerConfig, String> {
    let from_properties = load(properties)?;
    let from_toml = load(toml)?;
    // The effective configuration as GET_BROKER_CONFIG reports it, key by key: a readable diff.
    let a: BTreeMap<String, String> = effective(&from_properties);
    let b: BTreeMap<String, String> = effective(&from_toml);
    let drift: Vec<String> = a
        .iter()
        .filter(|(key, value)| b.get(*key) != Some(*value))
        .map(|(key, value)| {
            format!("{key}: {value:?} in the .properties, {:?} in the .toml", b.get(key).map_or("nothing", String::as_str))
        })
        .collect();
    if !drift.is_empty() {
        return Err(format!("{} and {} drifted apart: {}", properties.display(), toml.display(), drift.join("; ")));
    }
    // Whatever the text does not show (nothing today) still has to match.
    if from_properties != from_toml {
        return Err(format!("{} and {} differ: {from_properties:?} / {from_toml:?}", properties.display(), toml.display()));
    }
    Ok(from_properties)
}

fn effective(config: &BrokerConfig) -> BTreeMap<String, String> {
    config
        .to_properties_text()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// What `name` of a layout whose masters are `master_role` must be: RocketMQ's sample values,
/// the name server on 127.0.0.1:9876, the port scheme and `store/<name>`; every other key at
/// its default.
fn expected(name: &str, master_role: BrokerRole) -> BrokerConfig {
    let slave = name.ends_with("-s");
    let place = PORT_ORDER.iter().position(|n| *n == name).expect("a broker of the port scheme");
    let listen_port = 10911 + 10 * u16::try_from(place).expect("small");
    let root = PathBuf::from("store").join(name);
    let mut c = BrokerConfig::default();
    c.broker.cluster_name = "DefaultCluster".to_owned();
    c.broker.name = name.trim_end_matches("-s").to_owned();
    c.broker.id = u64::from(slave);
    c.broker.role = if slave { BrokerRole::Slave } else { master_role };
    c.broker.listen_port = listen_port;
    c.ha.listen_port = Some(listen_port + 1);
    c.namesrv.addr = vec!["127.0.0.1:9876".to_owned()];
    c.store.commit_log_dir = Some(root.join("commitlog"));
    c.store.root_dir = root;
    c.retention.delete_when = "04".to_owned();
    c.retention.file_reserved_time_hours = 48;
    c.flush.disk_type = FlushDiskType::AsyncFlush;
    c
}

#[test]
fn deployment_layouts_load_validate_and_match_their_twins() {
    let dir = conf_dir();
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().expect("a name").to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = LAYOUTS.iter().map(|(layout, _, _)| (*layout).to_owned()).collect();
    assert_eq!(found, listed, "the layouts in {} and the ones this test knows", dir.display());
    let top: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| path.file_name().expect("a name").to_string_lossy().into_owned())
        .collect();
    let wanted: BTreeSet<String> = ["README.md", "broker.properties", "broker.toml", "namesrv.properties"].map(str::to_owned).into();
    assert_eq!(top, wanted, "the files beside the layouts (the single master and the name server)");

    for (layout, master_role, names) in LAYOUTS {
        let layout_dir = dir.join(layout);
        let files: BTreeSet<String> = std::fs::read_dir(&layout_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", layout_dir.display()))
            .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .collect();
        let wanted: BTreeSet<String> = names.iter().flat_map(|n| [format!("{n}.properties"), format!("{n}.toml")]).collect();
        assert_eq!(files, wanted, "{layout}: every broker has a .properties file and its .toml twin, and nothing else");

        let mut ports = BTreeMap::new();
        let mut stores = BTreeSet::new();
        for name in *names {
            let config = twins(&layout_dir.join(format!("{name}.properties")), &layout_dir.join(format!("{name}.toml")))
                .unwrap_or_else(|e| panic!("{layout}: {e}"));
            assert_eq!(config, expected(name, *master_role), "{layout}/{name}: RocketMQ's values plus the scheme, nothing else");
            // Java also listens on listenPort - 2 (the "fast" port): keep it clear too.
            for port in [config.broker.listen_port, config.ha_listen_port(), config.broker.listen_port - 2] {
                if let Some(other) = ports.insert(port, *name) {
                    panic!("{layout}: {name} and {other} both use port {port}");
                }
            }
            assert!(stores.insert(config.store.root_dir.clone()), "{layout}: {name} shares its store");
            assert!(!ports.contains_key(&9876), "{layout}: {name} takes the name server's port");
        }
    }
}

/// The checks above catch what they are for: an unknown key and a twin that drifted.
#[test]
fn twin_check_refuses_unknown_keys_and_drift() {
    let dir = std::env::temp_dir().join(format!("ferromq-layout-twins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let properties = dir.join("b.properties");
    let toml = dir.join("b.toml");
    let base = "brokerName=broker-a\nlistenPort=10911\n";
    let base_toml = "[broker]\nname = \"broker-a\"\nlisten_port = 10911\n";

    std::fs::write(&properties, base).expect("write");
    std::fs::write(&toml, base_toml).expect("write");
    twins(&properties, &toml).expect("identical twins pass");

    std::fs::write(&properties, format!("{base}listenPrt=10921\n")).expect("write");
    let err = twins(&properties, &toml).expect_err("unknown properties key");
    assert!(err.contains("listenPrt"), "{err}");

    std::fs::write(&properties, base).expect("write");
    std::fs::write(&toml, format!("{base_toml}port = 1\n")).expect("write");
    let err = twins(&properties, &toml).expect_err("unknown TOML key");
    assert!(err.contains("broker.port"), "{err}");

    std::fs::write(&properties, format!("{base}sendMessageThreadPoolNums=4\n")).expect("write");
    std::fs::write(&toml, base_toml).expect("write");
    let err = twins(&properties, &toml).expect_err("a key outside the schema has no TOML twin");
    assert!(err.contains("sendMessageThreadPoolNums"), "{err}");

    std::fs::write(&properties, "brokerName=broker-a\nlistenPort=10921\n").expect("write");
    let err = twins(&properties, &toml).expect_err("drifted port");
    assert!(err.contains("listenPort: \"10921\""), "{err}");

    std::fs::write(&properties, format!("{base}brokerId=1\n")).expect("write");
    let err = twins(&properties, &toml).expect_err("an invalid file");
    assert!(err.contains("brokerId"), "{err}");

    let _ = std::fs::remove_dir_all(&dir);
}

/// `broker.properties` (RocketMQ's `conf/broker.conf`: one ASYNC_MASTER, no slave) and its
/// twin: RocketMQ's values plus broker-a's ports and store, nothing else.
#[test]
fn single_master_file_matches_its_twin() {
    let dir = conf_dir();
    let config = twins(&dir.join("broker.properties"), &dir.join("broker.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, expected("broker-a", BrokerRole::AsyncMaster));
    assert_eq!(config.fast_listen_port(), Some(10909), "Java's fast port is opened by default");
}

/// The `[Section]` / `key=value` lines of a systemd unit: (section, key) → values, in order.
fn unit_keys(path: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut section = String::new();
    let mut keys: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{}:{}: not key=value: {line:?}", path.display(), n + 1));
        assert!(!section.is_empty(), "{}:{}: {key} outside a section", path.display(), n + 1);
        keys.entry((section.clone(), key.trim().to_owned())).or_default().push(value.trim().to_owned());
    }
    keys
}

/// Checks a unit holds what a deployment relies on; `Err` names the first missing or wrong key.
fn check_unit(path: &Path, binary: &str, min_stop_secs: u64) -> Result<(), String> {
    let keys = unit_keys(path);
    let shown = path.display();
    let one = |section: &str, key: &str| -> Result<String, String> {
        match keys.get(&(section.to_owned(), key.to_owned())).map(Vec::as_slice) {
            Some([value]) => Ok(value.clone()),
            Some(values) => Err(format!("{shown}: [{section}] {key} set {} times", values.len())),
            None => Err(format!("{shown}: [{section}] {key} missing")),
        }
    };
    if one("Service", "Restart")? != "on-failure" {
        return Err(format!("{shown}: Restart must be on-failure"));
    }
    let nofile: u64 = one("Service", "LimitNOFILE")?.parse().map_err(|e| format!("{shown}: LimitNOFILE: {e}"))?;
    if nofile < 65_536 {
        return Err(format!("{shown}: LimitNOFILE={nofile} is below 65536"));
    }
    if one("Service", "KillSignal")? != "SIGTERM" {
        return Err(format!("{shown}: KillSignal must be SIGTERM (the clean stop)"));
    }
    let stop = one("Service", "TimeoutStopSec")?;
    let stop: u64 = stop.trim_end_matches('s').parse().map_err(|e| format!("{shown}: TimeoutStopSec={stop}: {e}"))?;
    if stop < min_stop_secs {
        return Err(format!("{shown}: TimeoutStopSec={stop} is shorter than a clean stop may take ({min_stop_secs} s)"));
    }
    let exec = one("Service", "ExecStart")?;
    if !exec.starts_with(&format!("/opt/ferromq/bin/{binary} ")) {
        return Err(format!("{shown}: ExecStart {exec:?} does not run /opt/ferromq/bin/{binary}"));
    }
    if one("Service", "WorkingDirectory")? != "/opt/ferromq" {
        return Err(format!("{shown}: WorkingDirectory must be /opt/ferromq (the shipped stores are relative to it)"));
    }
    one("Install", "WantedBy")?;
    Ok(())
}

/// `tuning/systemd/`: the name server and a broker template whose instance names a file of
/// `tuning/conf`, each restarted on failure, with a raised open-file limit, stopped with
/// SIGTERM and given long enough for a clean stop (a broker unregisters from every name
/// server, each bounded by `registerBrokerTimeoutMills`, after its shards' grace periods).
#[test]
fn systemd_units_have_the_deployment_keys() {
    let dir = conf_dir().join("../systemd");
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    let wanted: BTreeSet<String> = ["ferromq-namesrv.service", "ferromq-broker@.service"].map(str::to_owned).into();
    assert_eq!(found, wanted);

    check_unit(&dir.join("ferromq-namesrv.service"), "mqnamesrv", 10).unwrap_or_else(|e| panic!("{e}"));
    let register_timeout_secs = BrokerConfig::default().namesrv.register_timeout_ms / 1000;
    let broker = dir.join("ferromq-broker@.service");
    check_unit(&broker, "mqbroker", 2 * register_timeout_secs + 20).unwrap_or_else(|e| panic!("{e}"));

    // The instance is a file of tuning/conf: `%I` (unescaped, so `2m-2s-sync/broker-a` works)
    // in the -c path, which names a file that exists for every broker the layouts ship.
    let exec = unit_keys(&broker)[&("Service".to_owned(), "ExecStart".to_owned())][0].clone();
    assert!(exec.contains("-c /opt/ferromq/tuning/conf/%I.properties"), "{exec}");
    let namesrv = unit_keys(&dir.join("ferromq-namesrv.service"))[&("Service".to_owned(), "ExecStart".to_owned())][0].clone();
    let ns_file = namesrv.split_whitespace().last().expect("a -c file").replace("/opt/ferromq/tuning/conf/", "");
    assert!(conf_dir().join(&ns_file).is_file(), "{namesrv}: no tuning/conf/{ns_file}");
    for (layout, _, names) in LAYOUTS {
        for name in *names {
            assert!(conf_dir().join(format!("{layout}/{name}.properties")).is_file());
        }
    }
}

/// The unit check catches a unit without what it is for.
#[test]
fn unit_check_refuses_a_unit_missing_a_key() {
    let dir = std::env::temp_dir().join(format!("ferromq-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = "[Service]\nWorkingDirectory=/opt/ferromq\nExecStart=/opt/ferromq/bin/mqbroker -c x\nRestart=on-failure\n\
                LimitNOFILE=1048576\nKillSignal=SIGTERM\nTimeoutStopSec=90\n[Install]\nWantedBy=multi-user.target\n";
    let unit = dir.join("u.service");
    std::fs::write(&unit, good).expect("write");
    check_unit(&unit, "mqbroker", 60).expect("a complete unit passes");
    for (from, to, named) in [
        ("Restart=on-failure\n", "Restart=no\n", "Restart"),
        ("LimitNOFILE=1048576\n", "", "LimitNOFILE"),
        ("KillSignal=SIGTERM\n", "KillSignal=SIGKILL\n", "KillSignal"),
        ("TimeoutStopSec=90\n", "TimeoutStopSec=10\n", "TimeoutStopSec"),
        ("TimeoutStopSec=90\n", "TimeoutStopSec=90\nTimeoutStopSec=5\n", "TimeoutStopSec"),
    ] {
        std::fs::write(&unit, good.replace(from, to)).expect("write");
        let err = check_unit(&unit, "mqbroker", 60).expect_err(named);
        assert!(err.contains(named), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
