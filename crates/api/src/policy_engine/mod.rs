//! A rule engine for the policy language operators already write for Glance (oslo.policy's):
//! `role:admin`, `project_id:%(project_id)s`, `'public':%(visibility)s`, `rule:other`, `@`, `!`,
//! `and` / `or` / `not` and parentheses, plus the old list-of-lists form of JSON policy files.
//!
//! [`Policy::defaults`] holds Glance's secure-RBAC defaults for the Images API written in that
//! language; [`Policy::load`] overlays an operator's `policy.yaml` or `policy.json` on them rule by
//! rule. [`Policy::enforce`] answers one question: may these [`Credentials`] perform this action on
//! this [`Target`]?
//!
//! Semantics follow oslo.policy: `and` binds tighter than `or`, `not` tighter than both; `role:`
//! compares case-insensitively; any other `kind:match` check substitutes `%(key)s` from the target
//! into `match` and compares it with the caller's `kind` field (or with `kind` itself when that is
//! a quoted literal, `True`, `False`, `None` or an integer). A substitution whose key the target
//! lacks makes the check false. Two deliberate differences, both failing closed: a `rule:` naming
//! an undefined rule is false (oslo falls back to the `default` rule), and a credential field the
//! caller does not have (no project, say) never matches (oslo compares it as the text `None`).
//!
//! The engine is split by what each part owns: `defaults` (Glance's built-in rules), `lexer`
//! (a rule's words), `parser` (words to expression), `rule` (the expression tree), `eval`
//! (callers, targets and the answer) and `document` (policy files).

use std::collections::{BTreeMap, HashMap};

mod defaults;
mod document;
mod eval;
mod lexer;
mod parser;
mod rule;

pub use document::PolicyError;
pub use eval::{Credentials, Target};
pub use parser::ParseError;
pub use rule::Rule;

/// How deep `rule:` references and parentheses may nest before a rule is refused (parsing) or
/// treated as false (evaluation). Real policies nest two or three levels.
const MAX_DEPTH: usize = 64;

/// A set of named rules. Cheap to share behind an `Arc`; evaluation never allocates much and
/// never fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<String, Rule>,
}

impl Policy {
    /// A policy with no rules: every action is denied (there is no `default` either).
    pub fn empty() -> Self {
        Self {
            rules: BTreeMap::new(),
        }
    }

    /// Sets one rule from its text; an error leaves the policy unchanged.
    pub fn set_rule(&mut self, name: &str, text: &str) -> Result<(), PolicyError> {
        let rule = Rule::parse(name, text).map_err(|error| PolicyError::Rule {
            source_name: "(set_rule)".to_owned(),
            error,
        })?;
        let previous = self.rules.insert(name.to_owned(), rule);
        if let Some(cycle) = find_cycle(&self.rules) {
            match previous {
                Some(p) => self.rules.insert(name.to_owned(), p),
                None => self.rules.remove(name),
            };
            return Err(PolicyError::Cycle {
                source_name: "(set_rule)".to_owned(),
                cycle,
            });
        }
        Ok(())
    }

    /// The rule called `name`, if defined.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    /// Every rule name, sorted.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }
}

/// A loop of `rule:` references, written `a -> b -> a`, if there is one.
fn find_cycle(rules: &BTreeMap<String, Rule>) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        rules: &'a BTreeMap<String, Rule>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<String> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let from = stack.iter().position(|n| *n == name).unwrap_or(0);
                let mut path: Vec<&str> = stack[from..].to_vec();
                path.push(name);
                return Some(path.join(" -> "));
            }
            None => {}
        }
        let rule = rules.get(name)?;
        marks.insert(name, Mark::Active);
        stack.push(name);
        for next in rule.references() {
            if let Some(cycle) = visit(next, rules, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for name in rules.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(name, rules, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod test_support {
    //! Helpers the engine's tests share.

    use super::{Credentials, ParseError, Policy, Rule, Target};

    pub(super) fn rule(text: &str) -> Rule {
        Rule::parse("test", text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates `text` as rule `r` of a policy that also has `extra` rules.
    pub(super) fn eval_with(
        text: &str,
        extra: &[(&str, &str)],
        creds: &Credentials,
        target: &Target,
    ) -> bool {
        let mut p = Policy::empty();
        for (name, body) in extra {
            p.set_rule(name, body).unwrap();
        }
        p.set_rule("r", text).unwrap();
        p.enforce("r", creds, target)
    }

    pub(super) fn eval(text: &str, creds: &Credentials, target: &Target) -> bool {
        eval_with(text, &[], creds, target)
    }

    pub(super) fn nobody() -> Credentials {
        Credentials::new()
    }

    pub(super) fn err(text: &str) -> ParseError {
        Rule::parse("modify_image", text).expect_err(text)
    }
}
