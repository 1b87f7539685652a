//! Global Privacy Control (`Sec-GPC`). Only the exact value `1` is a signal (GPC spec, section 3).
//! The header is read here and never removed from the request.

use super::{Category, Grants};
use serde::Deserialize;

/// What a site does with `Sec-GPC: 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GpcPolicy {
    /// Opt-out of sale/sharing: refuse marketing whatever the consent cookie says (CCPA/CPRA).
    #[default]
    DenyMarketing,
    /// Treat the signal as refusal of everything optional.
    DenyAllOptional,
    /// Do not act on the signal (it is still passed to the origin).
    Ignore,
}

impl GpcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            GpcPolicy::DenyMarketing => "deny-marketing",
            GpcPolicy::DenyAllOptional => "deny-all-optional",
            GpcPolicy::Ignore => "ignore",
        }
    }
}

/// `true` when any `Sec-GPC` header value is exactly `1` (surrounding whitespace allowed, as
/// HTTP field values are trimmed).
pub fn is_gpc_signal<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|v| v.trim_ascii() == b"1")
}

/// Applies the site's GPC policy to the consent read from cookies.
pub fn apply(policy: GpcPolicy, gpc: bool, mut grants: Grants) -> Grants {
    if !gpc {
        return grants;
    }
    match policy {
        GpcPolicy::DenyMarketing => grants.deny(Category::Marketing),
        GpcPolicy::DenyAllOptional => grants = Grants::NONE,
        GpcPolicy::Ignore => {}
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_one_is_a_signal() {
        assert!(is_gpc_signal([&b"1"[..]]));
        assert!(is_gpc_signal([&b" 1 "[..]]));
        assert!(!is_gpc_signal([&b"0"[..]]));
        assert!(!is_gpc_signal([&b"true"[..]]));
        assert!(!is_gpc_signal([&b"11"[..]]));
        assert!(!is_gpc_signal(std::iter::empty::<&[u8]>()));
    }

    #[test]
    fn policies() {
        let all = Grants::ALL;
        let g = apply(GpcPolicy::DenyMarketing, true, all);
        assert!(!g.allows(Category::Marketing) && g.allows(Category::Analytics));
        assert_eq!(apply(GpcPolicy::DenyAllOptional, true, all), Grants::NONE);
        assert_eq!(apply(GpcPolicy::Ignore, true, all), all);
        assert_eq!(apply(GpcPolicy::DenyAllOptional, false, all), all);
    }
}
