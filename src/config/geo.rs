//! `[proxy.geo]`: where consentgate learns the visitor's location (issue 11, "Where the
//! visitor is"). The header names are checked and the database is opened here, at load, so a
//! missing or unreadable file is a configuration error naming it (a reload opens it again and
//! picks up a replaced file). The lookup itself is `crate::geo`.

use super::located::Located;
use super::{ConfigErrorKind, Validator};
use crate::geo::{GeoDatabase, GeoSettings};
use http::HeaderName;
use serde::Deserialize;
use std::sync::Arc;
use toml::Spanned;

/// `[proxy.geo]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeo {
    /// e.g. `"CF-IPCountry"`, `"CloudFront-Viewer-Country"`.
    pub country_header: Option<Spanned<String>>,
    /// e.g. `"cf-region-code"`, `"CloudFront-Viewer-Country-Region"`.
    pub region_header: Option<Spanned<String>>,
    /// A MaxMind-format `.mmdb` (GeoLite2/GeoIP2 Country or City, DB-IP Lite).
    pub database: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub(super) fn geo_settings(&mut self, raw: &Option<Located<RawGeo>>) -> GeoSettings {
        let Some(g) = raw else {
            return GeoSettings::default();
        };
        let g = g.get_ref();
        let country_header = self.geo_header("country_header", &g.country_header);
        let region_header = self.geo_header("region_header", &g.region_header);
        if let (Some(r), None) = (&g.region_header, &g.country_header) {
            let msg = "region_header without country_header: a region code is read only beside its country; add country_header".to_string();
            self.error_at(r.span(), ConfigErrorKind::Geo(msg));
        }
        let database = g.database.as_ref().and_then(|p| {
            let path = self.resolve(p.get_ref());
            match GeoDatabase::open(&path) {
                Ok(db) => Some(Arc::new(db)),
                Err(e) => {
                    let msg = format!(
                        "database `{}` cannot be opened as a MaxMind DB: {e}; point it at a .mmdb file (GeoLite2/GeoIP2 Country or City, DB-IP Lite)",
                        path.display()
                    );
                    self.error_at(p.span(), ConfigErrorKind::Geo(msg));
                    None
                }
            }
        });
        GeoSettings {
            country_header,
            region_header,
            database,
        }
    }

    fn geo_header(&mut self, key: &str, raw: &Option<Spanned<String>>) -> Option<HeaderName> {
        let h = raw.as_ref()?;
        match HeaderName::from_bytes(h.get_ref().trim().as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                let msg = format!(
                    "{key} `{}` is not a header name; write it like \"CF-IPCountry\"",
                    h.get_ref()
                );
                self.error_at(h.span(), ConfigErrorKind::Geo(msg));
                None
            }
        }
    }
}
