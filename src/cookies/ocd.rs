//! Open Cookie Database CSV loader (placeholder until the full loader lands).
use crate::consent::Category;
use std::path::Path;

pub struct OcdRule {
    pub pattern: String,
    pub category: Category,
    pub platform: String,
}

#[derive(Debug)]
pub struct OcdError(pub String);

impl std::fmt::Display for OcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn load(path: &Path) -> Result<Vec<OcdRule>, OcdError> {
    Err(OcdError(format!("{}: not yet supported", path.display())))
}
