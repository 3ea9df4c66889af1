//! `mqadmin` against a broker with `aclEnable=true`: it signs with the keys of
//! `${ROCKETMQ_HOME}/conf/tools.yml` (none without the file), and its ACL subcommands change
//! the broker's `plain_acl.yml`, for an admin account only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ferromq_tests::{AdminOutput, BrokerProcess, TempDir, mqadmin_home};

const ADMIN: (&str, &str) = ("mqadmin-admin", "admin-secret");
const USER: (&str, &str) = ("mqadmin-user", "user-secret");

/// A `ROCKETMQ_HOME` under `dir` whose `conf/tools.yml` is `tools` (none: no file).
fn home(dir: &Path, name: &str, tools: Option<&str>) -> PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(home.join("conf")).unwrap();
    if let Some(tools) = tools {
        std::fs::write(home.join("conf/tools.yml"), tools).unwrap();
    }
    home
}

fn keys((access_key, secret_key): (&str, &str)) -> String {
    format!("accessKey: {access_key}\nsecretKey: {secret_key}\n")
}

/// Refused by the broker's ACL: exit status 1, one line naming the subcommand and Java's
/// `AclException`.
fn assert_acl_refusal(out: &AdminOutput, subcommand: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with(&format!("mqadmin: {subcommand}: ")) && out.stderr.contains("AclException"), "{out:?}");
}

/// `clusterAclConfigVersion`'s fields for the broker at `addr` (cluster, broker name, address,
/// file, counter, date, time).
fn version_row(out: &str, addr: &str) -> Vec<String> {
    out.lines().find(|l| l.contains(addr)).unwrap_or_else(|| panic!("no line for {addr} in:\n{out}")).split_whitespace().map(str::to_owned).collect()
}

#[test]
fn acl_subcommands_sign_with_tools_yml_and_rewrite_the_brokers_rules() {
    let dir = TempDir::new("mqadmin-acl");
    let file = dir.path().join("plain_acl.yml");
    let rules = format!(
        "accounts:\n  - accessKey: {}\n    secretKey: {}\n    admin: true\n  - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: PUB|SUB\n    defaultGroupPerm: SUB\n",
        ADMIN.0, ADMIN.1, USER.0, USER.1
    );
    std::fs::write(&file, rules).unwrap();
    let path = file.display().to_string();
    // The broker signs its registrations with the admin keys (its embedded name server checks them).
    let broker = BrokerProcess::start(&[("aclEnable", "true"), ("rocketmq.acl.plain.file", path.as_str()), ("accessKey", ADMIN.0), ("secretKey", ADMIN.1)])
        .expect("broker");
    let ns = broker.namesrv;
    let addr = SocketAddr::from(([127, 0, 0, 1], broker.process.addr.port())).to_string();
    let unsigned = home(dir.path(), "unsigned", None);
    let admin = home(dir.path(), "admin", Some(&keys(ADMIN)));
    let user = home(dir.path(), "user", Some(&keys(USER)));
    let run = |home: &Path, args: &[&str]| mqadmin_home(home, Some(ns), args);

    // No tools.yml: unsigned, and refused.
    assert_acl_refusal(&run(&unsigned, &["updateTopic", "-b", &addr, "-t", "AclAdminTopic"]), "updateTopic");
    assert_acl_refusal(&run(&unsigned, &["updateKvConfig", "-s", "acl-ns", "-k", "k", "-v", "v"]), "updateKvConfig");
    // A tools.yml that is not usable is an error of its own, before anything is sent.
    let broken = home(dir.path(), "broken", Some("accessKey: only\n"));
    let out = run(&broken, &["updateTopic", "-b", &addr, "-t", "AclAdminTopic"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.starts_with("mqadmin: updateTopic: ") && out.stderr.contains("tools.yml") && out.stderr.contains("secretKey"), "{out:?}");

    // The admin's tools.yml: signed, to the broker and to the name server.
    let created = run(&admin, &["updateTopic", "-b", &addr, "-t", "AclAdminTopic"]).ok();
    assert!(created.starts_with(&format!("create topic to {addr} success.\n")), "{created}");
    run(&admin, &["updateKvConfig", "-s", "acl-ns", "-k", "k", "-v", "v"]).ok();

    // clusterAclConfigVersion -b: this broker's file and version, no header.
    let before = run(&admin, &["clusterAclConfigVersion", "-b", &addr]).ok();
    assert!(before.ends_with("get broker's plain access config version success.\n"), "{before}");
    let row = version_row(&before, &addr);
    assert_eq!(row[3], path, "{before}");
    let counter: u64 = row[4].parse().unwrap();

    // updateAclConfig -c: the new account is in the file and in getAclConfig.
    let args = ["updateAclConfig", "-c", "DefaultCluster", "-a", "new-ak", "-s", "new-secret", "-i", "DENY", "-t", "AclAdminTopic=PUB,Other=SUB"];
    let updated = run(&admin, &args).ok();
    assert_eq!(
        updated.lines().collect::<Vec<_>>(),
        [
            format!("create or update plain access config to {addr} success."),
            "PlainAccessConfig{accessKey='new-ak', whiteRemoteAddress='null', admin=false, defaultTopicPerm='DENY', defaultGroupPerm='null', topicPerms=[AclAdminTopic=PUB, Other=SUB], groupPerms=null}".to_owned()
        ]
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("accessKey: 'new-ak'") && text.contains("secretKey: 'new-secret'") && text.contains("'AclAdminTopic=PUB'"), "{text}");
    let config = run(&admin, &["getAclConfig", "-b", &addr]).ok();
    for line in ["  accessKey         : new-ak", "  secretKey         : new-secret", "  admin             : false", "  defaultTopicPerm  : DENY", "  topicPerms        : [AclAdminTopic=PUB, Other=SUB]"] {
        assert!(config.lines().any(|l| l == line), "no {line:?} in:\n{config}");
    }
    assert!(config.starts_with("\nglobalWhiteRemoteAddresses: []\n\naccounts:\n  accessKey         : mqadmin-admin\n"), "{config}");

    // clusterAclConfigVersion -c: the header, and the version one up.
    let after = run(&admin, &["clusterAclConfigVersion", "-c", "DefaultCluster"]).ok();
    assert!(after.starts_with("#Cluster Name     #Broker Name ") && after.ends_with("get cluster's plain access config version success.\n"), "{after}");
    let row = version_row(&after, &addr);
    assert_eq!((row[0].as_str(), row[2].as_str(), row[3].as_str()), ("DefaultCluster", addr.as_str(), path.as_str()), "{after}");
    assert_eq!(row[4], (counter + 1).to_string(), "{after}");

    // deleteAclConfig: gone from the file and from getAclConfig.
    let deleted = run(&admin, &["deleteAclConfig", "-b", &addr, "-a", "new-ak"]).ok();
    assert_eq!(deleted, format!("delete plain access config account from {addr} success.\naccount's accesskey is:new-ak\n"));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("new-ak"));
    assert!(!run(&admin, &["getAclConfig", "-c", "DefaultCluster"]).ok().contains("new-ak"));

    // updateGlobalWhiteAddr: the list, whole (127.0.0.1 stays out of it).
    let white = run(&admin, &["updateGlobalWhiteAddr", "-b", &addr, "-g", "10.10.103.*,192.168.0.*"]).ok();
    assert_eq!(white, format!("update global white remote addresses to {addr} success.\n"));
    let config = run(&admin, &["getAclConfig", "-b", &addr]).ok();
    assert!(config.starts_with("\nglobalWhiteRemoteAddresses: [10.10.103.*, 192.168.0.*]\n"), "{config}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("globalWhiteRemoteAddresses:\n  - '10.10.103.*'\n  - '192.168.0.*'\n"));

    // The other account signs too, but is no admin.
    assert_acl_refusal(&run(&user, &["updateAclConfig", "-b", &addr, "-a", "x", "-s", "y"]), "updateAclConfig");
    assert_acl_refusal(&run(&user, &["updateTopic", "-b", &addr, "-t", "UserTopic"]), "updateTopic");
}
