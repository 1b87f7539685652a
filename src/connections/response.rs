//! The status line, body framing and `Connection` header of a response to an HTTP/1 client, made
//! to agree whatever HTTP-version the origin spoke and whatever the filters did to the body.
//!
//! pingora writes the origin's HTTP-version into the client's status line and frames the body by
//! the header it is handed. Left alone that breaks two ways:
//!
//! - an HTTP/1.0 origin's page rewritten for an HTTP/1.1 client went out as `HTTP/1.0 200` with
//!   `Transfer-Encoding: chunked` and `Connection: keep-alive`. Chromium does not decode chunks
//!   in an HTTP/1.0 response, so it read the body until the connection closed, at the
//!   keep-alive timeout (75 s by default), before the page's load event fired. RFC 9110 §6.2:
//!   an intermediary sends its own HTTP-version in forwarded messages, here always `HTTP/1.1`
//!   (and for an HTTP/1.0 client too: §6.2 asks for the highest version the server conforms to
//!   whose major version is not above the request's).
//! - pingora frames a close-delimited origin body as chunked before the filters run, and
//!   forwards an origin's `Transfer-Encoding: chunked`, whatever the client's version. An
//!   HTTP/1.0 client cannot read chunks (RFC 9112 §6.1: a server must not send
//!   `Transfer-Encoding` to it), so it gets the body unframed, ended by closing the connection,
//!   and the header says `Connection: close`.
//!
//! Pure: [`plan`] takes what the response filter knows and says what to change; the proxy
//! applies it (`frame_for_client` in `src/proxy.rs`). Nothing is allocated.

use http::Version;

/// What the response filter knows of a response about to go to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The HTTP-version of the client's request.
    pub client: Version,
    /// No body follows the header: the request was `HEAD`, or the status is 1xx, 204 or 304
    /// (RFC 9112 §6.3, items 1-2).
    pub bodiless: bool,
    /// The header holds `Content-Length` (after the filters' edits).
    pub content_length: bool,
    /// The header holds `Transfer-Encoding` (after the filters' edits).
    pub transfer_encoding: bool,
}

/// The changes that make a response's status line, framing and `Connection` agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framing {
    /// Write `HTTP/1.1` in the status line (an HTTP/1 client; HTTP/2 has no status line).
    pub http11: bool,
    /// Add `Transfer-Encoding: chunked`: an HTTP/1.1 client and a body of unknown length
    /// (a rewritten page lost its `Content-Length`). Unframed, the body would end by closing the
    /// connection, and the visitor would open a new one after every such page.
    pub chunk: bool,
    /// Remove `Transfer-Encoding` and `Content-Length`: an HTTP/1.0 client cannot read chunks.
    /// A `Content-Length` beside `Transfer-Encoding` is not to be trusted (RFC 9112 §6.3,
    /// item 3), so it goes too and the body ends with the connection.
    pub unchunk: bool,
    /// Close the connection after this response (pingora then sends `Connection: close`): its
    /// body ends by the close.
    pub close: bool,
}

/// The framing a response needs for its client.
pub fn plan(head: Head) -> Framing {
    match head.client {
        Version::HTTP_11 => Framing {
            http11: true,
            chunk: !head.bodiless && !head.content_length && !head.transfer_encoding,
            ..Framing::default()
        },
        Version::HTTP_10 | Version::HTTP_09 => {
            let length_kept = head.content_length && !head.transfer_encoding;
            Framing {
                http11: true,
                unchunk: head.transfer_encoding,
                close: !head.bodiless && !length_kept,
                ..Framing::default()
            }
        }
        // HTTP/2 (and anything later) frames the body itself and has no status line.
        _ => Framing::default(),
    }
}

/// Whether interim (1xx) responses may go to this client: not to an HTTP/1.0 one (RFC 9110
/// §15.2), which would take a `103 Early Hints` for the answer. pingora forwards the origin's
/// 1xx to every client unless told to drop them (an exception it keeps: a `100` to a request
/// that asked for it with `Expect: 100-continue`).
pub fn interim_responses(client: Version) -> bool {
    !matches!(client, Version::HTTP_10 | Version::HTTP_09)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(client: Version, content_length: bool, transfer_encoding: bool) -> Head {
        Head {
            client,
            bodiless: false,
            content_length,
            transfer_encoding,
        }
    }

    #[test]
    fn an_http11_client_gets_http11_and_a_body_of_unknown_length_chunked() {
        let unknown = plan(head(Version::HTTP_11, false, false));
        assert_eq!(
            unknown,
            Framing {
                http11: true,
                chunk: true,
                ..Framing::default()
            }
        );
        for (cl, te) in [(true, false), (false, true)] {
            let framed = plan(head(Version::HTTP_11, cl, te));
            assert_eq!(
                framed,
                Framing {
                    http11: true,
                    ..Framing::default()
                },
                "cl {cl} te {te}"
            );
        }
    }

    #[test]
    fn an_http10_client_never_gets_chunks_and_an_unframed_body_closes_the_connection() {
        let chunked = plan(head(Version::HTTP_10, false, true));
        assert!(chunked.http11 && chunked.unchunk && chunked.close && !chunked.chunk);
        // A length beside chunks is dropped with them: the body ends with the connection.
        let both = plan(head(Version::HTTP_10, true, true));
        assert!(both.unchunk && both.close);
        let unframed = plan(head(Version::HTTP_10, false, false));
        assert!(!unframed.unchunk && unframed.close && !unframed.chunk);
        // A length is kept, and so is a keep-alive the client asked for.
        let length = plan(head(Version::HTTP_10, true, false));
        assert!(length.http11 && !length.unchunk && !length.close && !length.chunk);
    }

    #[test]
    fn a_response_without_a_body_is_never_chunked_nor_closed_for_its_framing() {
        for client in [Version::HTTP_10, Version::HTTP_11] {
            let f = plan(Head {
                client,
                bodiless: true,
                content_length: false,
                transfer_encoding: false,
            });
            assert!(f.http11 && !f.chunk && !f.close, "{client:?}");
        }
    }

    #[test]
    fn an_http10_client_gets_no_interim_responses() {
        assert!(!interim_responses(Version::HTTP_10));
        assert!(!interim_responses(Version::HTTP_09));
        assert!(interim_responses(Version::HTTP_11));
        assert!(interim_responses(Version::HTTP_2));
    }

    #[test]
    fn an_http2_client_is_left_to_http2_framing() {
        for (cl, te) in [(false, false), (true, false), (false, true)] {
            assert_eq!(
                plan(head(Version::HTTP_2, cl, te)),
                Framing::default(),
                "cl {cl} te {te}"
            );
        }
    }
}
