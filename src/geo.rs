//! Where the visitor is (issue 11, "Where the visitor is"): a country (ISO 3166-1 alpha-2) and a
//! region (ISO 3166-2, `US-CA`), read from a CDN's headers or looked up in a MaxMind-format
//! database, or unknown. Pure: the proxy passes the request's headers, its peer and client
//! addresses, and `[proxy.geo]`; [`crate::jurisdiction`] decides what applies there.
//!
//! Both sources are something a client could forge, so both are believed only through a trusted
//! peer: the headers only when the TCP peer is a trusted proxy (or, with `trusted_proxies`
//! unset, on loopback, so a local CDN stand-in works), the database only for the client address
//! `decide::forwarded` found (the forwarded one only from a trusted proxy). The header wins over
//! the database when both answer: the CDN saw the client's own connection.
//!
//! Every value is fixed-size ([`Location`] is `Copy`): nothing here allocates per request.

use crate::config::ForwardedSettings;
use http::{HeaderMap, HeaderName};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// An ISO 3166-1 alpha-2 country code, upper case (`DE`, `US`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

impl Country {
    pub fn as_str(&self) -> &str {
        // Built only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 3166-2 subdivision code: the country, `-`, then one to three letters or digits
/// (`US-CA`, `FR-75C`, `GB-ENG`), upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// `CC-SSS`, padded with zeros after `len` bytes.
    bytes: [u8; 6],
    len: u8,
}

impl Region {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    pub fn country(&self) -> Country {
        Country([self.bytes[0], self.bytes[1]])
    }

    fn new(country: Country, sub: &[u8]) -> Option<Region> {
        if sub.is_empty() || sub.len() > 3 || !sub.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut bytes = [0u8; 6];
        bytes[..2].copy_from_slice(&country.0);
        bytes[2] = b'-';
        for (i, b) in sub.iter().enumerate() {
            bytes[3 + i] = b.to_ascii_uppercase();
        }
        Some(Region {
            bytes,
            len: 3 + sub.len() as u8,
        })
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the visitor is, as far as it is known. A region always belongs to the country.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub country: Option<Country>,
    pub region: Option<Region>,
}

impl Location {
    pub const UNKNOWN: Location = Location {
        country: None,
        region: None,
    };

    pub fn is_unknown(&self) -> bool {
        self.country.is_none()
    }
}

/// A country code as a CDN header or a database writes it: exactly two ASCII letters (any case,
/// surrounding whitespace allowed). The codes CDNs send for "no country" are unknown: `XX`
/// (Cloudflare: no data), `ZZ` (ISO's user-assigned "unknown"); so is anything else, such as
/// Cloudflare's `T1` (Tor), which is no country.
pub fn parse_country(v: &[u8]) -> Option<Country> {
    let v = v.trim_ascii();
    let [a, b] = v else { return None };
    if !a.is_ascii_alphabetic() || !b.is_ascii_alphabetic() {
        return None;
    }
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    if matches!(&code, b"XX" | b"ZZ") {
        return None;
    }
    Some(Country(code))
}

/// A region as a CDN header writes it: the subdivision alone (`CA`, Cloudflare's
/// `cf-region-code`, CloudFront's `CloudFront-Viewer-Country-Region`), which needs the
/// country, or the full ISO 3166-2 code (`US-CA`). A full code naming another country than
/// `country` is refused (the two headers disagree: neither region is believed).
pub fn parse_region(v: &[u8], country: Option<Country>) -> Option<Region> {
    let v = v.trim_ascii();
    match v.iter().position(|b| *b == b'-') {
        Some(2) => {
            let c = parse_country(&v[..2])?;
            if country.is_some_and(|k| k != c) {
                return None;
            }
            Region::new(c, &v[3..])
        }
        Some(_) => None,
        None => Region::new(country?, v),
    }
}

/// A full ISO 3166-2 code as configuration writes it (`US-CA`); `None` for anything else.
pub fn parse_full_region(v: &str) -> Option<Region> {
    let b = v.as_bytes();
    if b.len() < 4 || b[2] != b'-' {
        return None;
    }
    parse_region(b, None)
}

/// A MaxMind DB (`.mmdb`) opened at configuration load: GeoIP2/GeoLite2 Country or City,
/// DB-IP's Lite databases, or any database with the same `country.iso_code` and
/// `subdivisions[0].iso_code` fields.
pub struct GeoDatabase {
    pub path: std::path::PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
}

impl fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeoDatabase({})", self.path.display())
    }
}

impl GeoDatabase {
    /// Reads the whole file into memory (a country database is a few MB; a reload reads it
    /// again, so a replaced file is picked up) and checks its header.
    pub fn open(path: &std::path::Path) -> Result<GeoDatabase, String> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| e.to_string())?;
        Ok(GeoDatabase {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// The visitor's location for `ip`. Bounded: one walk down the search tree (at most 128
    /// nodes) and two short paths decoded under the reader's own size limits. Any error (an
    /// IPv6 address in an IPv4-only database, a corrupt record) reads as unknown.
    pub fn lookup(&self, ip: IpAddr) -> Location {
        use maxminddb::PathElement::{Index, Key};
        let ip = ip.to_canonical();
        let Ok(found) = self.reader.lookup(ip) else {
            return Location::UNKNOWN;
        };
        let text = |path: &[maxminddb::PathElement<'_>]| -> Option<&str> {
            found.decode_path::<&str>(path).ok().flatten()
        };
        let Some(country) =
            text(&[Key("country"), Key("iso_code")]).and_then(|c| parse_country(c.as_bytes()))
        else {
            return Location::UNKNOWN;
        };
        let region = text(&[Key("subdivisions"), Index(0), Key("iso_code")])
            .and_then(|s| Region::new(country, s.as_bytes()));
        Location {
            country: Some(country),
            region,
        }
    }
}

/// `[proxy.geo]`, validated (see `config/geo.rs`).
#[derive(Clone, Debug, Default)]
pub struct GeoSettings {
    pub country_header: Option<HeaderName>,
    pub region_header: Option<HeaderName>,
    pub database: Option<Arc<GeoDatabase>>,
}

impl GeoSettings {
    pub fn is_configured(&self) -> bool {
        self.country_header.is_some() || self.database.is_some()
    }
}

/// Whether the TCP peer may tell consentgate where the visitor is: a trusted proxy, or with
/// `trusted_proxies` unset a loopback peer (a CDN stand-in or a local test).
pub fn peer_may_locate(forwarded: &ForwardedSettings, peer: IpAddr) -> bool {
    if forwarded.trusted_proxies.is_empty() {
        peer.to_canonical().is_loopback()
    } else {
        forwarded.is_trusted(peer)
    }
}

/// The location headers, when the peer may send them and the country header holds a country.
pub fn from_headers(geo: &GeoSettings, headers: &HeaderMap) -> Option<Location> {
    let name = geo.country_header.as_ref()?;
    // One value only: two lines of the country header are two answers, neither believed.
    let mut values = headers.get_all(name).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let country = parse_country(v.as_bytes())?;
    let region = geo.region_header.as_ref().and_then(|name| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => parse_region(v.as_bytes(), Some(country)),
            _ => None,
        }
    });
    Some(Location {
        country: Some(country),
        region,
    })
}

/// The address the database is asked about: the client a peer that may locate names in its
/// forwarding headers, by the same rule as the location headers ([`peer_may_locate`]). With
/// `trusted_proxies` set that is `client`, the address `decide::forwarded` found. With it
/// unset, forwarding trusts nobody but a loopback peer may still locate (a local CDN stand-in):
/// its `X-Forwarded-For` (or `Forwarded`) is walked as `decide::forwarded` walks a trusted
/// peer's, loopback hops skipped, the right-most other hop the client.
pub fn database_client(
    forwarded: &ForwardedSettings,
    headers: &HeaderMap,
    peer: IpAddr,
    client: IpAddr,
) -> IpAddr {
    if forwarded.trusted_proxies.is_empty() && peer_may_locate(forwarded, peer) {
        let loopback = |ip: IpAddr| ip.to_canonical().is_loopback();
        crate::decide::forwarded::client_named_by(forwarded, peer, headers, loopback)
    } else {
        client
    }
}

/// Where the visitor is: the headers from a peer that may send them, else the database for
/// the client ([`database_client`]; `client` is the address `decide::forwarded` found), else
/// unknown.
pub fn locate(
    geo: &GeoSettings,
    forwarded: &ForwardedSettings,
    headers: &HeaderMap,
    peer: IpAddr,
    client: IpAddr,
) -> Location {
    if geo.country_header.is_some() && peer_may_locate(forwarded, peer) {
        if let Some(found) = from_headers(geo, headers) {
            return found;
        }
    }
    match &geo.database {
        Some(db) => db.lookup(database_client(forwarded, headers, peer, client)),
        None => Location::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<String> {
        parse_country(s.as_bytes()).map(|c| c.to_string())
    }

    fn r(s: &str, country: &str) -> Option<String> {
        parse_region(s.as_bytes(), parse_country(country.as_bytes())).map(|r| r.to_string())
    }

    #[test]
    fn countries_are_two_letters_upper_cased() {
        assert_eq!(c("DE").as_deref(), Some("DE"));
        assert_eq!(c(" us ").as_deref(), Some("US"));
        // Cloudflare: XX = no country data, T1 = Tor; ZZ = unknown.
        for bad in ["XX", "xx", "T1", "ZZ", "", "D", "DEU", "D-", "ü", "1 "] {
            assert_eq!(c(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn regions_alone_or_full_become_iso_3166_2() {
        assert_eq!(r("CA", "US").as_deref(), Some("US-CA"));
        assert_eq!(r("ca", "us").as_deref(), Some("US-CA"));
        assert_eq!(r("US-CA", "US").as_deref(), Some("US-CA"));
        assert_eq!(r("ENG", "GB").as_deref(), Some("GB-ENG"));
        assert_eq!(r("75C", "FR").as_deref(), Some("FR-75C"));
        // A full code for another country than the country header: not believed.
        assert_eq!(r("CA-QC", "US"), None);
        // The subdivision alone needs a country.
        assert_eq!(parse_region(b"CA", None), None);
        for bad in ["", "CALI", "C A", "US-", "U-CA", "US-CA-X", "<b>"] {
            assert_eq!(r(bad, "US"), None, "{bad:?}");
        }
        assert_eq!(parse_full_region("US-CA").unwrap().country().as_str(), "US");
        assert!(parse_full_region("CA").is_none());
    }

    /// A database written by the independent `mmdb-writer` crate, opened from a file.
    fn db(version: mmdb_writer::IpVersion, rows: &[(&str, serde_json::Value)]) -> GeoDatabase {
        let mut w = mmdb_writer::Writer::builder("GeoLite2-City")
            .ip_version(version)
            .build();
        for (net, record) in rows {
            w.insert(net.parse::<ipnet::IpNet>().unwrap(), record)
                .unwrap();
        }
        let path = std::env::temp_dir().join(format!(
            "consentgate-geo-unit-{}-{:?}-{}.mmdb",
            std::process::id(),
            version,
            rows.len()
        ));
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        let db = GeoDatabase::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        db
    }

    #[test]
    fn database_records_become_locations_and_odd_ones_unknown() {
        use serde_json::json;
        let d = db(
            mmdb_writer::IpVersion::V6,
            &[
                (
                    "2001:db8::/32",
                    json!({"country": {"iso_code": "FR"}, "subdivisions": [{"iso_code": "IDF"}, {"iso_code": "75C"}]}),
                ),
                ("192.0.2.0/25", json!({"country": {"iso_code": "XX"}})),
                (
                    "192.0.2.128/25",
                    json!({"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "C A"}]}),
                ),
                (
                    "198.51.100.0/24",
                    json!({"country": {"iso_code": "DE"}, "subdivisions": "BE"}),
                ),
                (
                    "203.0.113.0/24",
                    json!({"registered_country": {"iso_code": "NL"}}),
                ),
            ],
        );
        let at = |ip: &str| d.lookup(ip.parse().unwrap());
        let fr = at("2001:db8::1");
        assert_eq!(fr.country.unwrap().as_str(), "FR");
        assert_eq!(
            fr.region.unwrap().as_str(),
            "FR-IDF",
            "the first subdivision"
        );
        assert!(at("192.0.2.1").is_unknown(), "XX is no country");
        let us = at("192.0.2.200");
        assert_eq!((us.country.unwrap().as_str(), us.region), ("US", None));
        // An IPv4-mapped IPv6 client is looked up as IPv4.
        assert_eq!(at("::ffff:192.0.2.200"), us);
        let de = at("198.51.100.1");
        assert_eq!((de.country.unwrap().as_str(), de.region), ("DE", None));
        assert!(at("203.0.113.1").is_unknown(), "only `country` counts");
        assert!(at("10.0.0.1").is_unknown());
        // An IPv4-only database asked about an IPv6 client: unknown, no error.
        let v4 = db(
            mmdb_writer::IpVersion::V4,
            &[("192.0.2.0/24", json!({"country": {"iso_code": "SE"}}))],
        );
        assert_eq!(
            v4.lookup("192.0.2.9".parse().unwrap())
                .country
                .unwrap()
                .as_str(),
            "SE"
        );
        assert!(v4.lookup("2001:db8::1".parse().unwrap()).is_unknown());
        // Not a database: refused at load.
        let bad =
            std::env::temp_dir().join(format!("consentgate-geo-bad-{}.mmdb", std::process::id()));
        std::fs::write(&bad, b"not a database").unwrap();
        assert!(GeoDatabase::open(&bad).is_err());
        let _ = std::fs::remove_file(&bad);
    }

    #[test]
    fn the_database_client_follows_the_peer_rule_of_the_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, 127.0.0.1".parse().unwrap(),
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let far: IpAddr = "203.0.113.9".parse().unwrap();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let unset = ForwardedSettings::default();
        // Unset: a loopback peer's X-Forwarded-For names the client (loopback hops skipped);
        // any other peer's is not believed.
        assert_eq!(database_client(&unset, &h, lo, lo), client);
        assert_eq!(database_client(&unset, &h, far, far), far);
        // `forwarded_headers = "none"`: nothing read, the peer.
        let none = ForwardedSettings {
            headers: crate::config::ForwardedHeaders::None,
            ..Default::default()
        };
        assert_eq!(database_client(&none, &h, lo, lo), lo);
        // Set: the forwarding decision's client, whatever the peer.
        let cdn = ForwardedSettings {
            trusted_proxies: vec![crate::config::parse_trusted("10.0.0.0/8").unwrap()],
            ..Default::default()
        };
        assert_eq!(database_client(&cdn, &h, lo, lo), lo);
    }

    #[test]
    fn headers_only_from_peers_that_may_send_them() {
        let geo = GeoSettings {
            country_header: Some(HeaderName::from_static("cf-ipcountry")),
            region_header: Some(HeaderName::from_static("cf-region-code")),
            database: None,
        };
        let mut h = HeaderMap::new();
        h.insert("cf-ipcountry", "US".parse().unwrap());
        h.insert("cf-region-code", "CA".parse().unwrap());
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let far: IpAddr = "203.0.113.9".parse().unwrap();
        let unset = ForwardedSettings::default();
        let l = locate(&geo, &unset, &h, lo, lo);
        assert_eq!(l.region.unwrap().as_str(), "US-CA");
        assert!(locate(&geo, &unset, &h, far, far).is_unknown());
        let cdn = ForwardedSettings {
            trusted_proxies: vec![crate::config::parse_trusted("203.0.113.0/24").unwrap()],
            ..Default::default()
        };
        assert_eq!(locate(&geo, &cdn, &h, far, far).country, l.country);
        // With trusted_proxies set, loopback is trusted only if listed.
        assert!(locate(&geo, &cdn, &h, lo, lo).is_unknown());
        // Two country lines: not believed.
        h.append("cf-ipcountry", "DE".parse().unwrap());
        assert!(locate(&geo, &unset, &h, lo, lo).is_unknown());
    }
}
