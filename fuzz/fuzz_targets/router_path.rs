//! The normalised forms of a request path (blocklist bypass, issue 8): never panics, every
//! form is an absolute path with the query kept as sent, and normalising is idempotent.
#![no_main]
use consentgate::trackers::normalize::router_forms;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path_and_query = format!("/{text}");
    let query = path_and_query.find('?').map_or("", |i| &path_and_query[i..]);
    let forms = router_forms(&path_and_query);
    assert!(forms.len() <= 2);
    for form in &forms {
        assert!(form.starts_with('/'), "{form:?}");
        assert!(form.ends_with(query), "{form:?}");
    }
    if let Some(lenient) = forms.last() {
        // The most normalised form has nothing left to normalise.
        assert!(
            router_forms(lenient).iter().all(|f| f == lenient) || lenient.contains('%'),
            "{lenient:?}"
        );
    }
});
