//! `[upstreams.NAME]`: servers, balancer, hashing, protocol, pool and TLS.

use std::time::Duration;

use toml::Spanned;

use super::fields::{Zero, host_name, is_token, server_address};
use super::{Cx, upstream_policy};
use crate::diagnostic::{index, join};
use crate::model::{
    BalancerKind, HashAlgorithm, HashKey, HashPolicy, Pool, Server, Upstream, UpstreamProtocol,
    UpstreamTls,
};
use crate::raw::{RawHash, RawPool, RawServer, RawUpstream, RawUpstreamTls, Text};

const BALANCERS: &[(&str, BalancerKind)] = &[
    ("round_robin", BalancerKind::RoundRobin),
    ("weighted_round_robin", BalancerKind::WeightedRoundRobin),
    ("least_connections", BalancerKind::LeastConnections),
    ("random", BalancerKind::Random),
    ("p2c_ewma", BalancerKind::P2cEwma),
    ("consistent_hash", BalancerKind::ConsistentHash),
];

const PROTOCOLS: &[(&str, UpstreamProtocol)] = &[
    ("http1", UpstreamProtocol::Http1),
    ("h2c", UpstreamProtocol::H2c),
    ("h2", UpstreamProtocol::H2),
    ("auto", UpstreamProtocol::Auto),
];

const ALGORITHMS: &[(&str, HashAlgorithm)] = &[
    ("maglev", HashAlgorithm::Maglev),
    ("ring", HashAlgorithm::Ring),
];

pub(super) fn validate(cx: &mut Cx<'_>, name: &Text, raw: &Spanned<RawUpstream>) -> Upstream {
    let path = join("upstreams", name.get_ref());
    cx.name(name, &path, "upstream");
    let p = |key: &str| join(&path, key);
    let u = raw.get_ref();
    let servers = servers(cx, raw, &path);
    let (balancer, balancer_ok) = cx.keyword(
        u.balancer.as_ref(),
        &p("balancer"),
        "balancer",
        BALANCERS,
        BalancerKind::RoundRobin,
    );
    let balancer_ok = balancer_ok && !cx.report.was_pruned(&p("balancer"));
    let hash = match (&u.hash, balancer) {
        (None, BalancerKind::ConsistentHash) => {
            if let Some(text) = u
                .balancer
                .as_ref()
                .filter(|_| !cx.report.was_pruned(&p("hash")))
            {
                cx.report
                    .error_value(text.span(), &p("balancer"), "`consistent_hash` needs a [hash] table")
                    .hint(format!("add [{}.hash] with key = \"client_ip\" (or \"path\", \"header:NAME\", \"cookie:NAME\")", path));
            }
            None
        }
        (Some(hash), kind) => {
            if kind != BalancerKind::ConsistentHash && balancer_ok {
                cx.report
                    .error(
                        hash.span(),
                        &p("hash"),
                        "[hash] is only used with balancer = \"consistent_hash\"",
                    )
                    .hint("set balancer = \"consistent_hash\", or remove the [hash] table");
            }
            Some(hash_policy(cx, hash, &p("hash")))
        }
        (None, _) => None,
    };
    let (protocol, _) = cx.keyword(
        u.protocol.as_ref(),
        &p("protocol"),
        "protocol",
        PROTOCOLS,
        UpstreamProtocol::Http1,
    );
    let tls = u
        .tls
        .as_ref()
        .map(|tls| upstream_tls(cx, tls.get_ref(), &p("tls")));
    if let Some(text) = &u.protocol {
        let tls_given = u.tls.is_some() || cx.report.was_pruned(&p("tls"));
        match protocol {
            UpstreamProtocol::H2 if !tls_given => {
                cx.report
                    .error_value(
                        text.span(),
                        &p("protocol"),
                        "`h2` is HTTP/2 over TLS and needs a [tls] table",
                    )
                    .hint(format!(
                        "add [{path}.tls], or use \"h2c\" for HTTP/2 without TLS"
                    ));
            }
            UpstreamProtocol::H2c if u.tls.is_some() => {
                cx.report
                    .error_value(
                        text.span(),
                        &p("protocol"),
                        "`h2c` is HTTP/2 without TLS, but [tls] is set",
                    )
                    .hint("use \"h2\" for HTTP/2 over TLS, or remove the [tls] table");
            }
            _ => {}
        }
    }
    Upstream {
        name: name.get_ref().clone(),
        servers,
        balancer,
        hash,
        protocol,
        connect_timeout: cx.duration(
            u.connect_timeout.as_ref(),
            &p("connect_timeout"),
            Duration::from_secs(5),
            Zero::Rejected,
        ),
        response_timeout: cx.duration(
            u.response_timeout.as_ref(),
            &p("response_timeout"),
            Duration::from_secs(60),
            Zero::Rejected,
        ),
        pool: pool(cx, u.pool.as_ref(), &p("pool")),
        tls,
        health_check: u
            .health_check
            .as_ref()
            .map(|h| upstream_policy::health_check(cx, h, &p("health_check"))),
        outlier: u
            .outlier
            .as_ref()
            .map(|o| upstream_policy::outlier(cx, o, &p("outlier"))),
        panic_threshold: u8::try_from(cx.int(
            u.panic_threshold.as_ref(),
            &p("panic_threshold"),
            50,
            (0, 100),
            Some("a percentage of servers; 0 never balances over unhealthy servers"),
        ))
        .unwrap_or(50),
        slow_start: cx.opt_duration(u.slow_start.as_ref(), &p("slow_start")),
        circuit_breaker: upstream_policy::circuit_breaker(
            cx,
            u.circuit_breaker.as_ref(),
            &p("circuit_breaker"),
        ),
        retry_budget: upstream_policy::retry_budget(
            cx,
            u.retry_budget.as_ref(),
            &p("retry_budget"),
        ),
        sticky: u
            .sticky
            .as_ref()
            .map(|s| upstream_policy::sticky(cx, s, &p("sticky"), name.get_ref())),
    }
}

fn servers(cx: &mut Cx<'_>, raw: &Spanned<RawUpstream>, path: &str) -> Vec<Server> {
    let list_path = join(path, "servers");
    let Some(list) = &raw.get_ref().servers else {
        cx.missing(raw.span(), path, "servers");
        return Vec::new();
    };
    if list.get_ref().is_empty() {
        cx.report
            .error(
                list.span(),
                &list_path,
                "an upstream needs at least one server",
            )
            .hint("e.g. servers = [\"127.0.0.1:9000\"]");
    }
    let mut out: Vec<Server> = Vec::new();
    for (i, entry) in list.get_ref().iter().enumerate() {
        let entry_path = index(&list_path, i);
        let (address, address_span, weight) = match entry.get_ref() {
            RawServer::Address(address) => (address.clone(), entry.span(), 1),
            RawServer::Table(table) => {
                let weight = cx.int(
                    table.weight.as_ref(),
                    &join(&entry_path, "weight"),
                    1,
                    (1, 10_000),
                    Some("use 1 for an equal share"),
                );
                match &table.address {
                    Some(address) => (address.get_ref().clone(), address.span(), weight),
                    None => {
                        cx.missing(entry.span(), &entry_path, "address");
                        continue;
                    }
                }
            }
        };
        let address_path = match entry.get_ref() {
            RawServer::Address(_) => entry_path.clone(),
            RawServer::Table(_) => join(&entry_path, "address"),
        };
        if let Err(message) = server_address(&address) {
            cx.report
                .error_value(
                    address_span,
                    &address_path,
                    format!("invalid server address: {message}"),
                )
                .hint("e.g. \"127.0.0.1:9000\" or \"backend.internal:8080\"");
        } else if let Some(first) = out.iter().position(|s| s.address == address) {
            cx.report
                .error_value(
                    address_span,
                    &address_path,
                    format!("server is already listed as servers[{first}]"),
                )
                .hint("list each server once; use weight to give it a larger share");
        }
        out.push(Server {
            address,
            weight: u32::try_from(weight).unwrap_or(1),
        });
    }
    out
}

fn hash_policy(cx: &mut Cx<'_>, raw: &Spanned<RawHash>, path: &str) -> HashPolicy {
    let h = raw.get_ref();
    let (algorithm, _) = cx.keyword(
        h.algorithm.as_ref(),
        &join(path, "algorithm"),
        "hash algorithm",
        ALGORITHMS,
        HashAlgorithm::Maglev,
    );
    let key = match &h.key {
        None => {
            cx.missing(raw.span(), path, "key");
            HashKey::ClientIp
        }
        Some(text) => hash_key(text.get_ref()).unwrap_or_else(|message| {
            cx.report
                .error_value(text.span(), &join(path, "key"), message)
                .hint("use \"client_ip\", \"path\", \"header:NAME\" or \"cookie:NAME\"");
            HashKey::ClientIp
        }),
    };
    HashPolicy { key, algorithm }
}

fn hash_key(text: &str) -> Result<HashKey, String> {
    match text.split_once(':') {
        None if text == "client_ip" => Ok(HashKey::ClientIp),
        None if text == "path" => Ok(HashKey::Path),
        None => Err("unknown hash key".into()),
        Some(("header", name)) if is_token(name) => Ok(HashKey::Header(name.to_ascii_lowercase())),
        Some(("header", _)) => Err("invalid header name in hash key".into()),
        Some(("cookie", name)) if is_token(name) => Ok(HashKey::Cookie(name.to_owned())),
        Some(("cookie", _)) => Err("invalid cookie name in hash key".into()),
        Some(_) => Err("unknown hash key".into()),
    }
}

fn pool(cx: &mut Cx<'_>, raw: Option<&RawPool>, path: &str) -> Pool {
    let defaults = Pool {
        max_idle_per_server: 64,
        idle_timeout: Duration::from_secs(90),
    };
    let Some(raw) = raw else { return defaults };
    Pool {
        max_idle_per_server: cx.count(
            raw.max_idle_per_server.as_ref(),
            &join(path, "max_idle_per_server"),
            defaults.max_idle_per_server,
            0,
        ),
        idle_timeout: cx.duration(
            raw.idle_timeout.as_ref(),
            &join(path, "idle_timeout"),
            defaults.idle_timeout,
            Zero::Rejected,
        ),
    }
}

fn upstream_tls(cx: &mut Cx<'_>, raw: &RawUpstreamTls, path: &str) -> UpstreamTls {
    let server_name = raw.server_name.as_ref().map(|text| {
        let value = text.get_ref();
        if value.parse::<std::net::IpAddr>().is_err()
            && let Err(message) = host_name(value)
        {
            cx.report
                .error_value(text.span(), &join(path, "server_name"), message)
                .hint("the name the server's certificate is issued for, e.g. \"api.internal\"");
        }
        value.clone()
    });
    UpstreamTls {
        server_name,
        ca: raw.ca.as_ref().map(|ca| {
            let ca_path = join(path, "ca");
            let (file, exists) = cx.clean(|cx| cx.file(ca, &ca_path, "CA"));
            if exists {
                let findings = cx.checks.ca_bundle(&file);
                cx.findings(findings, &ca_path, ca.span(), None, &[]);
            }
            file
        }),
        verify: raw.verify.unwrap_or(true),
    }
}
