//! Built-in catalogue of common cookies (placeholder until the full catalogue lands).
use crate::consent::Category;

pub struct CatalogueEntry {
    pub pattern: &'static str,
    pub category: Category,
    pub vendor: &'static str,
}

pub static CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        pattern: "AWSALB",
        category: Category::Necessary,
        vendor: "AWS",
    },
    CatalogueEntry {
        pattern: "_ga",
        category: Category::Analytics,
        vendor: "Google Analytics",
    },
    CatalogueEntry {
        pattern: "_ga_*",
        category: Category::Analytics,
        vendor: "Google Analytics",
    },
    CatalogueEntry {
        pattern: "_fbp",
        category: Category::Marketing,
        vendor: "Meta",
    },
    CatalogueEntry {
        pattern: "PHPSESSID",
        category: Category::Necessary,
        vendor: "PHP",
    },
];

pub fn lookup(name: &str) -> Option<&'static CatalogueEntry> {
    CATALOGUE
        .iter()
        .find(|e| match e.pattern.strip_suffix('*') {
            Some(p) => name.starts_with(p),
            None => e.pattern == name,
        })
}
