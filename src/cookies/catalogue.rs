//! The built-in catalogue of common cookies: the facts DESIGN.md relies on (`_ga` analytics,
//! `_fbp` marketing, `PHPSESSID` necessary, ...), from the vendors' own cookie documentation.
//! A pattern ending in `*` is a prefix. Operator rules come first and override any entry.
//! Lookup goes through the per-site [`super::classify::Classifier`], which merges this table.

use crate::consent::Category;
use crate::consent::Category::{Analytics, Marketing, Necessary, Preferences};

pub struct CatalogueEntry {
    pub pattern: &'static str,
    pub category: Category,
    pub vendor: &'static str,
}

const fn e(pattern: &'static str, category: Category, vendor: &'static str) -> CatalogueEntry {
    CatalogueEntry {
        pattern,
        category,
        vendor,
    }
}

pub static CATALOGUE: &[CatalogueEntry] = &[
    // --- Google Analytics (GA4, Universal Analytics, legacy urchin) ---
    e("_ga", Analytics, "Google Analytics"),
    e("_ga_*", Analytics, "Google Analytics"),
    e("_gid", Analytics, "Google Analytics"),
    e("_gat", Analytics, "Google Analytics"),
    e("_gat_*", Analytics, "Google Analytics"),
    e("_dc_gtm_*", Analytics, "Google Tag Manager"),
    e("AMP_TOKEN", Analytics, "Google Analytics"),
    e("__utma", Analytics, "Google Analytics"),
    e("__utmb", Analytics, "Google Analytics"),
    e("__utmc", Analytics, "Google Analytics"),
    e("__utmt", Analytics, "Google Analytics"),
    e("__utmv", Analytics, "Google Analytics"),
    e("__utmz", Analytics, "Google Analytics"),
    e("FPID", Analytics, "Google Tag Manager server-side"),
    e("FPLC", Analytics, "Google Tag Manager server-side"),
    e("FPGSID", Analytics, "Google Tag Manager server-side"),
    // --- Google Ads / DoubleClick / Floodlight ---
    e("_gcl_*", Marketing, "Google Ads"),
    e("_gac_*", Marketing, "Google Ads"),
    e("FPGCLAW", Marketing, "Google Ads"),
    e("FPGCLDC", Marketing, "Google Ads"),
    e("FPAU", Marketing, "Google Ads"),
    e("IDE", Marketing, "DoubleClick"),
    e("DSID", Marketing, "DoubleClick"),
    e("test_cookie", Marketing, "DoubleClick"),
    e("__gads", Marketing, "Google AdSense"),
    e("__gpi", Marketing, "Google AdSense"),
    e("__gsas", Marketing, "Google AdSense"),
    e("NID", Marketing, "Google"),
    e("1P_JAR", Marketing, "Google"),
    e("ANID", Marketing, "Google"),
    e("AEC", Necessary, "Google"), // anti-abuse: Google documents it as security
    // --- Meta (Facebook, Instagram) ---
    e("_fbp", Marketing, "Meta"),
    e("_fbc", Marketing, "Meta"),
    e("fr", Marketing, "Meta"),
    // --- Microsoft Clarity / Advertising (UET) / Bing ---
    e("_clck", Analytics, "Microsoft Clarity"),
    e("_clsk", Analytics, "Microsoft Clarity"),
    e("CLID", Analytics, "Microsoft Clarity"),
    e("ANONCHK", Marketing, "Microsoft"),
    e("MR", Marketing, "Microsoft"),
    e("MUID", Marketing, "Microsoft"),
    e("SM", Analytics, "Microsoft Clarity"),
    e("SRM_B", Marketing, "Microsoft"),
    e("_uetsid", Marketing, "Microsoft Advertising"),
    e("_uetvid", Marketing, "Microsoft Advertising"),
    e("_uetmsclkid", Marketing, "Microsoft Advertising"),
    // --- Hotjar ---
    e("_hjSessionUser_*", Analytics, "Hotjar"),
    e("_hjSession_*", Analytics, "Hotjar"),
    e("_hjid", Analytics, "Hotjar"),
    e("_hjIncludedInSessionSample*", Analytics, "Hotjar"),
    e("_hjIncludedInPageviewSample", Analytics, "Hotjar"),
    e("_hjAbsoluteSessionInProgress", Analytics, "Hotjar"),
    e("_hjFirstSeen", Analytics, "Hotjar"),
    e("_hjTLDTest", Analytics, "Hotjar"),
    e("_hjLocalStorageTest", Analytics, "Hotjar"),
    e("_hjSessionStorageTest", Analytics, "Hotjar"),
    e("_hjRecordingEnabled", Analytics, "Hotjar"),
    e("_hjRecordingLastActivity", Analytics, "Hotjar"),
    e("_hjCachedUserAttributes", Analytics, "Hotjar"),
    e("_hjUserAttributesHash", Analytics, "Hotjar"),
    e("_hjClosedSurveyInvites", Analytics, "Hotjar"),
    e("_hjDonePolls", Analytics, "Hotjar"),
    e("_hjMinimizedPolls", Analytics, "Hotjar"),
    e("_hjShownFeedbackMessage", Analytics, "Hotjar"),
    e("_hjOptOut", Necessary, "Hotjar"), // records the refusal itself
    // --- HubSpot ---
    e("__hstc", Marketing, "HubSpot"),
    e("hubspotutk", Marketing, "HubSpot"),
    e("__hssc", Analytics, "HubSpot"),
    e("__hssrc", Analytics, "HubSpot"),
    e("messagesUtk", Preferences, "HubSpot"),
    e("__hs_opt_out", Necessary, "HubSpot"),
    e("__hs_do_not_track", Necessary, "HubSpot"),
    e("__hs_cookie_cat_pref", Necessary, "HubSpot"),
    // --- Segment, Mixpanel, Amplitude, Heap, PostHog, FullStory ---
    e("ajs_anonymous_id", Analytics, "Segment"),
    e("ajs_user_id", Analytics, "Segment"),
    e("ajs_group_id", Analytics, "Segment"),
    e("mp_*", Analytics, "Mixpanel"),
    e("amp_*", Analytics, "Amplitude"),
    e("AMP_*", Analytics, "Amplitude"),
    e("_hp2_*", Analytics, "Heap"),
    e("ph_*", Analytics, "PostHog"),
    e("fs_uid", Analytics, "FullStory"),
    e("fs_lua", Analytics, "FullStory"),
    // --- LinkedIn ---
    e("li_sugr", Marketing, "LinkedIn"),
    e("bcookie", Marketing, "LinkedIn"),
    e("bscookie", Marketing, "LinkedIn"),
    e("lidc", Marketing, "LinkedIn"),
    e("UserMatchHistory", Marketing, "LinkedIn"),
    e("AnalyticsSyncHistory", Marketing, "LinkedIn"),
    e("li_fat_id", Marketing, "LinkedIn"),
    e("li_gc", Necessary, "LinkedIn"), // stores the visitor's consent to LinkedIn cookies
    e("_guid", Marketing, "LinkedIn"),
    e("ln_or", Analytics, "LinkedIn"),
    // --- TikTok, Pinterest, Snap, Reddit, X/Twitter, Yandex ---
    e("_ttp", Marketing, "TikTok"),
    e("_tt_enable_cookie", Marketing, "TikTok"),
    e("ttwid", Marketing, "TikTok"),
    e("_pinterest_sess", Marketing, "Pinterest"),
    e("_pin_unauth", Marketing, "Pinterest"),
    e("_pinterest_ct_ua", Marketing, "Pinterest"),
    e("_epik", Marketing, "Pinterest"),
    e("_derived_epik", Marketing, "Pinterest"),
    e("_scid", Marketing, "Snap"),
    e("_scid_r", Marketing, "Snap"),
    e("_sctr", Marketing, "Snap"),
    e("_rdt_uuid", Marketing, "Reddit"),
    e("_rdt_cid", Marketing, "Reddit"),
    e("personalization_id", Marketing, "X (Twitter)"),
    e("guest_id", Marketing, "X (Twitter)"),
    e("guest_id_ads", Marketing, "X (Twitter)"),
    e("guest_id_marketing", Marketing, "X (Twitter)"),
    e("muc_ads", Marketing, "X (Twitter)"),
    e("_ym_uid", Analytics, "Yandex Metrica"),
    e("_ym_d", Analytics, "Yandex Metrica"),
    e("_ym_isad", Analytics, "Yandex Metrica"),
    e("_ym_visorc", Analytics, "Yandex Metrica"),
    e("yandexuid", Marketing, "Yandex"),
    // --- Matomo / Piwik ---
    e("_pk_id*", Analytics, "Matomo"),
    e("_pk_ses*", Analytics, "Matomo"),
    e("_pk_ref*", Analytics, "Matomo"),
    e("_pk_cvar*", Analytics, "Matomo"),
    e("_pk_hsr*", Analytics, "Matomo"),
    e("_pk_testcookie*", Analytics, "Matomo"),
    e("MATOMO_SESSID", Necessary, "Matomo"), // Matomo's own admin session
    e("mtm_consent*", Necessary, "Matomo"),
    e("mtm_cookie_consent", Necessary, "Matomo"),
    e("piwik_ignore", Necessary, "Matomo"),
    // --- Adobe Experience Cloud ---
    e("s_cc", Analytics, "Adobe Analytics"),
    e("s_sq", Analytics, "Adobe Analytics"),
    e("s_vi", Analytics, "Adobe Analytics"),
    e("s_fid", Analytics, "Adobe Analytics"),
    e("s_ecid", Analytics, "Adobe Analytics"),
    e("AMCV_*", Analytics, "Adobe Experience Cloud"),
    e("AMCVS_*", Analytics, "Adobe Experience Cloud"),
    e("mbox", Preferences, "Adobe Target"),
    e("demdex", Marketing, "Adobe Audience Manager"),
    e("dextp", Marketing, "Adobe Audience Manager"),
    e("dpm", Marketing, "Adobe Audience Manager"),
    // --- Ad networks ---
    e("cto_bundle", Marketing, "Criteo"),
    e("cto_bidid", Marketing, "Criteo"),
    e("cto_optout", Necessary, "Criteo"),
    e("t_gid", Marketing, "Taboola"),
    e("taboola_session_id", Marketing, "Taboola"),
    e("outbrain_cid_fetch", Marketing, "Outbrain"),
    e("obuid", Marketing, "Outbrain"),
    e("__qca", Marketing, "Quantcast"),
    e("__adroll", Marketing, "AdRoll"),
    e("__adroll_fpc", Marketing, "AdRoll"),
    e("__ar_v4", Marketing, "AdRoll"),
    e("uuid2", Marketing, "Xandr"),
    e("anj", Marketing, "Xandr"),
    e("TDID", Marketing, "The Trade Desk"),
    e("TDCPM", Marketing, "The Trade Desk"),
    // --- Support chat widgets: remember the conversation across pages (preferences) ---
    e("intercom-id-*", Preferences, "Intercom"),
    e("intercom-session-*", Preferences, "Intercom"),
    e("intercom-device-id-*", Preferences, "Intercom"),
    e("__zlcmid", Preferences, "Zendesk Chat"),
    e("driftt_aid", Preferences, "Drift"),
    e("drift_aid", Preferences, "Drift"),
    e("crisp-client*", Preferences, "Crisp"),
    e("__tawkuuid", Preferences, "Tawk.to"),
    e("TawkConnectionTime", Preferences, "Tawk.to"),
    // --- Fraud prevention and bot protection: strictly necessary for the service asked for ---
    e("__stripe_mid", Necessary, "Stripe"),
    e("__stripe_sid", Necessary, "Stripe"),
    e("_GRECAPTCHA", Necessary, "Google reCAPTCHA"),
    e("__cf_bm", Necessary, "Cloudflare"),
    e("__cfruid", Necessary, "Cloudflare"),
    e("cf_clearance", Necessary, "Cloudflare"),
    e("_cfuvid", Necessary, "Cloudflare"),
    // Cloudflare Load Balancing session affinity (the Open Cookie Database files it under
    // "Functional", which would make it a preference).
    e("__cflb", Necessary, "Cloudflare"),
    e("cf_chl_*", Necessary, "Cloudflare"),
    e("incap_ses_*", Necessary, "Imperva Incapsula"),
    e("visid_incap_*", Necessary, "Imperva Incapsula"),
    e("nlbi_*", Necessary, "Imperva Incapsula"),
    e("reese84", Necessary, "Imperva"),
    e("ak_bmsc", Necessary, "Akamai Bot Manager"),
    e("bm_sv", Necessary, "Akamai Bot Manager"),
    e("bm_sz", Necessary, "Akamai Bot Manager"),
    e("bm_mi", Necessary, "Akamai Bot Manager"),
    e("_abck", Necessary, "Akamai Bot Manager"),
    e("datadome", Necessary, "DataDome"),
    e("__uzm*", Necessary, "Radware Bot Manager (ShieldSquare)"),
    e("QueueITAccepted-*", Necessary, "Queue-it"),
    // --- Load balancers: session affinity ---
    e("AWSALB", Necessary, "AWS Elastic Load Balancing"),
    e("AWSALBCORS", Necessary, "AWS Elastic Load Balancing"),
    e("AWSALBTG", Necessary, "AWS Elastic Load Balancing"),
    e("AWSALBTGCORS", Necessary, "AWS Elastic Load Balancing"),
    e("AWSALBAPP-*", Necessary, "AWS Elastic Load Balancing"),
    e("AWSELB", Necessary, "AWS Elastic Load Balancing"),
    e("AWSELBCORS", Necessary, "AWS Elastic Load Balancing"),
    e("BIGipServer*", Necessary, "F5 BIG-IP"),
    e("TS01*", Necessary, "F5 Advanced WAF"),
    e("SERVERID", Necessary, "HAProxy"),
    e("ROUTEID", Necessary, "Apache mod_proxy_balancer"),
    e("ARRAffinity", Necessary, "Azure App Service"),
    e("ARRAffinitySameSite", Necessary, "Azure App Service"),
    e("GCLB", Necessary, "Google Cloud Load Balancing"),
    e("INGRESSCOOKIE", Necessary, "Kubernetes ingress-nginx"),
    e("route", Necessary, "nginx sticky"),
    e("X-Mapping-*", Necessary, "Riverbed / Zeus Traffic Manager"),
    // --- Application sessions and CSRF ---
    e("PHPSESSID", Necessary, "PHP"),
    e("JSESSIONID", Necessary, "Java Servlet"),
    e("ASP.NET_SessionId", Necessary, "ASP.NET"),
    e(".AspNetCore.*", Necessary, "ASP.NET Core"),
    e(".ASPXAUTH", Necessary, "ASP.NET"),
    e("__RequestVerificationToken", Necessary, "ASP.NET"),
    e("ASPSESSIONID*", Necessary, "Classic ASP"),
    e("CFID", Necessary, "ColdFusion"),
    e("CFTOKEN", Necessary, "ColdFusion"),
    // Rails names its cookie `_<app>_session`, which a prefix cannot express: add it as an
    // operator rule (`necessary = ["_myapp_session"]`).
    e("_session_id", Necessary, "Ruby on Rails"),
    e("sessionid", Necessary, "Django"),
    e("csrftoken", Necessary, "Django"),
    e("django_language", Preferences, "Django"),
    e("laravel_session", Necessary, "Laravel"),
    e("ci_session", Necessary, "CodeIgniter"),
    e("OCSESSID", Necessary, "OpenCart"),
    e("dwsid", Necessary, "Salesforce Commerce Cloud"),
    e("dwac_*", Necessary, "Salesforce Commerce Cloud"),
    e("XSRF-TOKEN", Necessary, "Laravel / Angular"),
    e("connect.sid", Necessary, "Express"),
    e("SESSIONID", Necessary, "generic"),
    e("SESSION", Necessary, "Spring Session"),
    e("__Host-next-auth.csrf-token", Necessary, "NextAuth.js"),
    e("__Secure-next-auth.session-token", Necessary, "NextAuth.js"),
    e("next-auth.session-token", Necessary, "NextAuth.js"),
    e("next-auth.csrf-token", Necessary, "NextAuth.js"),
    e("wordpress_logged_in_*", Necessary, "WordPress"),
    e("wordpress_sec_*", Necessary, "WordPress"),
    e("wordpress_test_cookie", Necessary, "WordPress"),
    e("wp-settings-*", Preferences, "WordPress"),
    e("woocommerce_cart_hash", Necessary, "WooCommerce"),
    e("woocommerce_items_in_cart", Necessary, "WooCommerce"),
    e("wp_woocommerce_session_*", Necessary, "WooCommerce"),
    e("_shopify_s", Analytics, "Shopify"),
    e("_shopify_y", Analytics, "Shopify"),
    e("_shopify_sa_p", Marketing, "Shopify"),
    e("_shopify_sa_t", Marketing, "Shopify"),
    e("cart", Necessary, "Shopify"),
    e("secure_customer_sig", Necessary, "Shopify"),
    // Shopify's cart, checkout and store-localization cookies, "necessary" in Shopify's own
    // cookie list; the Open Cookie Database files several under "Functional" (a preference),
    // and stripping them empties carts.
    e("_shopify_essential", Necessary, "Shopify"),
    e("_secure_session_id", Necessary, "Shopify"),
    e("cart_currency", Necessary, "Shopify"),
    e("cart_sig", Necessary, "Shopify"),
    e("cart_ts", Necessary, "Shopify"),
    e("localization", Necessary, "Shopify"),
    e("_tracking_consent", Necessary, "Shopify"),
    e("_cmp_a", Necessary, "Shopify"),
    e("PrestaShop-*", Necessary, "PrestaShop"),
    e("frontend", Necessary, "Magento"),
    e("form_key", Necessary, "Magento"),
    e("mage-cache-sessid", Necessary, "Magento"),
    // --- Consent-management platforms: the consent record itself ---
    e("euconsent-v2", Necessary, "IAB TCF"),
    e("eupubconsent-v2", Necessary, "IAB TCF (OneTrust)"),
    e("euconsent", Necessary, "IAB TCF v1"),
    e("__cmpconsent*", Necessary, "IAB TCF"),
    e("__cmpcccu*", Necessary, "IAB TCF"),
    e("usprivacy", Necessary, "IAB CCPA"),
    e("addtl_consent", Necessary, "Google Additional Consent"),
    e("OptanonConsent", Necessary, "OneTrust"),
    e("OptanonAlertBoxClosed", Necessary, "OneTrust"),
    e("OTAdditionalConsentString", Necessary, "OneTrust"),
    e("CookieConsent", Necessary, "Cookiebot"),
    e("CookieConsentBulkSetting-*", Necessary, "Cookiebot"),
    e("cookieyes-consent", Necessary, "CookieYes"),
    e(
        "cookielawinfo-checkbox-*",
        Necessary,
        "CookieYes (GDPR Cookie Consent)",
    ),
    e(
        "viewed_cookie_policy",
        Necessary,
        "CookieYes (GDPR Cookie Consent)",
    ),
    e("cmplz_*", Necessary, "Complianz"),
    e("klaro", Necessary, "Klaro"),
    e("didomi_token", Necessary, "Didomi"),
    e("_iub_cs-*", Necessary, "iubenda"),
    e("borlabs-cookie", Necessary, "Borlabs Cookie"),
    e("CookieScriptConsent", Necessary, "Cookie Script"),
    e("consentUUID", Necessary, "Sourcepoint"),
    e("consent", Necessary, "consentgate first-party"),
    e("cookie_consent", Necessary, "generic"),
    e("cookieconsent_status", Necessary, "Osano cookieconsent"),
    e("uc_settings", Necessary, "Usercentrics"),
    e("uc_user_interaction", Necessary, "Usercentrics"),
    e("axeptio_cookies", Necessary, "Axeptio"),
    e("axeptio_authorized_vendors", Necessary, "Axeptio"),
    e("axeptio_all_vendors", Necessary, "Axeptio"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookies::classify::{Classifier, Origin, RuleSet};
    use std::collections::HashSet;

    fn classify(name: &str) -> Option<Category> {
        Classifier::new(RuleSet::default(), RuleSet::default(), RuleSet::default())
            .classify(name)
            .map(|(c, o)| {
                assert_eq!(o, Origin::Catalogue);
                c
            })
    }

    #[test]
    fn at_least_150_valid_unique_patterns() {
        assert!(CATALOGUE.len() >= 150, "{} entries", CATALOGUE.len());
        let mut seen = HashSet::new();
        for e in CATALOGUE {
            assert!(seen.insert(e.pattern), "duplicate pattern {}", e.pattern);
            let mut r = RuleSet::default();
            r.add(e.pattern, e.category)
                .unwrap_or_else(|err| panic!("{}: {err}", e.pattern));
            assert!(!e.vendor.is_empty());
        }
    }

    #[test]
    fn facts() {
        assert_eq!(classify("_ga"), Some(Analytics));
        assert_eq!(classify("_ga_ABC123"), Some(Analytics));
        assert_eq!(classify("_gid"), Some(Analytics));
        assert_eq!(classify("_gcl_au"), Some(Marketing));
        assert_eq!(classify("_fbp"), Some(Marketing));
        assert_eq!(classify("PHPSESSID"), Some(Necessary));
        assert_eq!(classify("JSESSIONID"), Some(Necessary));
        assert_eq!(classify("AWSALB"), Some(Necessary));
        assert_eq!(classify("BIGipServerpool_web"), Some(Necessary));
        assert_eq!(classify("__cf_bm"), Some(Necessary));
        // Cloudflare Load Balancing's session affinity cookie, and Shopify's cart and checkout
        // cookies (Shopify's cookie list: "necessary"), seen stripped by the Open Cookie
        // Database's "Functional" = preferences on real Set-Cookie lines.
        assert_eq!(classify("__cflb"), Some(Necessary));
        assert_eq!(classify("_shopify_essential"), Some(Necessary));
        assert_eq!(classify("cart_currency"), Some(Necessary));
        assert_eq!(classify("localization"), Some(Necessary));
        // Sessions, consent, load-balancer and bot-protection cookies seen stripped in real
        // Cookie headers (CodeIgniter, OpenCart, Salesforce Commerce Cloud, Shopify's consent
        // record, Zeus affinity, Queue-it, ShieldSquare).
        for name in [
            "ci_session",
            "OCSESSID",
            "dwsid",
            "dwac_bcIBMiaaiZcJYaaadkJ5QZHsYd",
            "_cmp_a",
            "X-Mapping-fjhppofk",
            "QueueITAccepted-SDFrts345E-V3_bookerevent",
            "__uzma",
        ] {
            assert_eq!(classify(name), Some(Necessary), "{name}");
        }
        assert_eq!(classify("incap_ses_123_456"), Some(Necessary));
        assert_eq!(classify("euconsent-v2"), Some(Necessary));
        assert_eq!(classify("OptanonConsent"), Some(Necessary));
        assert_eq!(classify("cmplz_statistics"), Some(Necessary));
        assert_eq!(classify("_hjSessionUser_123"), Some(Analytics));
        assert_eq!(classify("_pk_id.1.abcd"), Some(Analytics));
        assert_eq!(classify("mp_abc_mixpanel"), Some(Analytics));
        assert_eq!(classify("_clck"), Some(Analytics));
        assert_eq!(classify("_uetsid"), Some(Marketing));
        assert_eq!(classify("wordpress_logged_in_abc"), Some(Necessary));
        assert_eq!(classify("wp-settings-1"), Some(Preferences));
        assert_eq!(classify("nobody-knows-this"), None);
    }

    #[test]
    fn longest_prefix_wins() {
        // `_gat_*` is more specific than nothing; `_ga_*` must not swallow `_gat_UA-1`.
        assert_eq!(classify("_gat_UA-1"), Some(Analytics));
        // `wp_woocommerce_session_*` (necessary) vs. nothing shorter.
        assert_eq!(classify("wp_woocommerce_session_abc"), Some(Necessary));
        // `AWSALBAPP-0` (prefix) vs. `AWSALB` (exact, different name).
        assert_eq!(classify("AWSALBAPP-0"), Some(Necessary));
    }
}
