//! What the proxy answers instead of a blocked tracker request: something the page tolerates
//! (an empty script, a transparent pixel, `204` for beacons) and a short explanation for documents.

use super::{BlockMatch, RequestKind};
use serde::Deserialize;

/// Status per request kind (`[site.block_responses]`). `200` sends the kind's empty body
/// (empty script or stylesheet, 1x1 transparent GIF), `204` nothing, anything else a short
/// plain-text explanation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockResponses {
    pub document: u16,
    pub subdocument: u16,
    pub script: u16,
    pub image: u16,
    pub stylesheet: u16,
    pub font: u16,
    pub media: u16,
    pub xhr: u16,
    pub ping: u16,
    pub other: u16,
}

impl Default for BlockResponses {
    fn default() -> Self {
        BlockResponses {
            document: 403,
            subdocument: 403,
            script: 200,
            image: 200,
            stylesheet: 200,
            font: 204,
            media: 204,
            xhr: 204,
            ping: 204,
            other: 204,
        }
    }
}

impl BlockResponses {
    pub fn status(&self, kind: RequestKind) -> u16 {
        match kind {
            RequestKind::Document => self.document,
            RequestKind::Subdocument => self.subdocument,
            RequestKind::Script => self.script,
            RequestKind::Image => self.image,
            RequestKind::Stylesheet => self.stylesheet,
            RequestKind::Font => self.font,
            RequestKind::Media => self.media,
            RequestKind::Xhr => self.xhr,
            RequestKind::Ping => self.ping,
            RequestKind::Other => self.other,
        }
    }

    /// Every configured status must be a real one (checked at load).
    pub fn validate(&self) -> Result<(), String> {
        for s in [
            self.document,
            self.subdocument,
            self.script,
            self.image,
            self.stylesheet,
            self.font,
            self.media,
            self.xhr,
            self.ping,
            self.other,
        ] {
            if !(200..=599).contains(&s) || (300..400).contains(&s) {
                return Err(format!(
                    "status {s} cannot answer a blocked request; use 200, 204 or a 4xx/5xx code"
                ));
            }
        }
        Ok(())
    }
}

/// The smallest transparent GIF (1x1).
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// One block response.
pub struct BlockResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub fn block_response(kind: RequestKind, policy: &BlockResponses, m: &BlockMatch) -> BlockResponse {
    let status = policy.status(kind);
    match status {
        200 => match kind {
            RequestKind::Image => BlockResponse {
                status,
                content_type: "image/gif",
                body: PIXEL_GIF.to_vec(),
            },
            RequestKind::Stylesheet => BlockResponse {
                status,
                content_type: "text/css",
                body: Vec::new(),
            },
            RequestKind::Script => BlockResponse {
                status,
                content_type: "text/javascript",
                body: Vec::new(),
            },
            _ => BlockResponse {
                status,
                content_type: "text/plain",
                body: Vec::new(),
            },
        },
        204 => BlockResponse {
            status,
            content_type: "text/plain",
            body: Vec::new(),
        },
        _ => BlockResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!(
                "Blocked by consentgate: this {} is a {} tracker and you have not consented to {} cookies and trackers on this site.\n",
                kind.as_str(),
                m.category,
                m.category
            )
            .into_bytes(),
        },
    }
}
