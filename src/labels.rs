//! The fixed label vocabularies of the metrics, as enums: a label value is written once (its
//! `as_str`), and per-label counter arrays are indexed by the enum, never by a bare number.
//! Metric names themselves live in [`crate::metrics`].

use crate::consent::Category;

/// Defines a label enum with `ALL` (in index order), `COUNT`, `as_str`, and indexing of
/// `[T; COUNT]` arrays by the enum.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// How many values there are (the length of arrays indexed by this label).
            pub const COUNT: usize = $name::ALL.len();

            /// Every value, comma-separated (for metric help texts).
            pub fn list() -> String {
                $name::ALL
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }

            /// The label value as exported.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl<T> std::ops::Index<$name> for [T; $name::COUNT] {
            type Output = T;
            fn index(&self, label: $name) -> &T {
                &self[label as usize]
            }
        }

        impl<T> std::ops::IndexMut<$name> for [T; $name::COUNT] {
            fn index_mut(&mut self, label: $name) -> &mut T {
                &mut self[label as usize]
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum!(
    /// A cookie's category as a label: the four [`Category`] values, or `unknown` for a name no
    /// rule, catalogue entry or database row classifies.
    CategoryLabel {
        Necessary = "necessary",
        Preferences = "preferences",
        Analytics = "analytics",
        Marketing = "marketing",
        Unknown = "unknown",
    }
);

impl From<Category> for CategoryLabel {
    fn from(c: Category) -> CategoryLabel {
        match c {
            Category::Necessary => CategoryLabel::Necessary,
            Category::Preferences => CategoryLabel::Preferences,
            Category::Analytics => CategoryLabel::Analytics,
            Category::Marketing => CategoryLabel::Marketing,
        }
    }
}

impl From<Option<Category>> for CategoryLabel {
    fn from(c: Option<Category>) -> CategoryLabel {
        c.map_or(CategoryLabel::Unknown, CategoryLabel::from)
    }
}

label_enum!(
    /// A request's consent state (`consentgate_requests_total{consent}`).
    ConsentLabel {
        /// No category beyond the necessary one is granted.
        None = "none",
        /// Some optional categories are granted.
        Partial = "partial",
        /// Every category is granted.
        All = "all",
        /// A consent source could not be read (it granted nothing).
        Invalid = "invalid",
        /// The site runs in `mode = "off"`: consent is not read.
        Off = "off",
    }
);

label_enum!(
    /// What happened to a response `Set-Cookie` line.
    SetCookieAction {
        Kept = "kept",
        Stripped = "stripped",
        /// Report-only: it would have been stripped.
        WouldStrip = "would_strip",
    }
);

label_enum!(
    /// What happened to a request cookie withheld from the origin.
    StripAction {
        Stripped = "stripped",
        /// Report-only: it would have been withheld.
        WouldStrip = "would_strip",
    }
);

label_enum!(
    /// What happened to a tracker request.
    BlockAction {
        Blocked = "blocked",
        /// Report-only: it would have been answered locally.
        WouldBlock = "would_block",
    }
);

label_enum!(
    /// Why an HTML rewrite failed and the body went out unchanged
    /// (`consentgate_rewrite_failures_total{reason}`).
    RewriteFailure {
        /// A `Content-Encoding` the rewriter cannot decode.
        Encoding = "encoding",
        /// A charset the rewriter cannot read.
        Charset = "charset",
        /// The rewriter reported an error mid-body.
        Rewriter = "rewriter",
        /// The rewriter panicked.
        Panic = "panic",
    }
);

label_enum!(
    /// Where a filter failed and its failure policy applied (`consentgate_filter_errors_total{stage}`).
    FilterStage {
        /// Request cookies: forwarded unchanged (availability fails open).
        RequestCookies = "request_cookies",
        /// Blocklist matching: the request goes to the origin (fails open).
        Blocklist = "blocklist",
        /// `Set-Cookie` gating: every `Set-Cookie` is withheld (privacy fails closed).
        SetCookie = "set_cookie",
        /// Forwarding headers: every incoming one removed, none added, the scheme this
        /// connection's (fails closed: no client can speak for another).
        Forwarded = "forwarded",
        /// Consent-mode beacon audit: the request goes on to the blocklists (fails open).
        ConsentMode = "consent_mode",
        /// Locating the visitor: the location is unknown (its jurisdiction fallback applies).
        Geo = "geo",
        /// Consent receipt check: no receipt, the request goes on (fails open).
        Receipts = "receipts",
    }
);

impl StripAction {
    /// `stripped` when the site enforces, `would_strip` in report-only.
    pub fn for_enforce(enforce: bool) -> StripAction {
        if enforce {
            StripAction::Stripped
        } else {
            StripAction::WouldStrip
        }
    }
}

impl BlockAction {
    /// `blocked` when the site enforces, `would_block` in report-only.
    pub fn for_enforce(enforce: bool) -> BlockAction {
        if enforce {
            BlockAction::Blocked
        } else {
            BlockAction::WouldBlock
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_labels_follow_the_categories() {
        for c in Category::ALL {
            assert_eq!(CategoryLabel::from(c).as_str(), c.as_str());
        }
        assert_eq!(CategoryLabel::from(None), CategoryLabel::Unknown);
        assert_eq!(CategoryLabel::COUNT, Category::ALL.len() + 1);
    }

    #[test]
    fn arrays_are_indexed_by_label() {
        let mut a = [0u32; ConsentLabel::COUNT];
        a[ConsentLabel::Off] += 2;
        assert_eq!(a, [0, 0, 0, 0, 2]);
        assert_eq!(ConsentLabel::ALL[4].as_str(), "off");
    }
}
