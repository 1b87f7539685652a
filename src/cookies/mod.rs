//! Cookies: which category a cookie name belongs to, and what happens to request cookies and
//! response `Set-Cookie` lines given the visitor's consent. Pure functions, plus the bounded
//! per-site cache of expiry lines ([`expiry_cache`]).

pub mod catalogue;
pub mod classify;
pub mod expiry_cache;
pub mod gate;
pub mod header;
pub mod ocd;
