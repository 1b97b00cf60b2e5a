#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::filter::{CompileCache, Filter};
use sy_config::model::{IpList, IpListFile};

fn list(entries: &[&str]) -> IpList {
    IpList {
        entries: entries.iter().map(|e| e.parse().unwrap()).collect(),
        files: Vec::new(),
    }
}

fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
    IpFilter::new(Arc::new(rules(&model::IpFilter {
        allow: list(allow),
        deny: list(deny),
    })))
}

fn verdict(f: &IpFilter, client: &str) -> Verdict {
    let mut cx = RequestCx::new(
        "web",
        "127.0.0.1:9".parse().unwrap(),
        http::Method::GET,
        http::Uri::from_static("/"),
    );
    // As when a trusted proxy named the client in X-Forwarded-For.
    cx.client_ip = client.parse().unwrap();
    let mut req = http::Request::get("/").body(()).unwrap().into_parts().0;
    f.on_request(&mut cx, &mut req)
}

#[test]
fn refused_clients_get_403_and_the_others_go_on() {
    let f = filter(&["10.0.0.0/8", "2001:db8::/32"], &["10.9.0.0/16"]);
    assert!(matches!(verdict(&f, "10.1.2.3"), Verdict::Continue));
    assert!(matches!(verdict(&f, "2001:db8::1"), Verdict::Continue));
    for (client, message) in [
        ("10.9.1.1", "the client address is denied"),
        ("192.0.2.1", "the client address is not in the allow list"),
        ("::1", "the client address is not in the allow list"),
    ] {
        match verdict(&f, client) {
            Verdict::Reject(e) => {
                assert_eq!(e.status(), 403, "{client}");
                assert_eq!(e.stage.as_str(), "forbidden");
                assert_eq!(e.message, message);
            }
            other => panic!("{client}: {other:?}"),
        }
    }
}

#[test]
fn the_client_address_decides_not_the_peer() {
    // The peer (127.0.0.1) is denied; the client the context names is not.
    let f = filter(&[], &["127.0.0.0/8"]);
    assert!(matches!(verdict(&f, "192.0.2.1"), Verdict::Continue));
    assert!(matches!(verdict(&f, "127.0.0.1"), Verdict::Reject(_)));
}

#[test]
fn equal_lists_compile_to_one_shared_trie() {
    let entries: Arc<[ipnet::IpNet]> = (0..1000u32)
        .map(|i| {
            ipnet::IpNet::from(std::net::IpAddr::from(
                (0x0a00_0000 + i * 256).to_be_bytes(),
            ))
        })
        .collect();
    let cfg = |path: &str| model::IpFilter {
        allow: IpList {
            entries: Vec::new(),
            files: vec![IpListFile {
                path: path.into(),
                entries: entries.clone(),
            }],
        },
        deny: IpList::default(),
    };
    let (a, b, c) = (cfg("/l.txt"), cfg("/l.txt"), cfg("/other.txt"));
    let mut cache = CompileCache::default();
    let ra = cache.ip_rules(&a);
    let rb = cache.ip_rules(&b);
    let rc = cache.ip_rules(&c);
    assert!(Arc::ptr_eq(&ra, &rb));
    assert!(!Arc::ptr_eq(&ra, &rc));
    assert_eq!(ra.allow().len(), 1000);
    let f = Filter::compile_in(&model::Filter::Ip(a.clone()), &mut cache).unwrap();
    match f {
        Filter::Ip(f) => assert!(Arc::ptr_eq(&f.rules, &ra)),
        other => panic!("{other:?}"),
    }
}
