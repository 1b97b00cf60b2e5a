//! IP allow and deny lists as the model holds them: inline entries and
//! files read at every load, resolved against the configuration's
//! directory, shared between the lists that name the same file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::sync::Arc;

use sy_config::model::{Filter, FilterRef, IpFilter};

fn route_ip(config: &sy_config::Config, route: usize) -> &IpFilter {
    match &config.routes[route].filters[0] {
        FilterRef::Inline(Filter::Ip(ip)) => ip,
        other => panic!("{other:?}"),
    }
}

const CONFIG: &str = r#"
[listeners.web]
address = "127.0.0.1:8080"
[listeners.web.ip]
allow = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
deny = ["10.9.0.0/16"]
deny_files = ["lists/blocked.txt"]

[[routes]]
name = "a"
upstream = "app"
filters = [{ ip = { allow_files = ["lists/office.txt"] } }]
[routes.match]
path = "/a"

[[routes]]
name = "b"
upstream = "app"
filters = [{ ip = { allow_files = ["lists/office.txt"], deny = ["10.1.2.3/8"] } }]
[routes.match]
path = "/b"

[upstreams.app]
servers = ["127.0.0.1:9000"]
"#;

#[test]
fn lists_come_inline_and_from_files_read_at_each_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/office.txt"),
        "# offices\n10.0.0.0/8\n\n192.168.1.0/24 # branch\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("lists/blocked.txt"), "").unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, CONFIG).unwrap();

    let config = sy_config::load(&path).unwrap();
    let web = config.listeners[0].ip.as_ref().unwrap();
    let shown = |v: &[ipnet::IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        shown(&web.allow.entries),
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    );
    assert_eq!(web.allow.len(), 3);
    // An empty deny file is fine: no entries yet.
    assert_eq!(web.deny.len(), 1);
    assert_eq!(web.deny.files[0].path, dir.path().join("lists/blocked.txt"));

    let (a, b) = (route_ip(&config, 0), route_ip(&config, 1));
    assert_eq!(
        a.allow.files[0].path,
        dir.path().join("lists/office.txt"),
        "resolved against the configuration's directory"
    );
    assert_eq!(
        shown(&a.allow.files[0].entries),
        ["10.0.0.0/8", "192.168.1.0/24"]
    );
    assert!(
        Arc::ptr_eq(&a.allow.files[0].entries, &b.allow.files[0].entries),
        "one file named twice is read once and held once"
    );
    // Host bits are cleared (and warned about; see fixtures/warn).
    assert_eq!(shown(&b.deny.entries), ["10.0.0.0/8"]);

    // The admin API shows the lists as the file writes them.
    let json = serde_json::to_value(web).unwrap();
    assert_eq!(json["allow"][1], "192.0.2.7/32");
    assert_eq!(
        json["deny_files"][0],
        dir.path().join("lists/blocked.txt").display().to_string()
    );
    assert!(json.get("allow_files").is_none());

    // An edited file is what the next load reads.
    std::fs::write(dir.path().join("lists/office.txt"), "172.16.0.0/12\n").unwrap();
    let config = sy_config::load(&path).unwrap();
    assert_eq!(
        shown(&route_ip(&config, 0).allow.files[0].entries),
        ["172.16.0.0/12"]
    );
    // Emptied, it is refused: an empty allow list would let everyone in.
    std::fs::write(dir.path().join("lists/office.txt"), "# none\n").unwrap();
    let errors = sy_config::load(&path).unwrap_err().to_string();
    assert!(
        errors.contains("routes[0].filters[0].ip.allow_files[0]: the allow list has no entries"),
        "{errors}"
    );
}

#[test]
fn a_list_of_a_hundred_thousand_entries_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::from("# generated\n");
    for i in 0..100_000u32 {
        // Distinct /24s over 10.0.0.0/8 and beyond.
        let [a, b, c, _] = (0x0a00_0000u32 + (i << 8)).to_be_bytes();
        writeln!(list, "{a}.{b}.{c}.0/24").unwrap();
    }
    std::fs::write(dir.path().join("big.txt"), list).unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, CONFIG.replace("lists/office.txt", "big.txt")).unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/blocked.txt"), "192.0.2.1\n").unwrap();
    let config = sy_config::load(&path).unwrap();
    let a = route_ip(&config, 0);
    assert_eq!(a.allow.len(), 100_000);
    assert_eq!(
        a.allow.files[0].entries[99_999].to_string(),
        "11.134.159.0/24"
    );
}
