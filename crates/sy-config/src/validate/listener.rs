//! `[listeners.NAME]`, its `forwarded` and `tls` tables.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::Cx;
use super::fields::{Zero, host_pattern};
use crate::diagnostic::{index, join};
use crate::model::{Certificate, Forwarded, Listener, ListenerTls, TlsVersion};
use crate::raw::{RawForwarded, RawListener, RawListenerTls, Text};

/// Placeholder for an address that did not parse (port 0 never clashes).
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

pub(super) fn validate(
    cx: &mut Cx<'_>,
    name: &Text,
    raw: &Spanned<RawListener>,
    known: &super::Known<'_>,
) -> Listener {
    let path = join("listeners", name.get_ref());
    cx.name(name, &path, "listener");
    let l = raw.get_ref();
    let address = match &l.address {
        None => {
            cx.missing(raw.span(), &path, "address");
            NO_ADDRESS
        }
        Some(text) => text.get_ref().parse().unwrap_or_else(|_| {
            cx.report
                .error_value(
                    text.span(),
                    &join(&path, "address"),
                    "invalid socket address; expected IP:PORT",
                )
                .hint("e.g. \"127.0.0.1:8080\" or \"[::1]:8443\"; host names are not allowed here");
            NO_ADDRESS
        }),
    };
    let p = |key: &str| join(&path, key);
    Listener {
        name: name.get_ref().clone(),
        address,
        request_header_timeout: cx.duration(
            l.request_header_timeout.as_ref(),
            &p("request_header_timeout"),
            Duration::from_secs(10),
            Zero::Rejected,
        ),
        idle_timeout: cx.duration(
            l.idle_timeout.as_ref(),
            &p("idle_timeout"),
            Duration::from_secs(60),
            Zero::Rejected,
        ),
        max_request_header_bytes: cx.size(
            l.max_request_header_bytes.as_ref(),
            &p("max_request_header_bytes"),
            64 * 1024,
            (1, u64::MAX),
        ),
        max_request_headers: cx.count(
            l.max_request_headers.as_ref(),
            &p("max_request_headers"),
            100,
            1,
        ),
        max_connections: cx.count(l.max_connections.as_ref(), &p("max_connections"), 0, 0),
        http2: l.http2.unwrap_or(true),
        proxy_protocol: l.proxy_protocol.unwrap_or(false),
        forwarded: forwarded(cx, l.forwarded.as_ref(), &p("forwarded")),
        tls: l.tls.as_ref().map(|tls| listener_tls(cx, tls, &p("tls"))),
        ip: l
            .ip
            .as_ref()
            .map(|ip| super::filter_ip::ip(cx, ip, &p("ip"))),
        filters: super::filters::list(cx, l.filters.as_ref(), &p("filters"), &known.filters),
    }
}

fn forwarded(cx: &mut Cx<'_>, raw: Option<&RawForwarded>, path: &str) -> Forwarded {
    let Some(raw) = raw else {
        return Forwarded {
            trusted_proxies: Vec::new(),
            x_forwarded: true,
            rfc7239: false,
            via: true,
        };
    };
    let list_path = join(path, "trusted_proxies");
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| match parse_cidr(text.get_ref()) {
            Some(net) => Some(net),
            None => {
                cx.report
                    .error_value(
                        text.span(),
                        &index(&list_path, i),
                        "invalid CIDR or IP address",
                    )
                    .hint("e.g. \"10.0.0.0/8\", \"127.0.0.1\" or \"fd00::/8\"");
                None
            }
        })
        .collect();
    Forwarded {
        trusted_proxies,
        x_forwarded: raw.x_forwarded.unwrap_or(true),
        rfc7239: raw.forwarded.unwrap_or(false),
        via: raw.via.unwrap_or(true),
    }
}

/// `"10.0.0.0/8"`, or a bare IP meaning /32 (IPv4) or /128 (IPv6). Host bits
/// below the prefix are cleared.
fn parse_cidr(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

fn listener_tls(cx: &mut Cx<'_>, raw: &Spanned<RawListenerTls>, path: &str) -> ListenerTls {
    let tls = raw.get_ref();
    let (min_version, _) = cx.keyword(
        tls.min_version.as_ref(),
        &join(path, "min_version"),
        "TLS version",
        &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        TlsVersion::V1_2,
    );
    let list_path = join(path, "certificates");
    let mut certificates = Vec::new();
    match &tls.certificates {
        None => cx.missing(raw.span(), path, "certificates"),
        Some(list) if list.get_ref().is_empty() => {
            cx.report
                .error(
                    list.span(),
                    &list_path,
                    "a TLS listener needs at least one certificate",
                )
                .hint("add { cert = \"certs/site.pem\", key = \"certs/site.key\" }");
        }
        Some(list) => {
            for (i, entry) in list.get_ref().iter().enumerate() {
                certificates.push(certificate(cx, entry, &index(&list_path, i), i));
            }
        }
    }
    // Unique names; `default_certificate` refers to one of them.
    let entries = tls
        .certificates
        .as_ref()
        .map_or(&[][..], |list| list.get_ref().as_slice());
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, (cert, entry)) in certificates.iter().zip(entries).enumerate() {
        let Some(first) = by_name.get(cert.name.as_str()) else {
            by_name.insert(&cert.name, i);
            continue;
        };
        // A default name ("cert-N") has no span of its own: blame the entry.
        let span = entry
            .get_ref()
            .name
            .as_ref()
            .map_or(entry.span(), Spanned::span);
        cx.report
            .error_value(
                span,
                &join(&index(&list_path, i), "name"),
                format!(
                    "certificate name `{}` is already used by certificates[{first}]",
                    cert.name
                ),
            )
            .hint("give each certificate a unique name");
    }
    let default_certificate = match &tls.default_certificate {
        None => 0,
        Some(name) => match by_name.get(name.get_ref().as_str()) {
            Some(&i) => i,
            None => {
                let names: Vec<&str> = certificates.iter().map(|c| c.name.as_str()).collect();
                let hint = crate::diagnostic::choice_hint(name.get_ref(), &names);
                if !cx.report.was_pruned(&list_path) {
                    cx.report
                        .error_value(
                            name.span(),
                            &join(path, "default_certificate"),
                            "no certificate has this name",
                        )
                        .maybe_hint(hint);
                }
                0
            }
        },
    };
    ListenerTls {
        certificates,
        default_certificate,
        min_version,
    }
}

fn certificate(
    cx: &mut Cx<'_>,
    raw: &Spanned<crate::raw::RawCertificate>,
    path: &str,
    i: usize,
) -> Certificate {
    let c = raw.get_ref();
    let name = match &c.name {
        Some(name) => cx.name(name, &join(path, "name"), "certificate"),
        None => format!("cert-{i}"),
    };
    let names_path = join(path, "server_names");
    let ((cert, key, server_names), clean) = cx.clean(|cx| {
        let mut file = |key: &str, value: &Option<Text>, what: &str| match value {
            Some(text) => cx.file(text, &join(path, key), what),
            None => {
                cx.missing(raw.span(), path, key);
                PathBuf::new()
            }
        };
        let cert = file("cert", &c.cert, "certificate");
        let key = file("key", &c.key, "private key");
        let server_names: Vec<String> = c
            .server_names
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(j, text)| match host_pattern(text.get_ref()) {
                Ok(pattern) => Some(pattern),
                Err(message) => {
                    cx.report
                        .error_value(text.span(), &index(&names_path, j), message)
                        .hint("use an exact name such as \"example.com\" or a wildcard such as \"*.example.com\"");
                    None
                }
            })
            .collect();
        (cert, key, server_names)
    });
    // The files exist and the names are valid: load and compare them.
    if clean && let (Some(cert_text), Some(key_text)) = (&c.cert, &c.key) {
        let findings = cx.checks.certificate_pair(&crate::CertificatePair {
            cert: &cert,
            key: &key,
            server_names: &server_names,
        });
        let names: Vec<_> = c.server_names.iter().flatten().collect();
        cx.findings(
            findings,
            path,
            cert_text.span(),
            Some(key_text.span()),
            &names,
        );
    }
    Certificate {
        name,
        cert,
        key,
        server_names,
    }
}
