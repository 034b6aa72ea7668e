//! Policy files: reading an operator's `policy.yaml` or `policy.json` (YAML and JSON told
//! apart by content, the old list-of-lists form included), laying it over the policy in force
//! all or nothing, the warnings about rules that cannot take effect, and writing a policy back
//! as YAML. The rules' language itself is `lexer` and `parser`; the built-in rules are `defaults`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::parser::ParseError;
use super::rule::Rule;
use super::{Policy, find_cycle};

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("policy file {source_name} is not valid YAML or JSON: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("policy file {source_name}: {message}")]
    Shape {
        source_name: String,
        message: String,
    },
    #[error("policy file {source_name}: {error}")]
    Rule {
        source_name: String,
        error: ParseError,
    },
    #[error("policy file {source_name}: policy rules refer to each other in a loop: {cycle}")]
    Cycle { source_name: String, cycle: String },
}

/// The value of one rule in a policy file.
enum RawRule {
    Text(String),
    List(Vec<Vec<String>>),
}

impl Policy {
    /// The policy in force: the defaults, the operator's file (if any) laid over them and, with
    /// `enforce_new_defaults` false, each image rule the file does not set widened to its new
    /// *or* its deprecated default, as oslo.policy does.
    pub fn configured(
        path: Option<&Path>,
        enforce_new_defaults: bool,
    ) -> Result<Self, PolicyError> {
        let mut policy = Self::defaults();
        let mut set_by_file = Vec::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
                path: path.to_owned(),
                error,
            })?;
            set_by_file = policy.apply_overrides(&text, &path.display().to_string())?;
        }
        if !enforce_new_defaults {
            policy.allow_deprecated_defaults(&set_by_file);
        }
        Ok(policy)
    }

    /// The defaults with an operator's policy file (YAML or JSON, told apart by content) laid over
    /// them rule by rule.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| PolicyError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// The defaults with the rules in `text` (YAML or JSON) laid over them. `source_name`
    /// labels errors and warnings (usually the file name).
    pub fn from_str(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let mut policy = Self::defaults();
        policy.apply_overrides(text, source_name)?;
        Ok(policy)
    }

    /// Lays the rules in `text` (YAML or JSON) over this policy. All or nothing: on error the
    /// policy is unchanged. Logs a warning for each rule Glance does not define that nothing
    /// refers to, each `rule:` reference to an undefined rule (it is always false) and each
    /// `http:`/`https:` check (not supported; always false). Returns the names it set.
    pub fn apply_overrides(
        &mut self,
        text: &str,
        source_name: &str,
    ) -> Result<Vec<String>, PolicyError> {
        let raw = parse_document(text, source_name)?;
        let mut rules = self.rules.clone();
        let mut names = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let rule = match value {
                RawRule::Text(t) => Rule::parse(&name, &t),
                RawRule::List(l) => Rule::parse_list(&name, &l),
            }
            .map_err(|error| PolicyError::Rule {
                source_name: source_name.to_owned(),
                error,
            })?;
            rules.insert(name.clone(), rule);
            names.push(name);
        }
        if let Some(cycle) = find_cycle(&rules) {
            return Err(PolicyError::Cycle {
                source_name: source_name.to_owned(),
                cycle,
            });
        }
        self.rules = rules;
        self.warn_about(&names, source_name);
        log::info!(
            "{source_name}: {} policy rule(s) override or add to the defaults",
            names.len()
        );
        Ok(names)
    }

    /// The policy as a YAML document (`name: rule text`, sorted), the format of `policy.yaml`.
    pub fn to_yaml(&self) -> String {
        let map: BTreeMap<&str, &str> = self
            .rules
            .iter()
            .map(|(k, v)| (k.as_str(), v.text()))
            .collect();
        serde_norway::to_string(&map).unwrap_or_default()
    }

    fn warn_about(&self, names: &[String], source_name: &str) {
        let referenced: BTreeSet<&str> = self.rules.values().flat_map(Rule::references).collect();
        for name in names {
            if !Self::is_known_rule(name) && !referenced.contains(name.as_str()) {
                log::warn!(
                    "{source_name}: \"{name}\" is not a Glance policy rule and no rule refers to it; \
                     it is kept but has no effect unless an action of that name is enforced"
                );
            }
        }
        for (name, rule) in &self.rules {
            for missing in rule
                .references()
                .into_iter()
                .filter(|r| !self.rules.contains_key(*r))
            {
                log::warn!(
                    "{source_name}: policy rule \"{name}\" refers to undefined rule \"{missing}\"; \
                     that check always fails"
                );
            }
            if rule.has_remote_check() {
                log::warn!(
                    "{source_name}: policy rule \"{name}\" uses an http:/https: check, which is not \
                     supported; that check always fails"
                );
            }
        }
    }
}

/// Reads a policy document: JSON when it looks like JSON, YAML otherwise (YAML also reads most
/// JSON). An empty document or one with only comments has no rules.
fn parse_document(text: &str, source_name: &str) -> Result<Vec<(String, RawRule)>, PolicyError> {
    let text = text.trim_start_matches('\u{feff}');
    let syntax = |message: String| PolicyError::Syntax {
        source_name: source_name.to_owned(),
        message,
    };
    let shape = |message: String| PolicyError::Shape {
        source_name: source_name.to_owned(),
        message,
    };
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json_err) => {
                serde_norway::from_str(text).map_err(|_| syntax(json_err.to_string()))?
            }
        }
    } else if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?
    };
    let map = match value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(shape(format!(
                "expected a mapping of rule names to rules, found {}",
                json_kind(&other)
            )));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let raw = match value {
            serde_json::Value::String(s) => RawRule::Text(s),
            serde_json::Value::Null => {
                // oslo reads a missing value as "allow everyone"; a typo should not do that.
                return Err(shape(format!(
                    "policy rule \"{name}\" has no value; write \"\" to allow everyone or \"!\" \
                     to allow no one"
                )));
            }
            serde_json::Value::Array(items) => {
                let mut alternatives = Vec::with_capacity(items.len());
                for item in items {
                    let all = match item {
                        serde_json::Value::String(s) => vec![s],
                        serde_json::Value::Array(checks) => checks
                            .into_iter()
                            .map(|c| match c {
                                serde_json::Value::String(s) => Ok(s),
                                other => Err(shape(format!(
                                    "policy rule \"{name}\": a check in the list form must be a string, found {}",
                                    json_kind(&other)
                                ))),
                            })
                            .collect::<Result<_, _>>()?,
                        other => {
                            return Err(shape(format!(
                                "policy rule \"{name}\": the list form takes strings or lists of strings, found {}",
                                json_kind(&other)
                            )));
                        }
                    };
                    alternatives.push(all);
                }
                RawRule::List(alternatives)
            }
            other => {
                return Err(shape(format!(
                    "policy rule \"{name}\" must be a string (or the old list form), found {}; \
                     quote it",
                    json_kind(&other)
                )));
            }
        };
        out.push((name, raw));
    }
    Ok(out)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_engine::test_support::*;
    use crate::policy_engine::*;

    // --- policy documents ---------------------------------------------------------------------

    #[test]
    fn yaml_file_overrides_a_default() {
        let reader = Credentials::project("p1", &["reader"]);
        let image = Target::new().with("project_id", "p1").with("owner", "p1");
        assert!(!Policy::defaults().enforce("modify_image", &reader, &image));
        let yaml = "# operators' overrides\n\"modify_image\": \"role:reader and project_id:%(project_id)s\"\npublicize_image: '!'\n";
        let p = Policy::from_str(yaml, "policy.yaml").unwrap();
        assert!(p.enforce("modify_image", &reader, &image));
        let admin = Credentials::project("p1", &["admin", "member", "reader"]);
        assert!(!p.enforce("publicize_image", &admin, &image));
        // Untouched defaults stay.
        assert!(!p.enforce("delete_image", &reader, &image));
        assert_eq!(
            p.rule("get_images").map(Rule::text),
            Policy::defaults().rule("get_images").map(Rule::text)
        );
    }

    #[test]
    fn json_file_with_list_form() {
        let json = r#"{
            "context_is_admin": "role:cloud_admin",
            "delete_image": [["role:cloud_admin"], ["role:member", "project_id:%(project_id)s"]],
            "get_image": ""
        }"#;
        let p = Policy::from_str(json, "policy.json").unwrap();
        let cloud_admin = Credentials::project("ops", &["cloud_admin"]);
        let image = Target::new().with("project_id", "p1");
        assert!(p.enforce("delete_image", &cloud_admin, &image));
        // context_is_admin was overridden, so every rule built on it follows.
        assert!(p.enforce("modify_image", &cloud_admin, &image));
        assert!(!p.enforce(
            "modify_image",
            &Credentials::project("ops", &["admin"]),
            &image
        ));
        assert!(p.enforce("get_image", &nobody(), &image));
    }

    #[test]
    fn load_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("policy.yaml");
        std::fs::write(&yaml, "add_image: role:admin\n").unwrap();
        let p = Policy::load(&yaml).unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("role:admin"));
        let json = dir.path().join("policy.json");
        std::fs::write(&json, "{\"add_image\": \"!\"}").unwrap();
        let p = Policy::load(&json).unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("!"));
        let missing = dir.path().join("nope.yaml");
        let e = Policy::load(&missing).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }));
        assert!(e.to_string().contains("nope.yaml"), "{e}");
    }

    #[test]
    fn empty_and_comment_only_files_change_nothing() {
        assert_eq!(Policy::from_str("", "p").unwrap(), Policy::defaults());
        assert_eq!(
            Policy::from_str("# nothing\n", "p").unwrap(),
            Policy::defaults()
        );
        assert_eq!(Policy::from_str("{}", "p").unwrap(), Policy::defaults());
    }

    #[test]
    fn bad_rule_in_file_names_file_and_rule() {
        let e = Policy::from_str(
            "modify_image: \"role:admin or (role:member\"\n",
            "/etc/glance/policy.yaml",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/glance/policy.yaml"), "{msg}");
        assert!(
            msg.contains("policy rule \"modify_image\": unbalanced parenthesis"),
            "{msg}"
        );
    }

    #[test]
    fn bad_documents() {
        let e = Policy::from_str("a: [unclosed", "p.yaml").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        let e = Policy::from_str("{\"a\": [}", "p.json").unwrap_err();
        assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
        // Bad JSON that happens to be YAML is read as YAML, and a missing value is refused.
        let e = Policy::from_str("{\"a\": }", "p.json").unwrap_err();
        assert!(e.to_string().contains("\"a\" has no value"), "{e}");
        let e = Policy::from_str("- a\n- b\n", "p.yaml").unwrap_err();
        assert!(e.to_string().contains("expected a mapping"), "{e}");
        let e = Policy::from_str("get_image: true\n", "p.yaml").unwrap_err();
        assert!(
            e.to_string().contains("\"get_image\" must be a string"),
            "{e}"
        );
        let e = Policy::from_str("get_image: [[1]]\n", "p.yaml").unwrap_err();
        assert!(
            e.to_string().contains("must be a string, found a number"),
            "{e}"
        );
    }

    #[test]
    fn missing_value_is_refused() {
        let e = Policy::from_str("get_images:\n", "p.yaml").unwrap_err();
        assert!(matches!(e, PolicyError::Shape { .. }), "{e}");
        assert!(e.to_string().contains("get_images"), "{e}");
    }

    #[test]
    fn yaml_reads_flow_mapping_that_is_not_json() {
        let p = Policy::from_str("{add_image: '!', get_image: '@'}", "p.yaml").unwrap();
        assert_eq!(p.rule("add_image").map(Rule::text), Some("!"));
    }

    #[test]
    fn unknown_rules_are_kept_and_referenceable() {
        let yaml = "owner_or_admin: \"rule:context_is_admin or project_id:%(project_id)s\"\n\
                    delete_image: rule:owner_or_admin\n";
        let p = Policy::from_str(yaml, "p.yaml").unwrap();
        assert!(!Policy::is_known_rule("owner_or_admin"));
        assert!(p.rule("owner_or_admin").is_some());
        let owner = Credentials::project("p1", &["reader"]);
        assert!(p.enforce(
            "delete_image",
            &owner,
            &Target::new().with("project_id", "p1")
        ));
    }

    #[test]
    fn cycles_are_refused_and_policy_left_unchanged() {
        let e = Policy::from_str("a: rule:b\nb: rule:a or @\n", "p.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("a -> b -> a"), "{msg}");
        let mut p = Policy::defaults();
        let before = p.clone();
        assert!(
            p.apply_overrides("context_is_admin: rule:get_images\n", "p.yaml")
                .is_err()
        );
        assert_eq!(p, before);
        assert!(p.set_rule("x", "rule:x").is_err());
        assert!(p.rule("x").is_none());
    }

    #[test]
    fn unknown_action_uses_default_rule() {
        let mut p = Policy::defaults();
        assert!(p.enforce("no_such_action", &nobody(), &Target::new()));
        p.set_rule("default", "role:admin").unwrap();
        assert!(!p.enforce("no_such_action", &nobody(), &Target::new()));
        assert!(!Policy::empty().enforce("anything", &nobody(), &Target::new()));
    }

    #[test]
    fn to_yaml_round_trips() {
        let p = Policy::defaults();
        let again = Policy::from_str(&p.to_yaml(), "generated").unwrap();
        assert_eq!(p, again);
    }
}
