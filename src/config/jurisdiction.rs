//! `[[site.jurisdiction]]` and `[site] unknown_jurisdiction` (issue 11, "What applies
//! there"): each rule's name, regions and model are checked here, with the line of each
//! problem; the selection is `crate::jurisdiction`.

use super::{ConfigErrorKind, ConfigWarning, SiteConfig, Validator};
use crate::jurisdiction::{Area, Jurisdictions, Model, Rule};
use serde::Deserialize;
use toml::Spanned;

/// One `[[site.jurisdiction]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJurisdiction {
    pub name: Spanned<String>,
    pub regions: Spanned<Vec<Spanned<String>>>,
    /// Optional only so a wrong value can be blanked and the rest of the file still read
    /// (`recover`): a missing one is reported here.
    pub model: Option<Model>,
}

impl Validator<'_> {
    pub(super) fn jurisdictions(
        &mut self,
        raw: &[RawJurisdiction],
        unknown: &Option<Spanned<String>>,
    ) -> Jurisdictions {
        let mut rules = Vec::new();
        let mut names = std::collections::HashSet::new();
        for j in raw {
            let name = j.name.get_ref().trim().to_string();
            if !valid_name(&name) {
                let msg = format!(
                    "jurisdiction name `{name}` must be 1 to 32 letters, digits, `-` or `_` (it becomes a metric label)"
                );
                self.error_at(j.name.span(), ConfigErrorKind::Jurisdiction(msg));
            } else if !names.insert(name.clone()) {
                let msg =
                    format!("jurisdiction `{name}` is defined twice; give each rule its own name");
                self.error_at(j.name.span(), ConfigErrorKind::Jurisdiction(msg));
            }
            if j.regions.get_ref().is_empty() {
                let msg = format!(
                    "jurisdiction `{name}` has no regions; list ISO codes like \"US-CA\", \"DE\", or \"*\""
                );
                self.error_at(j.regions.span(), ConfigErrorKind::Jurisdiction(msg));
            }
            let mut areas = Vec::new();
            for r in j.regions.get_ref() {
                match Area::parse(r.get_ref()) {
                    Some(a) => areas.push(a),
                    None => {
                        let msg = format!(
                            "region `{}` of jurisdiction `{name}` is not a region code; write an ISO 3166-2 code like \"US-CA\", an ISO 3166-1 country like \"DE\", or \"*\" for every known location",
                            r.get_ref()
                        );
                        self.error_at(r.span(), ConfigErrorKind::Jurisdiction(msg));
                    }
                }
            }
            let model = j.model.unwrap_or_else(|| {
                if !self.blanked_keys.iter().any(|k| k == "model") {
                    let msg = format!(
                        "jurisdiction `{name}` has no model; add model = \"opt-in\", \"opt-out\" or \"off\""
                    );
                    self.error_at(j.name.span(), ConfigErrorKind::Jurisdiction(msg));
                }
                Model::OptIn
            });
            rules.push(Rule { name, areas, model });
        }
        let name = unknown.as_ref().map(|u| u.get_ref().trim());
        if rules.is_empty() {
            if let Some(u) = unknown {
                let msg = "unknown_jurisdiction names a rule, but the site has no [[site.jurisdiction]]; add the rules or remove the key".to_string();
                self.error_at(u.span(), ConfigErrorKind::Jurisdiction(msg));
            }
            return Jurisdictions::default();
        }
        match Jurisdictions::new(rules, name) {
            Ok(j) => j,
            Err(missing) => {
                let known: Vec<&str> = raw.iter().map(|j| j.name.get_ref().as_str()).collect();
                let msg = format!(
                    "unknown_jurisdiction `{missing}` is not one of this site's jurisdictions ({})",
                    known.join(", ")
                );
                let span = unknown.as_ref().map_or(0..0, |u| u.span());
                self.error_at(span, ConfigErrorKind::Jurisdiction(msg));
                Jurisdictions::default()
            }
        }
    }
}

/// A name that is a safe, short metric label.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Rules no request can reach because an earlier rule lists `*` (printed by `check`). The line
/// is the rule's `name` in `text`, when it can be found.
pub fn jurisdiction_warnings(
    sites: &[SiteConfig],
    file: &std::path::Path,
    text: &str,
) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    for site in sites {
        let j = &site.jurisdictions;
        for (late, any) in j.shadowed() {
            let (late, any) = (&j.rules[late].name, &j.rules[any].name);
            let line = text
                .lines()
                .position(|l| {
                    let l = l.trim_start();
                    l.starts_with("name") && l.contains(&format!("\"{late}\""))
                })
                .map_or(0, |i| i + 1);
            out.push(ConfigWarning {
                file: file.display().to_string(),
                line,
                message: format!(
                    "site `{}`: jurisdiction `{late}` is never used: the earlier jurisdiction `{any}` lists \"*\", which matches every known location; put the more specific rule first",
                    site.name
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const SITE: &str =
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";

    fn errors(extra: &str) -> String {
        match parse(&format!("{SITE}{extra}"), Path::new("t.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_problem_is_named_on_its_line() {
        // Lines: 6 name, 7 regions, 9 name, 10 regions, 11 model.
        let e = errors(
            "[[site.jurisdiction]]\nname = \"a b\"\nregions = []\n[[site.jurisdiction]]\nname = \"x\"\nregions = [\"US-CA\"]\n",
        );
        assert!(e.contains("t.toml:7: jurisdiction name `a b`"), "{e}");
        assert!(
            e.contains("t.toml:8: jurisdiction `a b` has no regions"),
            "{e}"
        );
        assert!(
            e.contains("t.toml:10: jurisdiction `x` has no model"),
            "{e}"
        );
        let e = errors(
            "[[site.jurisdiction]]\nname = \"x\"\nregions = [\"*\"]\nmodel = \"off\"\n[[site.jurisdiction]]\nname = \"x\"\nregions = [\"DE\"]\nmodel = \"opt-in\"\n",
        );
        assert!(
            e.contains("t.toml:11: jurisdiction `x` is defined twice"),
            "{e}"
        );
        let e = errors("unknown_jurisdiction = \"x\"\n");
        assert!(
            e.contains("t.toml:6: unknown_jurisdiction names a rule"),
            "{e}"
        );
        // An empty `[proxy.geo]` is valid: every location is unknown.
        assert_eq!(errors("[proxy.geo]\n"), "");
    }

    #[test]
    fn geo_keys_are_checked() {
        let text = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[proxy.geo]\ncountry_header = \"CF IPCountry\"\nregion_header = \"cf-region-code\"\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";
        let e = parse(text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:4: [proxy.geo] country_header `CF IPCountry`"),
            "{e}"
        );
        let text = text.replace("country_header = \"CF IPCountry\"\n", "");
        let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:4: [proxy.geo] region_header without country_header"),
            "{e}"
        );
    }
}
