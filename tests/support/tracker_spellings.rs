//! Spellings of the tracker path `/g/collect?v=2` that an origin's router reads as that path
//! (issue 8's bypasses: percent-encoding, dot segments, a trailing slash, `;` parameters,
//! doubled slashes). The unit tests of src/trackers/normalize.rs and tests/hardening_requests.rs
//! include this file: the pure normalisation and the running proxy must agree on every one.

pub const PLAIN: &str = "/g/collect?v=2";

pub const SPELLINGS: &[&str] = &[
    "/g/coll%65ct?v=2",
    "/g/./collect?v=2",
    "/g/collect/?v=2",
    "/g%2Fcollect?v=2",
    "/g/collect;a?v=2",
    "/g//collect?v=2",
    "/x/../g/collect?v=2",
    "/g/..;/g/collect?v=2",
    "/g/%2e/collect?v=2",
    "/%67/collect?v=2",
];
