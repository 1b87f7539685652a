//! The HTML neutralizer on arbitrary bytes in arbitrary chunks: no panic.
#![no_main]
use consentgate::consent::{Category, Grants};
use consentgate::html::{default_snippets, Neutralizer, PageRules, Snippets};
use consentgate::trackers::{Blocklist, Blocklists};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn rules() -> Arc<PageRules> {
    static R: OnceLock<Arc<PageRules>> = OnceLock::new();
    R.get_or_init(|| {
        Arc::new(PageRules {
            blocklists: Arc::new(Blocklists::new(vec![Blocklist::from_text(
                Category::Analytics,
                "a",
                "||tracker.test^\n/collect?\n",
            )])),
            snippets: Snippets::new(default_snippets()).unwrap(),
        })
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut n = Neutralizer::new(Grants::NONE, "https://s.test/p", rules(), None).unwrap();
    let step = usize::from(split).max(1);
    for chunk in rest.chunks(step) {
        if n.write(chunk).is_err() {
            return;
        }
    }
    let _ = n.finish();
});
