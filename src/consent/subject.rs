//! The CMP's own consent id, for consent receipts (src/receipts/): the record a consent
//! platform keeps under that id is what a receipt is matched against in an audit.
//!
//! Read only when a receipt is built (a new consent signal), never on the common request path.
//! The id is a client-supplied string: it is kept only when short and made of the characters
//! these formats use (ids are UUIDs or base64), so it cannot carry markup or control bytes into
//! the store, a CSV export or the HTML report.

/// The longest id kept (a UUID is 36 characters; Cookiebot's stamp about 60).
pub const MAX_SUBJECT_LEN: usize = 128;

/// The consent id carried by a `format` cookie whose raw (still URL-encoded) value is `raw`:
/// OneTrust `consentId`, Cookiebot `stamp`, Didomi `user_id`, CookieYes `consentid`. `None`
/// for formats without one (TCF, Klaro, Complianz, first-party) and for ids that fail
/// [`valid_subject`].
pub fn subject_id(format: &str, raw: &[u8]) -> Option<String> {
    let id = match format {
        "onetrust" => {
            let text = std::str::from_utf8(raw).ok()?;
            super::onetrust::decode(text).ok()?.consent_id
        }
        "cookiebot" => {
            let text = super::url_decoded(raw).ok()?;
            let fields = super::cookiebot::decode(&text).ok()?;
            let stamp = fields.iter().find(|(k, _)| *k == "stamp")?.1;
            // "-1" and "0" mark no consent recorded (a region without a banner, or implied).
            (stamp != "-1" && stamp != "0").then(|| stamp.to_string())
        }
        "didomi" => {
            let text = super::url_decoded(raw).ok()?;
            let v = super::didomi::decode(&text).ok()?;
            v.get("user_id")?.as_str().map(str::to_string)
        }
        "cookieyes" => {
            let text = super::url_decoded(raw).ok()?;
            let fields = super::cookieyes::decode(&text).ok()?;
            Some(
                fields
                    .iter()
                    .find(|(k, _)| *k == "consentid")?
                    .1
                    .to_string(),
            )
        }
        _ => None,
    }?;
    valid_subject(&id).then_some(id)
}

/// Short, non-empty, and only characters of UUIDs, base64 and base64url.
pub fn valid_subject(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SUBJECT_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+/=.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values as the CMPs write them; the same real cookies the format readers are tested on
    // (provenance beside each in src/consent/<format>.rs).
    #[test]
    fn each_cmp_id_is_read() {
        let onetrust = "isGpcEnabled=0&datestamp=Tue+Nov+24+2026+10%3A12%3A31+GMT%2B0100&version=202409.1.0&consentId=5b1c2d3e-aaaa-bbbb-cccc-123456789abc&interactionCount=1&groups=C0001%3A1%2CC0002%3A0";
        assert_eq!(
            subject_id("onetrust", onetrust.as_bytes()).as_deref(),
            Some("5b1c2d3e-aaaa-bbbb-cccc-123456789abc")
        );
        let cookiebot = "%7Bstamp%3A%27-5%2FFJWmqBlyO2OgHRNq3s%2B9xwkzA7u3R9A5lMtzZ0g4Zq4KfMKdY5Ow%3D%3D%27%2Cnecessary%3Atrue%2Cpreferences%3Afalse%2Cstatistics%3Atrue%2Cmarketing%3Afalse%2Cmethod%3A%27explicit%27%2Cver%3A1%2Cutc%3A1732441551063%2Cregion%3A%27de%27%7D";
        assert_eq!(
            subject_id("cookiebot", cookiebot.as_bytes()).as_deref(),
            Some("-5/FJWmqBlyO2OgHRNq3s+9xwkzA7u3R9A5lMtzZ0g4Zq4KfMKdY5Ow==")
        );
        let cookieyes = "consentid:ZWdMRlBLbHhyU2d4dUdaSHpSb2JrNXJOd2ZQNXdWcmo,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes";
        assert_eq!(
            subject_id("cookieyes", cookieyes.as_bytes()).as_deref(),
            Some("ZWdMRlBLbHhyU2d4dUdaSHpSb2JrNXJOd2ZQNXdWcmo")
        );
        // {"user_id":"1827a1b4-5f3a-6e6d-b2a4-3c2f8b9d0e1f","purposes":{}} in base64.
        use base64::Engine;
        let didomi = base64::engine::general_purpose::STANDARD
            .encode(br#"{"user_id":"1827a1b4-5f3a-6e6d-b2a4-3c2f8b9d0e1f","purposes":{}}"#);
        assert_eq!(
            subject_id("didomi", didomi.as_bytes()).as_deref(),
            Some("1827a1b4-5f3a-6e6d-b2a4-3c2f8b9d0e1f")
        );
    }

    #[test]
    fn hostile_or_missing_ids_are_not_kept() {
        assert_eq!(subject_id("tcf", b"CPz"), None);
        assert_eq!(
            subject_id("cookieyes", b"consentid:<script>,consent:yes"),
            None
        );
        let long = format!("consentid:{},consent:yes", "a".repeat(200));
        assert_eq!(subject_id("cookieyes", long.as_bytes()), None);
        assert_eq!(
            subject_id("cookiebot", b"{stamp:'-1',necessary:true}"),
            None
        );
    }
}
